/** Attention cores shared by every family. */
import type { Tensor } from '../dsl/module.ts';
import * as op from '../ops/index.ts';
import { f32Scalar, i64, i64Scalar } from '../dsl/constants.ts';
import { reshape } from './layers.ts';

/**
 * Causal grouped-query attention. q [b, s, H, d]; k, v [b, s, KV, d] (rotary already applied);
 * returns [b, s, H*d]. Query head h reads kv head floor(h / (H/KV)), as transformers' repeat_kv.
 * Heads are grouped as [b, KV, G, s, d] so MatMul broadcasting shares each kv head without copies.
 */
export function causalGqa(q: Tensor, k: Tensor, v: Tensor, heads: number, kvHeads: number, headDim: number, mask: Tensor): Tensor {
  const group = heads / kvHeads;
  const qg = reshape(op.Transpose(q, { perm: [0, 2, 1, 3] }), [0, kvHeads, group, -1, headDim]);
  const kg = op.Unsqueeze(op.Transpose(k, { perm: [0, 2, 1, 3] }), i64([2]));
  const vg = op.Unsqueeze(op.Transpose(v, { perm: [0, 2, 1, 3] }), i64([2]));
  const scores = op.Mul(op.MatMul(qg, op.Transpose(kg, { perm: [0, 1, 2, 4, 3] })), f32Scalar(headDim ** -0.5));
  const masked = op.Where(mask, f32Scalar(-Infinity), scores);
  const out = op.MatMul(op.Softmax(masked, { axis: -1 }), vg);
  const merged = op.Transpose(reshape(out, [0, heads, -1, headDim]), { perm: [0, 2, 1, 3] });
  return reshape(merged, [0, 0, heads * headDim]);
}

/** [seq, seq] boolean mask, true where a query would see a later key. */
export function causalMask(seq: Tensor): Tensor {
  const pos = op.Range(i64Scalar(0), seq, i64Scalar(1));
  return op.Less(op.Unsqueeze(pos, i64([1])), op.Unsqueeze(pos, i64([0])));
}

/** Bidirectional multi-head attention (ViT). q, k, v [n, L, H, d] -> [n, L, H*d]. */
export function fullAttention(q: Tensor, k: Tensor, v: Tensor, heads: number, headDim: number): Tensor {
  const qh = op.Transpose(q, { perm: [0, 2, 1, 3] });
  const kh = op.Transpose(k, { perm: [0, 2, 3, 1] });
  const vh = op.Transpose(v, { perm: [0, 2, 1, 3] });
  const scores = op.MatMul(op.Mul(qh, f32Scalar(headDim ** -0.5)), kh);
  const out = op.MatMul(op.Softmax(scores, { axis: -1 }), vh);
  return reshape(op.Transpose(out, { perm: [0, 2, 1, 3] }), [0, 0, heads * headDim]);
}
