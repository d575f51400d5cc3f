/** Gradients of the indexing ops: Gather (embeddings, the image splice), Compress, CumSum, Resize. */
import * as op from '../../ops/index.ts';
import { constValue, type Value } from '../../ir/graph.ts';
import { i64 } from '../../dsl/constants.ts';
import type { GradRule } from './types.ts';
import { floatArray, normAxis, zerosLike } from './util.ts';

/**
 * Gather along axis 0: g scattered back with add (an id that occurs twice gets both gradients).
 * An embedding's padding row (torch's padding_idx, recorded on the node) gets none.
 */
const gather: GradRule = (c) => {
  const [data, indices] = [c.node.inputs[0]!, c.node.inputs[1]!];
  if (normAxis((c.node.attrs.axis?.value as number | undefined) ?? 0, data.rank) !== 0) throw new Error('no gradient rule for Gather on an axis other than 0');
  const scattered = op.ScatterND(zerosLike(data), op.Unsqueeze(indices, i64([-1])), c.gy, { reduction: 'add' });
  const pad = c.node.paddingIdx;
  if (pad === undefined) return [scattered];
  const rows = data.shape[0] as number;
  const keep = new Array<number>(rows).fill(1);
  keep[pad] = 0;
  const mask = constValue(data.dtype, [rows, ...data.shape.slice(1).map(() => 1)], floatArray(data.dtype, keep));
  return [op.Mul(scattered, mask)];
};

/** Compress along axis 0: the kept rows' gradients go back to where they came from, zeros elsewhere. */
const compress: GradRule = (c) => {
  const [x, condition] = [c.node.inputs[0]!, c.node.inputs[1]!];
  const axis = c.node.attrs.axis?.value as number | undefined;
  if (axis === undefined || normAxis(axis, x.rank) !== 0) throw new Error('no gradient rule for Compress on an axis other than 0');
  const positions = op.Transpose(op.NonZero(condition), { perm: [1, 0] });
  return [op.ScatterND(zerosLike(x), positions, c.gy)];
};

/** A running sum's gradient is the running sum of g in the other direction. */
const cumSum: GradRule = (c) => {
  const reverse = (c.node.attrs.reverse?.value as number | undefined) ?? 0;
  const exclusive = (c.node.attrs.exclusive?.value as number | undefined) ?? 0;
  return [op.CumSum(c.gy, c.node.inputs[1]!, { reverse: reverse ? 0 : 1, exclusive })];
};

/**
 * Resize of a 4-D tensor over its last two dims (the ViT's position-embedding interpolation). Each
 * of the interpolation modes is separable and linear: y = A_h x A_w^T per channel, and the matrices
 * are what Resize itself makes of an identity (unit scale on the other axis maps samples onto
 * themselves). So gx = A_h^T g A_w, with the same attributes as the forward.
 */
const resize: GradRule = (c) => {
  const x = c.node.inputs[0]!;
  const y = c.node.outputs[0]!;
  if (x.rank !== 4 || ![...x.shape, ...y.shape].every((d) => typeof d === 'number')) throw new Error('no gradient rule for Resize other than a static 4-D resize of the last two dims');
  const [n, ch, inH, inW] = x.shape as number[];
  const [n2, ch2, outH, outW] = y.shape as number[];
  if (n !== n2 || ch !== ch2) throw new Error('no gradient rule for Resize over the batch or channel dims');
  const attrs = Object.fromEntries(Object.entries(c.node.attrs).map(([k, a]) => [k, a.value]));
  const interpolation = (from: number, to: number): Value => {
    const eye = new Array<number>(from * from).fill(0);
    for (let i = 0; i < from; i++) eye[i * from + i] = 1;
    const identity = constValue(x.dtype, [1, 1, from, from], floatArray(x.dtype, eye));
    const m = op.Resize(identity, undefined, undefined, i64([1, 1, to, from]), attrs);
    return op.Reshape(m, i64([to, from]));
  };
  const ah = interpolation(inH!, outH!);
  const aw = inW === inH && outW === outH ? ah : interpolation(inW!, outW!);
  const gx = op.MatMul(op.MatMul(op.Transpose(ah, { perm: [1, 0] }), c.gy), aw);
  return [gx];
};

export const INDEXING_RULES: Record<string, GradRule> = { Gather: gather, Compress: compress, CumSum: cumSum, Resize: resize };
