/** Gradients of the products: MatMul (batched, broadcasting), Gemm (Linear), Conv (patch embedding). */
import * as op from '../../ops/index.ts';
import type { Value } from '../../ir/graph.ts';
import { i64 } from '../../dsl/constants.ts';
import type { GradContext, GradRule } from './types.ts';
import { scalar, sumToShape, transposeLast2 } from './util.ts';

const attr = (c: GradContext, name: string, fallback: number): number => (c.node.attrs[name]?.value as number | undefined) ?? fallback;

/** y = a @ b: ga = g @ b^T, gb = a^T @ g, each summed over the batch dims it was broadcast along. */
const matmul: GradRule = (c) => {
  const [a, b] = [c.node.inputs[0]!, c.node.inputs[1]!];
  if (a.rank < 2 || b.rank < 2) throw new Error('no gradient rule for MatMul with a rank-1 operand');
  return [
    c.needs(0) ? sumToShape(op.MatMul(c.gy, transposeLast2(b)), a.shape) : undefined,
    c.needs(1) ? sumToShape(op.MatMul(transposeLast2(a), c.gy), b.shape) : undefined,
  ];
};

/** y = alpha op(A) op(B) + beta C, written so that no operand is transposed in memory. */
const gemm: GradRule = (c) => {
  const [a, b, bias] = [c.node.inputs[0]!, c.node.inputs[1]!, c.node.inputs[2]];
  const transA = attr(c, 'transA', 0);
  const transB = attr(c, 'transB', 0);
  const alpha = attr(c, 'alpha', 1);
  const beta = attr(c, 'beta', 1);
  const g = c.gy;
  const scaled = (v: Value, k: number) => (k === 1 ? v : op.Mul(v, scalar(v, k)));
  const ga = (): Value => {
    if (!transA) return op.Gemm(g, b, undefined, { transB: transB ? 0 : 1, alpha });
    return op.Gemm(b, g, undefined, { transA: transB, transB: 1, alpha });
  };
  const gb = (): Value => {
    if (!transB) return op.Gemm(a, g, undefined, { transA: transA ? 0 : 1, alpha });
    return op.Gemm(g, a, undefined, { transA: 1, transB: transA, alpha });
  };
  return [c.needs(0) ? ga() : undefined, c.needs(1) ? gb() : undefined, bias && c.needs(2) ? scaled(sumToShape(g, bias.shape), beta) : undefined];
};

/**
 * 2-D convolution, groups 1. The weight gradient is itself a convolution: x with batch and
 * channels swapped, filtered by g (batch and channels swapped), with stride and dilation
 * exchanged; the result is cropped to the kernel. The input gradient (ConvTranspose) is never
 * needed by the zoo (pixel_values take no gradient) and has no rule.
 */
const conv: GradRule = (c) => {
  const [x, w, bias] = [c.node.inputs[0]!, c.node.inputs[1]!, c.node.inputs[2]];
  if (c.needs(0)) throw new Error('no gradient rule for the input of Conv');
  if (attr(c, 'group', 1) !== 1) throw new Error('no gradient rule for grouped Conv');
  const ints = (name: string, fallback: number[]) => (c.node.attrs[name]?.value as number[] | undefined) ?? fallback;
  const kernel = ints('kernel_shape', w.shape.slice(2) as number[]);
  const strides = ints('strides', [1, 1]);
  const dilations = ints('dilations', [1, 1]);
  const pads = ints('pads', [0, 0, 0, 0]);
  let gw: Value | undefined;
  if (c.needs(1)) {
    const xt = op.Transpose(x, { perm: [1, 0, 2, 3] });
    const gt = op.Transpose(c.gy, { perm: [1, 0, 2, 3] });
    const full = op.Conv(xt, gt, undefined, { strides: dilations, dilations: strides, pads });
    const cropped = op.Slice(full, i64([0, 0]), i64(kernel), i64([2, 3]));
    gw = op.Transpose(cropped, { perm: [1, 0, 2, 3] });
    gw.shape = [...w.shape];
  }
  const gb = bias && c.needs(2) ? op.ReduceSum(c.gy, i64([0, 2, 3]), { keepdims: 0 }) : undefined;
  return [undefined, gw, gb];
};

export const LINALG_RULES: Record<string, GradRule> = { MatMul: matmul, Gemm: gemm, Conv: conv };
