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
export function causalGqa(q: Tensor, k: Tensor, v: Tensor, heads: number, kvHeads: number, headDim: number, mask: Tensor, cache?: KvCache, sinks?: Tensor): Tensor {
  const group = heads / kvHeads;
  const qg = reshape(op.Transpose(q, { perm: [0, 2, 1, 3] }), [0, kvHeads, group, -1, headDim]);
  let kt = op.Transpose(k, { perm: [0, 2, 1, 3] });
  let vt = op.Transpose(v, { perm: [0, 2, 1, 3] });
  if (cache) [kt, vt] = cache.extend(kt, vt);
  const kg = op.Unsqueeze(kt, i64([2]));
  const vg = op.Unsqueeze(vt, i64([2]));
  const scores = op.Mul(op.MatMul(qg, op.Transpose(kg, { perm: [0, 1, 2, 4, 3] })), f32Scalar(headDim ** -0.5));
  const masked = op.Where(mask, f32Scalar(-Infinity), scores);
  const probs = sinks ? softmaxWithSinks(masked, sinks, kvHeads, group) : op.Softmax(masked, { axis: -1 });
  const out = op.MatMul(probs, vg);
  const merged = op.Transpose(reshape(out, [0, heads, -1, headDim]), { perm: [0, 2, 1, 3] });
  return reshape(merged, [0, 0, heads * headDim]);
}

/**
 * Attention sinks (GPT-OSS): each query head has a learned logit that joins its row of scores in
 * the softmax and is then dropped, so the kept probabilities sum to less than 1. scores
 * [b, KV, G, q, k], sinks [heads] (head h = kv group h / G, member h % G, as repeat_kv orders them).
 */
function softmaxWithSinks(scores: Tensor, sinks: Tensor, kvHeads: number, group: number): Tensor {
  const column = op.Concat([op.Shape(scores, { end: -1 }), i64([1])], { axis: 0 });
  const sink = op.Expand(reshape(sinks, [1, kvHeads, group, 1, 1]), column);
  const probs = op.Softmax(op.Concat([scores, sink], { axis: -1 }), { axis: -1 });
  return op.Slice(probs, i64([0]), i64([-1]), i64([-1]));
}

/**
 * The KV cache of one decoder forward: the past keys and values of every layer, [b, kv_heads, past,
 * head_dim] (rotary applied, as onnxruntime-genai and transformers store them), consumed in layer
 * order; each layer's keys and values over past + seq become its `present`.
 */
export class KvCache {
  readonly present: { key: Tensor; value: Tensor }[] = [];
  constructor(readonly past: readonly { key: Tensor; value: Tensor }[]) {}

  /** k, v [b, kv_heads, seq, d] of the next layer -> past ++ new along the sequence axis. */
  extend(k: Tensor, v: Tensor): [Tensor, Tensor] {
    const past = this.past[this.present.length];
    if (!past) throw new Error(`KV cache: a layer past the ${this.past.length} declared`);
    const key = op.Concat([past.key, k], { axis: 2 });
    const value = op.Concat([past.value, v], { axis: 2 });
    this.present.push({ key, value });
    return [key, value];
  }
}

/**
 * [b, 1, 1, seq, past+seq] boolean mask for a forward after `past` cached positions, true where a
 * query must not see a key: a later position, or a key whose attention_mask [b, past+seq] is 0.
 * Query i sits at position past + i of its row.
 */
export function cachedCausalMask(seq: Tensor, attentionMask: Tensor): Tensor {
  const total = op.Squeeze(op.Shape(attentionMask, { start: 1, end: 2 }), i64([0]));
  const past = op.Sub(total, seq);
  const queries = op.Add(op.Range(i64Scalar(0), seq, i64Scalar(1)), past);
  const keys = op.Range(i64Scalar(0), total, i64Scalar(1));
  const later = op.Less(op.Unsqueeze(queries, i64([1])), op.Unsqueeze(keys, i64([0])));
  const padding = op.Unsqueeze(op.Equal(attentionMask, i64Scalar(0)), i64([1]));
  return op.Unsqueeze(op.Or(later, padding), i64([1, 2]));
}

/** [seq, seq] boolean mask, true where a query would see a later key. */
export function causalMask(seq: Tensor): Tensor {
  const pos = op.Range(i64Scalar(0), seq, i64Scalar(1));
  return op.Less(op.Unsqueeze(pos, i64([1])), op.Unsqueeze(pos, i64([0])));
}

/**
 * True where a key lies `window` or more positions before its query: with the causal mask, each
 * query sees the `window` keys i - window < j <= i (transformers' sliding_window_overlay).
 * `queries` [..., q] and `keys` [..., k] are positions; the result is [..., q, k].
 */
export function outsideWindow(queries: Tensor, keys: Tensor, window: number): Tensor {
  const distance = op.Sub(op.Unsqueeze(queries, i64([-1])), op.Unsqueeze(keys, i64([-2])));
  return op.GreaterOrEqual(distance, i64Scalar(window));
}

/** [seq, seq] causal mask that also hides keys `window` or more positions back. */
export function slidingCausalMask(seq: Tensor, causal: Tensor, window: number): Tensor {
  const pos = op.Range(i64Scalar(0), seq, i64Scalar(1));
  return op.Or(causal, outsideWindow(pos, pos, window));
}

/**
 * The cached causal mask (cachedCausalMask) that also hides keys `window` or more tokens before
 * the query. Distances count attended tokens (the running sum of attention_mask), not cache
 * slots: a right-padded row's cache has holes where its padding sat, and its later tokens must
 * see the window that row would see alone.
 */
export function cachedSlidingMask(seq: Tensor, attentionMask: Tensor, causal: Tensor, window: number): Tensor {
  const keyPositions = op.CumSum(attentionMask, i64Scalar(1));
  const total = op.Squeeze(op.Shape(attentionMask, { start: 1, end: 2 }), i64([0]));
  const queryPositions = op.Gather(keyPositions, op.Range(op.Sub(total, seq), total, i64Scalar(1)), { axis: 1 });
  return op.Or(causal, op.Unsqueeze(outsideWindow(queryPositions, keyPositions, window), i64([1, 2])));
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
