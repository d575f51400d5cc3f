/** Gradients of elementwise ops: broadcasting arithmetic and the activations the zoo uses. */
import * as op from '../../ops/index.ts';
import type { Value } from '../../ir/graph.ts';
import type { GradRule } from './types.ts';
import { scalar, sumToShape, castTo } from './util.ts';

const input = (c: Parameters<GradRule>[0], i: number): Value => c.node.inputs[i]!;
const output = (c: Parameters<GradRule>[0]): Value => c.node.outputs[0]!;
const when = (c: Parameters<GradRule>[0], i: number, f: () => Value): Value | undefined => (c.needs(i) ? f() : undefined);

export const ELEMENTWISE_RULES: Record<string, GradRule> = {
  Add: (c) => [when(c, 0, () => sumToShape(c.gy, input(c, 0).shape)), when(c, 1, () => sumToShape(c.gy, input(c, 1).shape))],
  Sub: (c) => [when(c, 0, () => sumToShape(c.gy, input(c, 0).shape)), when(c, 1, () => sumToShape(op.Neg(c.gy), input(c, 1).shape))],
  Mul: (c) => [
    when(c, 0, () => sumToShape(op.Mul(c.gy, input(c, 1)), input(c, 0).shape)),
    when(c, 1, () => sumToShape(op.Mul(c.gy, input(c, 0)), input(c, 1).shape)),
  ],
  // d(a/b)/db = -a/b^2 = -y/b
  Div: (c) => [
    when(c, 0, () => sumToShape(op.Div(c.gy, input(c, 1)), input(c, 0).shape)),
    when(c, 1, () => sumToShape(op.Neg(op.Div(op.Mul(c.gy, output(c)), input(c, 1))), input(c, 1).shape)),
  ],
  Neg: (c) => [op.Neg(c.gy)],
  Identity: (c) => [c.gy],
  // d(a^b)/da = b a^(b-1); d/db = y ln a (a > 0)
  Pow: (c) => {
    const [a, b] = [input(c, 0), input(c, 1)];
    const bf = castTo(b, a.dtype);
    return [
      when(c, 0, () => sumToShape(op.Mul(c.gy, op.Mul(bf, op.Pow(a, op.Sub(bf, scalar(a, 1))))), a.shape)),
      when(c, 1, () => sumToShape(op.Mul(c.gy, op.Mul(output(c), op.Log(a))), b.shape)),
    ];
  },
  Reciprocal: (c) => [op.Neg(op.Mul(c.gy, op.Mul(output(c), output(c))))],
  Sqrt: (c) => [op.Div(op.Mul(c.gy, scalar(c.gy, 0.5)), output(c))],
  Exp: (c) => [op.Mul(c.gy, output(c))],
  Log: (c) => [op.Div(c.gy, input(c, 0))],
  // d erf(x)/dx = 2/sqrt(pi) exp(-x^2)
  Erf: (c) => {
    const x = input(c, 0);
    return [op.Mul(c.gy, op.Mul(scalar(x, 2 / Math.sqrt(Math.PI)), op.Exp(op.Neg(op.Mul(x, x)))))];
  },
  Sigmoid: (c) => {
    const y = output(c);
    return [op.Mul(c.gy, op.Mul(y, op.Sub(scalar(y, 1), y)))];
  },
  Tanh: (c) => {
    const y = output(c);
    return [op.Mul(c.gy, op.Sub(scalar(y, 1), op.Mul(y, y)))];
  },
  Cos: (c) => [op.Neg(op.Mul(c.gy, op.Sin(input(c, 0))))],
  Sin: (c) => [op.Mul(c.gy, op.Cos(input(c, 0)))],
  Relu: (c) => [op.Where(op.Greater(input(c, 0), scalar(c.gy, 0)), c.gy, scalar(c.gy, 0))],
  // The condition gets no gradient; each branch gets g where it was chosen.
  Where: (c) => {
    const [cond, a, b] = [input(c, 0), input(c, 1), input(c, 2)];
    const zero = scalar(c.gy, 0);
    return [
      undefined,
      when(c, 1, () => sumToShape(op.Where(cond, c.gy, zero), a.shape)),
      when(c, 2, () => sumToShape(op.Where(cond, zero, c.gy), b.shape)),
    ];
  },
  // Float -> float casts pass the gradient back in the input's dtype.
  Cast: (c) => [castTo(c.gy, input(c, 0).dtype)],
  Max: (c) => minMax(c, op.GreaterOrEqual),
  Min: (c) => minMax(c, op.LessOrEqual),
};

function minMax(c: Parameters<GradRule>[0], pick: (a: Value, b: Value) => Value): (Value | undefined)[] {
  if (c.node.inputs.length !== 2) throw new Error(`no gradient rule for ${c.node.op} with ${c.node.inputs.length} inputs`);
  const [a, b] = [input(c, 0), input(c, 1)];
  const first = pick(a, b);
  const zero = scalar(c.gy, 0);
  return [
    when(c, 0, () => sumToShape(op.Where(first, c.gy, zero), a.shape)),
    when(c, 1, () => sumToShape(op.Where(first, zero, c.gy), b.shape)),
  ];
}

