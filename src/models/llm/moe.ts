/**
 * Sparse mixture-of-experts, lowered to standard ONNX ops (the portable graph).
 *
 * The lowering: every token's top-k routing as dense weights [T, E] (zero where an expert was not
 * chosen); the union U of the experts any token chose (NonZero); each chosen expert's weights
 * gathered once from the experts stacked [E, ...]; every token through every expert of U (batched
 * MatMuls [n, T, ...]); the outputs weighted by the dense weights and summed over U. A token's
 * unchosen experts of U are multiplied by an exact 0, so the result is transformers' per-expert
 * loop up to the order of a k-term sum.
 *
 * Cost, for E experts, top-k, T tokens (docs/performance.md measures it): at decode (T = 1) the
 * graph reads the k chosen experts (gathered: read, written, read again by the MatMuls, about 3x
 * the active parameters' bytes); at prefill U grows to min(E, T k) experts, so compute is up to
 * E / k times the active FLOPs (16x for 128 experts, top-8) and one gather copies the layer's
 * experts. The stacking of per-expert checkpoint tensors is constant-folded by ONNX Runtime at
 * session creation (once, not per step).
 *
 * Gradients: the router's (through the softmax and the dense weights; TopK only picks indices, as
 * torch.topk's indices carry none) and the chosen experts' (Gather's rule scatters back to E).
 */
import type { Tensor } from '../../dsl/module.ts';
import * as op from '../../ops/index.ts';
import { f32Scalar, i64 } from '../../dsl/constants.ts';
import { DTYPES } from '../../ir/dtype.ts';
import { reshape } from '../../nn/layers.ts';
import { activeBuilder } from '../../ir/builder.ts';

/** Which experts each token picked: TopK's indices as a 0/1 float mask [T, E]. */
export function chosenExperts(scores: Tensor, k: number, experts: number): Tensor {
  const [, indices] = op.TopK(scores, i64([k]), { axis: -1, largest: 1, sorted: 1 });
  const ids = i64(Array.from({ length: experts }, (_, e) => e));
  const oneHot = op.Equal(op.Unsqueeze(indices!, i64([-1])), ids);
  return op.ReduceMax(op.Cast(oneHot, { to: DTYPES.float32.onnx }), { axes: [1], keepdims: 0 });
}

/**
 * Qwen2/3-MoE and Mixtral routing: softmax over all experts, the top k kept; with `normalize`
 * (norm_topk_prob) the kept probabilities are divided by their sum. Dense [T, E].
 */
export function softmaxTopKWeights(logits: Tensor, k: number, experts: number, normalize: boolean): { weights: Tensor; chosen: Tensor } {
  const probs = op.Softmax(logits, { axis: -1 });
  const chosen = chosenExperts(probs, k, experts);
  const kept = op.Mul(probs, chosen);
  const weights = normalize ? op.Div(kept, op.ReduceSum(kept, i64([-1]), { keepdims: 1 })) : kept;
  return { weights, chosen };
}

/** GPT-OSS routing: the top k logits, softmax over those alone. Dense [T, E]. */
export function topKSoftmaxWeights(logits: Tensor, k: number, experts: number): { weights: Tensor; chosen: Tensor } {
  const chosen = chosenExperts(logits, k, experts);
  const masked = op.Where(op.Cast(chosen, { to: DTYPES.bool.onnx }), logits, f32Scalar(-Infinity));
  return { weights: op.Softmax(masked, { axis: -1 }), chosen };
}

/** The experts some token chose, ascending: int64 [n]. */
export function usedExperts(chosen: Tensor): Tensor {
  const any = op.ReduceMax(chosen, { axes: [0], keepdims: 0 });
  return op.Squeeze(op.NonZero(op.Cast(any, { to: DTYPES.bool.onnx })), i64([0]));
}

/** Rows U of a per-expert tensor [E, ...] -> [n, ...]. */
export function gatherExperts(stacked: Tensor, used: Tensor): Tensor {
  return op.Gather(stacked, used, { axis: 0 });
}

/**
 * Per-expert weights, each stored [out, in] as the checkpoint has them, stacked and transposed to
 * [E, in, out] for x [T, in] · W -> [E, T, out]. ONNX Runtime folds this at session creation.
 */
export function stackTransposed(weights: Tensor[], out: number, inFeatures: number): Tensor {
  const stacked = reshape(op.Concat(weights, { axis: 0 }), [weights.length, out, inFeatures]);
  return op.Transpose(stacked, { perm: [0, 2, 1] });
}

/** x [T, in] through each gathered expert [n, in, out] (+ bias [n, out]) -> [n, T, out]. */
export function expertLinear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  const y = op.MatMul(x, weight);
  return bias ? op.Add(y, op.Unsqueeze(bias, i64([1]))) : y;
}

/** Σ over the used experts of weights[t, e] · y[e, t, :]: y [n, T, H] -> [T, H]. */
export function combineExperts(y: Tensor, weights: Tensor, used: Tensor): Tensor {
  const w = op.Gather(op.Transpose(weights, { perm: [1, 0] }), used, { axis: 0 });
  return op.ReduceSum(op.Mul(y, op.Unsqueeze(w, i64([-1]))), i64([0]), { keepdims: 0 });
}

/** x [b, s, H] -> f(x as [T, H]) -> back to [b, s, H]. */
export function overTokens(x: Tensor, hidden: number, f: (tokens: Tensor) => Tensor): Tensor {
  const out = op.Reshape(f(reshape(x, [-1, hidden])), op.Shape(x));
  out.shape = [...x.shape];
  return out;
}

/**
 * What ONNX Runtime's `MoE` contrib op (com.microsoft) needs to compute a sparse block exactly
 * (probed on ORT 1.30's CPU kernel: src/passes/lower.ts): routing is softmax over all experts, the
 * top k, divided by their sum when `normalize` (GPT-OSS's softmax over the top-k logits is the
 * same numbers); the expert is a SwiGLU g · σ(alpha g) · (u + beta) with g = min(gate, limit) and
 * u clamped to ±limit (no clamp without a limit).
 */
export interface SparseMoeSpec {
  topK: number;
  normalize: boolean;
  /** Where gate and up sit in the columns of gate_up [E, H, 2I]: alternating (GPT-OSS) or as two halves (Qwen3-MoE). */
  gateUp: 'interleaved' | 'halves';
  alpha: number;
  beta: number;
  limit?: number;
}

/** A sparse block's stacked expert weights: gate_up [E, H, 2I] and down [E, I, H] (x · W), biases [E, 2I] / [E, H] where the family has them. */
export interface StackedExperts {
  gateUp: Tensor;
  down: Tensor;
  bias?: { gateUp: Tensor; down: Tensor };
}

/**
 * A sparse MoE block over tokens [T, H] and router logits [T, E], as the composite op `SparseMoe`:
 * `--target gpu` lowers it to ONNX Runtime's `MoE` kernel (src/passes/lower.ts); everywhere else
 * (portable, training graphs, `--fuse` without `moe`) it is `decompose`, the portable lowering above.
 */
export function sparseMoe(tokens: Tensor, logits: Tensor, w: StackedExperts, spec: SparseMoeSpec, decompose: () => Tensor): Tensor {
  const inputs = [tokens, logits, w.gateUp, w.down, ...(w.bias ? [w.bias.gateUp, w.bias.down] : [])];
  return activeBuilder().composite('SparseMoe', inputs, { ...spec }, () => [decompose()])[0]!;
}
