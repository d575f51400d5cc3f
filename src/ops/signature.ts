/**
 * What the generated op builders (`*.generated.ts`) tell the emitter about an operator: its schema
 * as of the version they were generated for. The emitter uses it to check input counts, dtypes
 * (type constraints) and attribute types while the graph is traced.
 */
import type { AttrType } from '../ir/graph.ts';
import type { DType } from '../ir/dtype.ts';

export type FormalOption = 'single' | 'optional' | 'variadic';

export interface FormalParam {
  name: string;
  /** Type-constraint name (`T`) or a concrete ONNX type string (`tensor(int64)`). */
  type: string;
  option: FormalOption;
}

export interface AttrSpec {
  type: AttrType | 'GRAPH' | 'GRAPHS' | 'SPARSE_TENSOR' | 'TYPE_PROTO' | 'TYPE_PROTOS';
  required: boolean;
  /** Default from the schema, already decoded (number, string, number[]...). */
  default?: unknown;
}

export interface OpSignature {
  op: string;
  /** '' for the default ONNX domain. */
  domain: string;
  since: number;
  inputs: FormalParam[];
  outputs: FormalParam[];
  attrs: Record<string, AttrSpec>;
  /** Type-constraint name -> allowed element types (IR dtype names; unknown ONNX types dropped). */
  typeConstraints: Record<string, DType[]>;
}
