/**
 * Helpers shared by the gradient rules: constants in the dtype of the value they meet, shapes as
 * tensors (constants when static, Shape when not), and the reduction that undoes broadcasting.
 */
import { constValue, type Shape, type Value } from '../../ir/graph.ts';
import type { DType } from '../../ir/dtype.ts';
import { DTYPES } from '../../ir/dtype.ts';
import * as op from '../../ops/index.ts';
import { i64 } from '../../dsl/constants.ts';

/** A scalar constant of `like`'s float dtype (rules run on float32 and float64 graphs alike). */
export function scalar(like: Value, x: number): Value {
  return constValue(like.dtype, [], floatArray(like.dtype, [x]));
}

export function floatArray(dtype: DType, values: number[]): Float32Array | Float64Array {
  if (dtype === 'float64') return Float64Array.from(values);
  if (dtype === 'float32') return Float32Array.from(values);
  throw new Error(`gradient rules compute in float32 or float64, not ${dtype}`);
}

export const isStatic = (shape: Shape): shape is number[] => shape.every((d) => typeof d === 'number');

/** `v`'s shape as an int64 tensor: a constant when static, computed otherwise. */
export function shapeOf(v: Value): Value {
  return isStatic(v.shape) ? i64(v.shape) : op.Shape(v);
}

/** Zeros with the shape and dtype of `like`. */
export function zerosLike(like: Value): Value {
  const out = op.ConstantOfShape(shapeOf(like), { value: { dtype: like.dtype, shape: [1], data: floatArray(like.dtype, [0]) } });
  out.shape = [...like.shape];
  return out;
}

/** Reshape `g` to `like`'s shape (the gradient of any pure re-view). */
export function reshapeLike(g: Value, like: Value): Value {
  const out = op.Reshape(g, shapeOf(like));
  out.shape = [...like.shape];
  return out;
}

/**
 * The gradient of a broadcast: sums `g` over the leading dims `shape` lacks and over the dims where
 * `shape` has 1 and `g` does not. Dims that are both symbolic are taken as equal, as broadcasting
 * between two symbolic sizes only works when they are.
 */
export function sumToShape(g: Value, shape: Shape): Value {
  const lead = g.rank - shape.length;
  if (lead < 0) throw new Error(`gradient of rank ${g.rank} cannot reduce to rank ${shape.length}`);
  let out = g;
  if (lead > 0) out = op.ReduceSum(out, i64(range(lead)), { keepdims: 0 });
  const ones = shape.flatMap((d, i) => (d === 1 && out.shape[i] !== 1 ? [i] : []));
  if (ones.length > 0) out = op.ReduceSum(out, i64(ones), { keepdims: 1 });
  if (out !== g) out.shape = [...shape];
  return out;
}

export const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

export function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** Swaps the last two dims. */
export function transposeLast2(v: Value): Value {
  const perm = range(v.rank);
  [perm[v.rank - 2], perm[v.rank - 1]] = [perm[v.rank - 1]!, perm[v.rank - 2]!];
  return op.Transpose(v, { perm });
}

export function castTo(v: Value, dtype: DType): Value {
  return v.dtype === dtype ? v : op.Cast(v, { to: DTYPES[dtype].onnx });
}
