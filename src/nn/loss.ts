/**
 * The training loss as InternVL's forward computes it with labels: cross-entropy of the shifted
 * logits (position t predicts label t+1), ignore_index -100, averaged over every labelled token of
 * the batch (not per row).
 */
import * as op from '../ops/index.ts';
import type { Tensor } from '../dsl/module.ts';
import { i64, i64Scalar, INT64_MAX } from '../dsl/constants.ts';
import { DTYPES } from '../ir/dtype.ts';

export const IGNORE_INDEX = -100;

/** logits [batch, seq, vocab] F32, labels [batch, seq] I64 -> scalar loss. */
export function causalLmLoss(logits: Tensor, labels: Tensor): Tensor {
  const vocab = logits.shape[2] as number;
  const predicted = op.Slice(logits, i64([0]), i64([-1]), i64([1]));
  const targets = op.Slice(labels, i64([1]), i64([INT64_MAX]), i64([1]));
  const labelled = op.Not(op.Equal(targets, i64Scalar(IGNORE_INDEX)));
  const safeTargets = op.Where(labelled, targets, i64Scalar(0));
  const logProbs = op.LogSoftmax(predicted, { axis: -1 });
  // One-hot selection keeps the loss in ops whose gradients are plain elementwise products.
  const oneHot = op.Cast(op.Equal(op.Unsqueeze(safeTargets, i64([-1])), op.Range(i64Scalar(0), i64Scalar(vocab), i64Scalar(1))), { to: DTYPES.float32.onnx });
  const tokenLogProb = op.ReduceSum(op.Mul(logProbs, oneHot), i64([-1]), { keepdims: 0 });
  const weights = op.Cast(labelled, { to: DTYPES.float32.onnx });
  const total = op.ReduceSum(op.Mul(tokenLogProb, weights), undefined, { keepdims: 0 });
  const count = op.ReduceSum(weights, undefined, { keepdims: 0 });
  return op.Neg(op.Div(total, count));
}
