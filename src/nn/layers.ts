/**
 * Shared building blocks with parameters: Linear, LayerNorm, RMSNorm, Embedding. Each mirrors the
 * PyTorch module of the same name, so parameter names and shapes match checkpoints.
 */
import { Module, fail, type Tensor } from '../dsl/module.ts';
import { dimsConflict, formatShape } from '../ir/dims.ts';
import type { Param } from '../ir/graph.ts';
import * as op from '../ops/index.ts';
import { activeBuilder } from '../ir/builder.ts';
import { f32Scalar, i64 } from '../dsl/constants.ts';

/** torch.nn.Linear: y = x W^T + b, W stored [out, in]. */
export class Linear extends Module {
  readonly weight: Param;
  readonly bias: Param | undefined;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: { bias?: boolean } = {},
  ) {
    super();
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = this.param([outFeatures, inFeatures], { kind: 'uniform', bound });
    this.bias = opts.bias === false ? undefined : this.param([outFeatures], { kind: 'uniform', bound });
  }
  forward(x: Tensor): Tensor {
    return linear(x, this.weight.value, this.bias?.value);
  }
}

/**
 * x [..., in] times W^T for W stored [out, in] (+ b): a Gemm with transB, so the weight is used in
 * the checkpoint's own layout. A Transpose in front of a MatMul would make ONNX Runtime fold a
 * transposed copy of every weight at session creation (seconds and a second copy in memory).
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  const [out, inFeatures] = weight.shape as [number, number];
  if (x.rank === 0 || dimsConflict(x.shape[x.rank - 1]!, inFeatures)) {
    fail(`Linear: inner dimensions differ: ${formatShape(x.shape)} x weight ${formatShape(weight.shape)} (in_features ${inFeatures})`);
  }
  if (x.rank === 2) return op.Gemm(x, weight, bias, { transB: 1 });
  const y = op.Gemm(op.Reshape(x, i64([-1, inFeatures])), weight, bias, { transB: 1 });
  const result = op.Reshape(y, leadingDimsThen(x, out));
  // The flattening hides the leading dims from shape inference; they are x's, by construction.
  result.shape = [...x.shape.slice(0, -1), out];
  return result;
}

/** Target shape [...x.shape[:-1], last]: a constant when at most one leading dim is symbolic. */
function leadingDimsThen(x: Tensor, last: number): Tensor {
  const lead = x.shape.slice(0, -1);
  const symbolic = lead.filter((d) => typeof d !== 'number').length;
  if (symbolic <= 1) return i64([...lead.map((d) => (typeof d === 'number' ? d : -1)), last]);
  return op.Concat([op.Shape(x, { end: -1 }), i64([last])], { axis: 0 });
}

/** torch.nn.LayerNorm over the last dim. */
export class LayerNorm extends Module {
  readonly weight: Param;
  readonly bias: Param;
  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
  ) {
    super();
    this.weight = this.param([dim], { kind: 'ones' });
    this.bias = this.param([dim], { kind: 'zeros' });
  }
  forward(x: Tensor): Tensor {
    return op.LayerNormalization(x, this.weight.value, this.bias.value, { axis: -1, epsilon: this.eps });
  }
}

/** RMSNorm as in Llama / InternRMSNorm: x / sqrt(mean(x^2) + eps) * w, computed in fp32. */
export class RMSNorm extends Module {
  readonly weight: Param;
  constructor(
    readonly dim: number,
    readonly eps = 1e-6,
  ) {
    super();
    this.weight = this.param([dim], { kind: 'ones' });
  }
  forward(x: Tensor): Tensor {
    return op.Mul(rmsNormalize(x, this.eps), this.weight.value);
  }
}

export function rmsNormalize(x: Tensor, eps: number): Tensor {
  const variance = op.ReduceMean(op.Mul(x, x), { axes: [-1], keepdims: 1 });
  return op.Mul(x, op.Reciprocal(op.Sqrt(op.Add(variance, f32Scalar(eps)))));
}

/** torch.nn.Embedding; `paddingIdx` is recorded for training (its row gets no gradient). */
export class Embedding extends Module {
  readonly weight: Param;
  constructor(
    readonly vocab: number,
    readonly dim: number,
    readonly paddingIdx?: number,
  ) {
    super();
    // A Gather reads it, in every graph (a tied lm_head included): never stored quantised.
    this.weight = this.param([vocab, dim], { kind: 'normal', std: 0.02 }, 'float32', 'embedding');
  }
  forward(ids: Tensor): Tensor {
    const rows = op.Gather(this.weight.value, ids, { axis: 0 });
    if (this.paddingIdx !== undefined) rows.producer!.paddingIdx = this.paddingIdx;
    return rows;
  }
  /** Logits against the embedding matrix (tied lm_head). */
  attend(h: Tensor): Tensor {
    return linear(h, this.weight.value);
  }
}

/**
 * Exact (erf) GELU, as torch.nn.GELU() and transformers' "gelu": a composite op (targets with a
 * GELU kernel lower it to that; src/passes/lower.ts), whose decomposition is the formula.
 */
export function gelu(x: Tensor): Tensor {
  return activeBuilder().composite('Gelu', [x], {}, () => {
    const cdf = op.Add(f32Scalar(1), op.Erf(op.Mul(x, f32Scalar(Math.SQRT1_2))));
    return [op.Mul(op.Mul(x, cdf), f32Scalar(0.5))];
  })[0]!;
}

export function silu(x: Tensor): Tensor {
  return op.Mul(x, op.Sigmoid(x));
}

/** Reshape to a literal target (0 copies the input's dim, -1 is inferred). */
export function reshape(x: Tensor, shape: number[]): Tensor {
  return op.Reshape(x, i64(shape));
}
