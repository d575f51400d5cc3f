/** Gradients of the normalisations and reductions: Softmax, LogSoftmax, LayerNormalization, ReduceMean/Sum; Dropout. */
import * as op from '../../ops/index.ts';
import type { Value } from '../../ir/graph.ts';
import { i64 } from '../../dsl/constants.ts';
import { DTYPES } from '../../ir/dtype.ts';
import type { GradContext, GradRule } from './types.ts';
import { normAxis, range, scalar, shapeOf, sumToShape } from './util.ts';

const intAttr = (c: GradContext, name: string, fallback: number): number => (c.node.attrs[name]?.value as number | undefined) ?? fallback;

/** Softmax (opset 13: one axis): gx = y (g - sum(g y)). */
const softmax: GradRule = (c) => {
  const y = c.node.outputs[0]!;
  const axes = i64([intAttr(c, 'axis', -1)]);
  const gy = op.Mul(c.gy, y);
  return [op.Sub(gy, op.Mul(y, op.ReduceSum(gy, axes, { keepdims: 1 })))];
};

/** LogSoftmax: gx = g - softmax(x) sum(g). */
const logSoftmax: GradRule = (c) => {
  const y = c.node.outputs[0]!;
  const axes = i64([intAttr(c, 'axis', -1)]);
  return [op.Sub(c.gy, op.Mul(op.Exp(y), op.ReduceSum(c.gy, axes, { keepdims: 1 })))];
};

/**
 * LayerNormalization over axes [axis, rank): the statistics are recomputed (the forward node keeps
 * only its first output). With x^ = (x - mean) rstd: gscale = sum g x^, gbias = sum g, and
 * gx = rstd (gx^ - mean(gx^) - x^ mean(gx^ x^)) where gx^ = g scale.
 */
const layerNorm: GradRule = (c) => {
  const [x, scale, bias] = [c.node.inputs[0]!, c.node.inputs[1]!, c.node.inputs[2]];
  const axis = normAxis(intAttr(c, 'axis', -1), x.rank);
  const eps = (c.node.attrs.epsilon?.value as number | undefined) ?? 1e-5;
  const axes = range(x.rank).slice(axis);
  const mean = (v: Value) => op.ReduceMean(v, { axes, keepdims: 1 });
  const centred = op.Sub(x, mean(x));
  const rstd = op.Reciprocal(op.Sqrt(op.Add(mean(op.Mul(centred, centred)), scalar(x, eps))));
  const xhat = op.Mul(centred, rstd);
  const g = c.gy;
  const gx = (): Value => {
    const gxhat = op.Mul(g, scale);
    return op.Mul(rstd, op.Sub(op.Sub(gxhat, mean(gxhat)), op.Mul(xhat, mean(op.Mul(gxhat, xhat)))));
  };
  return [
    c.needs(0) ? gx() : undefined,
    c.needs(1) ? sumToShape(op.Mul(g, xhat), scale.shape) : undefined,
    bias && c.needs(2) ? sumToShape(g, bias.shape) : undefined,
  ];
};

/** The reduced axes of a Reduce* node (attribute or input), normalised. */
function reducedAxes(c: GradContext): number[] {
  const x = c.node.inputs[0]!;
  const fromInput = c.node.inputs[1]?.sym;
  const raw = (fromInput as number[] | undefined) ?? (c.node.attrs.axes?.value as number[] | undefined) ?? range(x.rank);
  return raw.map((a) => normAxis(a, x.rank));
}

/** g broadcast back over the reduced axes. */
function expandBack(c: GradContext, axes: number[]): Value {
  const x = c.node.inputs[0]!;
  const keep = intAttr(c, 'keepdims', 1) === 1;
  const g = keep ? c.gy : op.Unsqueeze(c.gy, i64(axes));
  const out = op.Expand(g, shapeOf(x));
  out.shape = [...x.shape];
  return out;
}

const reduceSum: GradRule = (c) => [expandBack(c, reducedAxes(c))];

const reduceMean: GradRule = (c) => {
  const x = c.node.inputs[0]!;
  const axes = reducedAxes(c);
  const count = axes.map((a) => x.shape[a]!);
  if (!count.every((d) => typeof d === 'number')) throw new Error('no gradient rule for ReduceMean over symbolic dims');
  const n = (count as number[]).reduce((p, d) => p * d, 1);
  return [op.Mul(expandBack(c, axes), scalar(x, 1 / n))];
};

/**
 * Dropout in training mode (LoRA's input dropout): y = x * mask / (1 - ratio), so gx = g * mask /
 * (1 - ratio), from the forward's own mask output. A ratio of 0 is the identity.
 */
const dropout: GradRule = (c) => {
  const [x, ratio, trainingMode] = c.node.inputs;
  const mask = c.node.outputs[1];
  const training = trainingMode?.data?.data[0];
  if (!mask || !ratio || !training) throw new Error('no gradient rule for Dropout without a ratio, training_mode true and its mask output');
  const keep = op.Div(op.Cast(mask, { to: DTYPES[x!.dtype].onnx }), op.Sub(scalar(x!, 1), ratio));
  return [c.needs(0) ? op.Mul(c.gy, keep) : undefined];
};

export const NN_RULES: Record<string, GradRule> = {
  Dropout: dropout,
  Softmax: softmax,
  LogSoftmax: logSoftmax,
  LayerNormalization: layerNorm,
  ReduceSum: reduceSum,
  ReduceMean: reduceMean,
};
