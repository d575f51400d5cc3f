/** Literal tensors for graph construction. */
import { constValue, type Value } from '../ir/graph.ts';

export function i64(values: readonly number[]): Value {
  return constValue('int64', [values.length], BigInt64Array.from(values, (v) => BigInt(v)));
}

export function i64Scalar(value: number): Value {
  return constValue('int64', [], BigInt64Array.of(BigInt(value)));
}

export function f32(values: readonly number[], shape: number[] = [values.length]): Value {
  return constValue('float32', shape, Float32Array.from(values));
}

export function f32Scalar(value: number): Value {
  return constValue('float32', [], Float32Array.of(value));
}

/** Int64 bounds used for "to the end" in Slice. */
export const INT64_MAX = Number.MAX_SAFE_INTEGER;
