/**
 * The IR: one plain data structure that every pass reads and rewrites.
 *
 * A `Graph` is a list of `Node`s in topological order over `Value`s. A value is a graph input, a
 * parameter (a named weight with a checkpoint key and a trainable flag), a constant, or a node
 * output. Shapes are symbolic: a dim is a number or a name (`tiles`, `batch*seq`).
 */
import type { DType, ParamDType } from './dtype.ts';

export type Dim = number | string;
export type Shape = Dim[];

export type AttrType = 'INT' | 'FLOAT' | 'STRING' | 'INTS' | 'FLOATS' | 'STRINGS' | 'TENSOR';
export interface Attr {
  type: AttrType;
  value: number | string | number[] | string[] | ConstData;
}

export type TypedData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array;

/** Literal tensor contents (constants, attribute tensors). */
export interface ConstData {
  dtype: DType;
  shape: number[];
  data: TypedData;
}

/** Where a module or node was declared: the graph file's line, for errors. */
export interface Site {
  /** Lazily formatted: V8 formats a stack only when it is read. */
  readonly error: Error;
}

export type ValueKind = 'input' | 'param' | 'const' | 'node';

let nextValueId = 1;

export class Value {
  readonly id = nextValueId++;
  /** Fixed name for inputs, params and graph outputs; other values are named by a pass. */
  name: string | undefined;
  producer: Node | undefined;
  /** Contents of a constant. */
  data: ConstData | undefined;
  /** Symbolic contents of a small 1-D integer tensor (shape arithmetic), when known. */
  sym: Dim[] | undefined;
  param: Param | undefined;

  constructor(
    readonly kind: ValueKind,
    public dtype: DType,
    public shape: Shape,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  toString(): string {
    return `${this.dtype}[${this.shape.join(',')}]`;
  }
}

export type Init =
  | { kind: 'zeros' }
  | { kind: 'ones' }
  | { kind: 'constant'; value: number }
  | { kind: 'normal'; std: number; mean?: number }
  | { kind: 'uniform'; bound: number }
  | { kind: 'trunc_normal'; std: number };

/**
 * A weight stored quantised for MatMulNBits (src/passes/quantize.ts): the parameter's own value
 * holds the packed blocks; scales and zero points are companion initializers, filled at bind time.
 */
export interface ParamQuant {
  bits: 4 | 8;
  blockSize: number;
  symmetric: boolean;
  scales: Value;
  zeroPoints: Value | undefined;
}

/** A weight. `name` is its module path, which is also its key in the unified checkpoint. */
export class Param {
  trainable = true;
  /** Set when the weight is stored quantised; its value then has the packed dtype and shape. */
  quant: ParamQuant | undefined;
  /** False for weights read other than as a Linear's (an embedding table, also when tied to lm_head). */
  quantizable = true;
  /** The name this parameter is bound from when it is not its own (a quantised copy of a tied weight). */
  sourceName: string | undefined;
  readonly value: Value;
  private _name: string;
  constructor(
    name: string,
    readonly shape: number[],
    readonly dtype: ParamDType,
    readonly init: Init,
  ) {
    this._name = name;
    this.value = new Value('param', 'float32', shape);
    this.value.param = this;
    this.value.name = name;
  }
  get name(): string {
    return this._name;
  }
  /** Renaming a parameter renames the graph value that carries it. */
  set name(name: string) {
    this._name = name;
    this.value.name = name;
  }
}

export interface Node {
  readonly id: number;
  op: string;
  domain: string;
  /** The since-version of the schema the node was built against. */
  since: number;
  inputs: (Value | undefined)[];
  outputs: Value[];
  attrs: Record<string, Attr>;
  /** Module path that produced the node (`language_model.model.layers.0.self_attn`). */
  scope: string;
  /** Unique, deterministic node name, set by the naming pass. */
  name: string;
  /** A Gather that is an embedding lookup with torch's padding_idx: that row gets no gradient. */
  paddingIdx?: number;
}

/** A stored tensor: initializer name, element type and shape. */
export interface StoredTensor {
  name: string;
  dtype: DType;
  shape: number[];
}

/** How a graph stores one parameter (set by compile; see snapshotStorage). */
export interface StoredParam extends StoredTensor {
  quant: { bits: 4 | 8; blockSize: number; symmetric: boolean; scales: StoredTensor; zeroPoints: StoredTensor | undefined } | undefined;
}

export interface Graph {
  name: string;
  opset: number;
  inputs: Value[];
  outputs: Value[];
  nodes: Node[];
  /** Every parameter of the model, used by a node or not (e.g. ViT layers after select_layer). */
  params: Param[];
  /** Free-form metadata carried into the ONNX model (metadata_props). */
  metadata: Record<string, string>;
  /** Parameter name -> how it is stored, fixed at the end of compile. */
  stored?: Map<string, StoredParam>;
}

export function constValue(dtype: DType, shape: number[], data: TypedData): Value {
  const v = new Value('const', dtype, shape);
  v.data = { dtype, shape, data };
  if ((dtype === 'int64' || dtype === 'int32') && shape.length <= 1) {
    v.sym = Array.from(data as ArrayLike<number | bigint>, Number);
  }
  return v;
}
