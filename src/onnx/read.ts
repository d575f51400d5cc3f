/**
 * Reading an .onnx file back: decoding it with one clear error, the names of its element types,
 * and checking its external-data references (src/onnx/external-data.ts). Shared by `vlmc run`,
 * which checks an artifact before onnxruntime loads it, and `vlmc diff` / `vlmc lock`
 * (src/review/onnx.ts), which summarise any .onnx file.
 */
import { readFileSync } from 'node:fs';
import type * as P from 'onnx-proto';
import { UserError } from '../errors.ts';
import { refuseNonRegularFile } from '../fs/errors.ts';
import { DTYPES } from '../ir/dtype.ts';
import { ExternalData, type ExternalRef } from './external-data.ts';
import { intText, onnx, type ModelProto } from './proto.ts';

// Decoded sub-messages are typed by protobufjs's interfaces, whose fields are all nullable.
type TensorProto = P.onnx.ITensorProto;

export const EXTERNAL = onnx.TensorProto.DataLocation.EXTERNAL;

export function decodeModelFile(file: string): ModelProto {
  let bytes: Buffer;
  refuseNonRegularFile(file, 'an ONNX model');
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new UserError(`${file}: cannot read the model (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new UserError(`${file}: not a readable ONNX model (${(e as Error).message})`);
  }
}

/** Checks every external-data reference of an .onnx file (location, range, length); a UserError naming the first bad one. */
export function checkExternalReferences(file: string): void {
  const graph = decodeModelFile(file).graph;
  if (!graph) throw new UserError(`${file}: the model has no graph`);
  const data = new ExternalData(file);
  try {
    for (const t of graph.initializer ?? []) if (t.dataLocation === EXTERNAL) data.range(externalRef(t));
  } finally {
    data.close();
  }
}

const DTYPE_BY_CODE = new Map<number, string>([
  ...Object.entries(DTYPES).map(([name, info]) => [info.onnx, name] as [number, string]),
  [14, 'complex64'],
  [15, 'complex128'],
]);

export function dtypeName(code: number | null | undefined): string {
  return DTYPE_BY_CODE.get(code ?? 0) ?? `onnx-type-${code ?? 0}`;
}

export const elementBytes = (dtype: string): number => (DTYPES as Record<string, { bytes: number }>)[dtype]?.bytes ?? 0;

export const dimsOf = (t: TensorProto): number[] => (t.dims ?? []).map((d) => Number(intText(d)));

/** What the shared external-data checks need of a tensor. */
export function externalRef(t: TensorProto): ExternalRef {
  const dtype = dtypeName(t.dataType);
  return { name: t.name ?? '', dtype, dims: dimsOf(t), elementBytes: elementBytes(dtype), entries: (t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? ''] as [string, string]) };
}
