/**
 * Every gradient rule against central finite differences. Each case is a tiny graph run in ONNX
 * Runtime; the loss L = sum(y^2 / 2 + 0.3 y) of the op's output y, so any output shape works. For
 * each differentiated input, the analytic directional derivative <dL/dx, d> (from the backward
 * nodes autodiff appended) is compared with (L(x + e d) - L(x - e d)) / 2e for random directions d.
 * Float64 where ONNX Runtime's CPU kernels have it (tolerance 1e-7), float32 for the few that do not
 * (Erf, Conv, Resize, Cos/Sin: tolerance 2e-3 with e = 1e-2).
 */
import { describe, it, expect } from 'vitest';
import * as ortNs from 'onnxruntime-node';
import { GraphBuilder, withBuilder } from '../src/ir/builder.ts';
import { constValue, Value, type Graph } from '../src/ir/graph.ts';
import { resetFreshDims } from '../src/ir/dims.ts';
import { differentiate } from '../src/passes/autodiff.ts';
import { foldShapes } from '../src/passes/fold-shapes.ts';
import { removeDeadNodes } from '../src/passes/dead-nodes.ts';
import { nameGraph } from '../src/passes/naming.ts';
import { buildModelProto, encodeModel } from '../src/onnx/emit.ts';
import * as op from '../src/ops/index.ts';
import { DropoutSig } from '../src/ops/onnx.generated.ts';
import { i64, i64Scalar, INT64_MAX } from '../src/dsl/constants.ts';
import { DTYPES } from '../src/ir/dtype.ts';
import { GRAD_RULES } from '../src/passes/grad-rules/index.ts';

const ort = ((ortNs as unknown as { default?: typeof ortNs }).default ?? ortNs) as typeof ortNs;

type FloatDType = 'float32' | 'float64';
interface InputSpec {
  shape: (number | string)[];
  /** Concrete shape fed (defaults to `shape`). */
  feed?: number[];
  diff?: boolean;
  /** Values drawn from [lo, hi) (default [-1, 1)). */
  range?: [number, number];
}
interface Case {
  name: string;
  dtype?: FloatDType;
  inputs: Record<string, InputSpec>;
  forward: (x: Record<string, Value>, c: (v: number) => Value) => Value;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const arrayOf = (dtype: FloatDType, n: number) => (dtype === 'float64' ? new Float64Array(n) : new Float32Array(n));

async function check(c: Case): Promise<void> {
  const dtype = c.dtype ?? 'float64';
  resetFreshDims();
  const inputs: Record<string, Value> = {};
  for (const [name, spec] of Object.entries(c.inputs)) {
    const v = new Value('input', dtype, spec.shape);
    v.name = name;
    inputs[name] = v;
  }
  const scalarC = (x: number) => constValue(dtype, [], arrayOf(dtype, 1).fill(x));
  const builder = new GraphBuilder(17);
  const loss = withBuilder(builder, () => {
    const y = c.forward(inputs, scalarC);
    const yf = y.dtype === dtype ? y : op.Cast(y, { to: DTYPES[dtype].onnx });
    return op.ReduceSum(op.Add(op.Mul(op.Mul(yf, yf), scalarC(0.5)), op.Mul(yf, scalarC(0.3))), undefined, { keepdims: 0 });
  });
  loss.name = 'loss';
  const diffNames = Object.keys(c.inputs).filter((n) => c.inputs[n]!.diff !== false);
  const { grads, nodes } = differentiate(builder.nodes, loss, diffNames.map((n) => inputs[n]!), 17);
  const tail = new GraphBuilder(17);
  const gradOuts = withBuilder(tail, () =>
    diffNames.map((n) => {
      const g = grads.get(inputs[n]!);
      if (!g) throw new Error(`no gradient reaches ${n}`);
      const o = op.Identity(g);
      o.name = `grad.${n}`;
      return o;
    }),
  );
  const graph: Graph = { name: c.name, opset: 17, inputs: Object.values(inputs), outputs: [loss, ...gradOuts], nodes: [...builder.nodes, ...nodes, ...tail.nodes], params: [], metadata: {} };
  foldShapes(graph);
  removeDeadNodes(graph);
  nameGraph(graph);
  const bytes = encodeModel(buildModelProto(graph, { location: 'none', entries: new Map() }, { producerVersion: 'test' }));
  const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });

  const random = rng(1234);
  const values: Record<string, Float32Array | Float64Array> = {};
  for (const [name, spec] of Object.entries(c.inputs)) {
    const shape = spec.feed ?? (spec.shape as number[]);
    const [lo, hi] = spec.range ?? [-1, 1];
    values[name] = arrayOf(dtype, shape.reduce((a, d) => a * d, 1)).map(() => lo + (hi - lo) * random());
  }
  const feed = (vals: Record<string, Float32Array | Float64Array>) =>
    Object.fromEntries(Object.entries(c.inputs).map(([n, spec]) => [n, new ort.Tensor(dtype, vals[n]!, spec.feed ?? (spec.shape as number[]))]));
  const base = await session.run(feed(values));
  const eps = dtype === 'float64' ? 1e-6 : 1e-2;
  const tol = dtype === 'float64' ? 1e-7 : 2e-3;
  for (const name of diffNames) {
    const g = base[`grad.${name}`]!.data as Float64Array;
    expect(g.length, `grad.${name} size`).toBe(values[name]!.length);
    for (let trial = 0; trial < 3; trial++) {
      const d = values[name]!.map(() => random() * 2 - 1);
      const shifted = (sign: number) => ({ ...values, [name]: values[name]!.map((v, i) => v + sign * eps * d[i]!) });
      const plus = Number((await session.run(feed(shifted(1)))).loss!.data[0]);
      const minus = Number((await session.run(feed(shifted(-1)))).loss!.data[0]);
      const fd = (plus - minus) / (2 * eps);
      const analytic = g.reduce((acc, v, i) => acc + v * d[i]!, 0);
      const scale = Math.max(1, Math.abs(fd), Math.abs(analytic));
      expect(Math.abs(fd - analytic) / scale, `${c.name}: d/d${name} (trial ${trial}): fd ${fd} vs analytic ${analytic}`).toBeLessThanOrEqual(tol);
    }
  }
  await session.release();
}

const f = (shape: (number | string)[], extra: Partial<InputSpec> = {}): InputSpec => ({ shape, ...extra });
const positive: Partial<InputSpec> = { range: [0.5, 2] };
const fixed: Partial<InputSpec> = { diff: false };

const CASES: Case[] = [
  { name: 'Add (broadcast both ways)', inputs: { a: f([2, 3, 4]), b: f([3, 1]) }, forward: (x) => op.Add(x.a!, x.b!) },
  { name: 'Sub (broadcast)', inputs: { a: f([2, 3]), b: f([3]) }, forward: (x) => op.Sub(x.a!, x.b!) },
  { name: 'Mul (broadcast both)', inputs: { a: f([2, 1, 4]), b: f([3, 4]) }, forward: (x) => op.Mul(x.a!, x.b!) },
  { name: 'Div (broadcast)', inputs: { a: f([2, 3]), b: f([2, 1], positive) }, forward: (x) => op.Div(x.a!, x.b!) },
  { name: 'Neg', inputs: { a: f([5]) }, forward: (x) => op.Neg(x.a!) },
  { name: 'Pow', inputs: { a: f([4], positive), b: f([4]) }, forward: (x) => op.Pow(x.a!, x.b!) },
  { name: 'Reciprocal', inputs: { a: f([4], positive) }, forward: (x) => op.Reciprocal(x.a!) },
  { name: 'Sqrt', inputs: { a: f([4], positive) }, forward: (x) => op.Sqrt(x.a!) },
  { name: 'Exp', inputs: { a: f([4]) }, forward: (x) => op.Exp(x.a!) },
  { name: 'Log', inputs: { a: f([4], positive) }, forward: (x) => op.Log(x.a!) },
  { name: 'Erf (float32)', dtype: 'float32', inputs: { a: f([6]) }, forward: (x) => op.Erf(x.a!) },
  { name: 'Sigmoid', inputs: { a: f([6]) }, forward: (x) => op.Sigmoid(x.a!) },
  { name: 'Tanh', inputs: { a: f([6]) }, forward: (x) => op.Tanh(x.a!) },
  { name: 'Cos, Sin (float32)', dtype: 'float32', inputs: { a: f([6]) }, forward: (x) => op.Add(op.Cos(x.a!), op.Sin(op.Mul(x.a!, x.a!))) },
  { name: 'Max, Min', inputs: { a: f([2, 3]), b: f([3]) }, forward: (x) => op.Add(op.Max([x.a!, x.b!]), op.Min([x.a!, x.b!])) },
  {
    name: 'Where (broadcast branches)',
    inputs: { a: f([2, 3]), b: f([3]) },
    forward: (x) => op.Where(constValue('bool', [2, 3], Uint8Array.from([1, 0, 1, 0, 0, 1])), x.a!, x.b!),
  },
  { name: 'Cast (float32 -> float64 and back)', dtype: 'float32', inputs: { a: f([4]) }, forward: (x) => op.Cast(op.Mul(op.Cast(x.a!, { to: DTYPES.float64.onnx }), constValue('float64', [], Float64Array.of(3))), { to: DTYPES.float32.onnx }) },
  { name: 'MatMul (batched, broadcast 2-D right)', inputs: { a: f([2, 3, 4, 5]), b: f([5, 2]) }, forward: (x) => op.MatMul(x.a!, x.b!) },
  { name: 'MatMul (broadcast batch dims)', inputs: { a: f([2, 1, 3, 4]), b: f([2, 4, 2]) }, forward: (x) => op.MatMul(x.a!, x.b!) },
  ...[0, 1].flatMap((transA) =>
    [0, 1].map((transB) => ({
      name: `Gemm transA=${transA} transB=${transB} (alpha, beta, broadcast bias)`,
      inputs: { a: f(transA ? [4, 3] : [3, 4]), b: f(transB ? [5, 4] : [4, 5]), c: f([5]) },
      forward: (x: Record<string, Value>) => op.Gemm(x.a!, x.b!, x.c!, { transA, transB, alpha: 0.7, beta: 1.3 }),
    })),
  ),
  { name: 'Conv as patch embedding (float32)', dtype: 'float32', inputs: { x: f([2, 3, 8, 8], fixed), w: f([4, 3, 4, 4]), b: f([4]) }, forward: (x) => op.Conv(x.x!, x.w!, x.b!, { kernel_shape: [4, 4], strides: [4, 4] }) },
  { name: 'Conv 3x3 stride 2 pad 1 (float32)', dtype: 'float32', inputs: { x: f([1, 2, 7, 7], fixed), w: f([3, 2, 3, 3]) }, forward: (x) => op.Conv(x.x!, x.w!, undefined, { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }) },
  { name: 'Softmax (last axis)', inputs: { a: f([2, 5]) }, forward: (x) => op.Softmax(x.a!, { axis: -1 }) },
  { name: 'Softmax (axis 1, masked by -inf)', inputs: { a: f([2, 3, 2]) }, forward: (x, c) => op.Softmax(op.Where(constValue('bool', [3, 2], Uint8Array.from([0, 1, 0, 0, 1, 0])), c(-Infinity), x.a!), { axis: 1 }) },
  { name: 'LogSoftmax', inputs: { a: f([3, 4]) }, forward: (x) => op.LogSoftmax(x.a!, { axis: -1 }) },
  { name: 'LayerNormalization (last axis)', inputs: { x: f([2, 3, 6]), s: f([6]), b: f([6]) }, forward: (x) => op.LayerNormalization(x.x!, x.s!, x.b!, { axis: -1, epsilon: 1e-5 }) },
  { name: 'LayerNormalization (axis 1)', inputs: { x: f([2, 3, 4]), s: f([3, 4]), b: f([3, 4]) }, forward: (x) => op.LayerNormalization(x.x!, x.s!, x.b!, { axis: 1, epsilon: 1e-3 }) },
  { name: 'RMSNorm pattern (ReduceMean, Sqrt, Reciprocal)', inputs: { x: f([2, 5]), w: f([5]) }, forward: (x, c) => op.Mul(op.Mul(x.x!, op.Reciprocal(op.Sqrt(op.Add(op.ReduceMean(op.Mul(x.x!, x.x!), { axes: [-1], keepdims: 1 }), c(1e-6))))), x.w!) },
  { name: 'ReduceMean (keepdims 0)', inputs: { x: f([2, 3, 4]) }, forward: (x) => op.ReduceMean(x.x!, { axes: [0, 2], keepdims: 0 }) },
  { name: 'ReduceSum (axes input, all axes)', inputs: { x: f([2, 3]) }, forward: (x) => op.Add(op.ReduceSum(x.x!, i64([1]), { keepdims: 0 }), op.ReduceSum(x.x!, undefined, { keepdims: 1 })) },
  { name: 'Erf-GELU (float32)', dtype: 'float32', inputs: { x: f([7]) }, forward: (x, c) => op.Mul(op.Mul(x.x!, op.Add(c(1), op.Erf(op.Mul(x.x!, c(Math.SQRT1_2))))), c(0.5)) },
  { name: 'SiLU', inputs: { x: f([7]) }, forward: (x) => op.Mul(x.x!, op.Sigmoid(x.x!)) },
  { name: 'Reshape, Transpose', inputs: { x: f([2, 3, 4]) }, forward: (x) => op.Transpose(op.Reshape(x.x!, i64([4, 0, -1])), { perm: [2, 0, 1] }) },
  { name: 'Reshape over a symbolic dim', inputs: { x: f(['n', 6], { feed: [3, 6] }) }, forward: (x) => op.Reshape(x.x!, i64([-1, 2, 3])) },
  { name: 'Unsqueeze, Squeeze', inputs: { x: f([3, 1, 2]) }, forward: (x) => op.Unsqueeze(op.Squeeze(x.x!, i64([1])), i64([0, 3])) },
  { name: 'Expand', inputs: { x: f([3, 1]) }, forward: (x) => op.Expand(x.x!, i64([2, 3, 4])) },
  { name: 'Concat (one input not differentiated)', inputs: { a: f([2, 1, 3]), b: f([2, 2, 3], fixed), c: f([2, 3, 3]) }, forward: (x) => op.Concat([x.a!, x.b!, x.c!], { axis: 1 }) },
  { name: 'Concat along a symbolic dim', inputs: { a: f(['n', 2], { feed: [3, 2] }), b: f([1, 2]) }, forward: (x) => op.Concat([x.a!, x.b!], { axis: 0 }) },
  { name: 'Split', inputs: { x: f([5, 2]) }, forward: (x) => { const [a, b] = op.Split(x.x!, i64([2, 3]), { axis: 0 }, 2); return op.Add(op.ReduceSum(a!, i64([0]), { keepdims: 0 }), op.Mul(op.ReduceSum(b!, i64([0]), { keepdims: 0 }), b!)); } },
  { name: 'Slice (negative start, to the end, axes)', inputs: { x: f([3, 5, 4]) }, forward: (x) => op.Slice(x.x!, i64([-3, 1]), i64([INT64_MAX, 3]), i64([1, 2])) },
  { name: 'Slice over a symbolic dim (shifted logits)', inputs: { x: f([1, 's', 3], { feed: [1, 5, 3] }) }, forward: (x) => op.Slice(x.x!, i64([0]), i64([-1]), i64([1])) },
  { name: 'Slice over a symbolic dim (from 1 / last 2 / [1, 3))', inputs: { x: f(['s', 2], { feed: [6, 2] }) }, forward: (x) => op.Concat([op.Slice(x.x!, i64([1]), i64([INT64_MAX]), i64([0])), op.Slice(x.x!, i64([-2]), i64([INT64_MAX]), i64([0])), op.Slice(x.x!, i64([1]), i64([3]), i64([0]))], { axis: 0 }) },
  { name: 'Gather (embedding, repeated ids)', inputs: { w: f([5, 3]) }, forward: (x) => op.Gather(x.w!, constValue('int64', [2, 3], BigInt64Array.from([0n, 2n, 2n, 4n, 0n, 2n])), { axis: 0 }) },
  {
    name: 'Gather with a padding row (no gradient there)',
    inputs: { w: f([5, 3]) },
    forward: (x, c) => {
      const rows = op.Gather(x.w!, constValue('int64', [4], BigInt64Array.from([1n, 3n, 1n, 2n])), { axis: 0 });
      rows.producer!.paddingIdx = 1;
      // The analytic gradient ignores row 1; subtract it from the loss so FD agrees.
      const padRow = op.Gather(x.w!, i64Scalar(1), { axis: 0 });
      padRow.producer!.paddingIdx = 1;
      const mask = constValue('float64', [4, 1], Float64Array.from([0, 1, 0, 1]));
      return op.Add(op.Mul(rows, mask), op.Mul(padRow, c(0)));
    },
  },
  { name: 'Compress (axis 0)', inputs: { x: f([4, 3]) }, forward: (x) => op.Compress(x.x!, constValue('bool', [4], Uint8Array.from([1, 0, 1, 1])), { axis: 0 }) },
  { name: 'CumSum (and reverse, exclusive)', inputs: { x: f([2, 4]) }, forward: (x) => op.Add(op.CumSum(x.x!, i64Scalar(1)), op.CumSum(x.x!, i64Scalar(1), { reverse: 1, exclusive: 1 })) },
  {
    name: 'Resize bicubic, square (float32)',
    dtype: 'float32',
    inputs: { x: f([1, 2, 4, 4]) },
    forward: (x) => op.Resize(x.x!, undefined, undefined, i64([1, 2, 6, 6]), { mode: 'cubic', cubic_coeff_a: -0.75, coordinate_transformation_mode: 'half_pixel' }),
  },
  {
    name: 'Resize linear, non-square down (float32)',
    dtype: 'float32',
    inputs: { x: f([1, 2, 5, 4]) },
    forward: (x) => op.Resize(x.x!, undefined, undefined, i64([1, 2, 3, 6]), { mode: 'linear', coordinate_transformation_mode: 'half_pixel' }),
  },
  {
    name: 'Image splice (Compress, CumSum indices, Gather, Where)',
    inputs: { vit: f([3, 2, 4]), text: f([1, 6, 4]) },
    forward: (x) => {
      const ids = constValue('int64', [1, 6], BigInt64Array.from([1n, 9n, 9n, 2n, 9n, 9n]));
      const kept = op.Compress(x.vit!, constValue('bool', [3], Uint8Array.from([1, 0, 1])), { axis: 0 });
      const tokens = op.Concat([op.Reshape(kept, i64([-1, 4])), constValue('float64', [1, 4], new Float64Array(4))], { axis: 0 });
      const isImage = op.Equal(ids, i64Scalar(9));
      const count = op.CumSum(op.Reshape(op.Cast(isImage, { to: DTYPES.int64.onnx }), i64([-1])), i64Scalar(0));
      const index = op.Where(isImage, op.Reshape(op.Sub(count, i64Scalar(1)), op.Shape(ids)), i64Scalar(0));
      return op.Where(op.Unsqueeze(isImage, i64([-1])), op.Gather(tokens, index, { axis: 0 }), x.text!);
    },
  },
];

describe('gradient rules vs finite differences', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    await check(c);
  });

  // Dropout draws a new mask every run, so finite differences across runs do not apply: one run
  // gives y, the mask and the gradient, which must be x mask / (1 - p) and dL/dy mask / (1 - p).
  it('Dropout (training mode, LoRA): y = x mask / (1 - p), gx = gy mask / (1 - p), within one run', async () => {
    const x = new Value('input', 'float32', [4, 8]);
    x.name = 'x';
    const ratio = new Value('input', 'float32', []);
    ratio.name = 'ratio';
    const builder = new GraphBuilder(17);
    const { y, mask, loss } = withBuilder(builder, () => {
      const [y, mask] = builder.emit(DropoutSig, [x, ratio, constValue('bool', [], Uint8Array.of(1))], { seed: 7 }, 2) as [Value, Value];
      const half = constValue('float32', [], Float32Array.of(0.5));
      const loss = op.ReduceSum(op.Add(op.Mul(op.Mul(y, y), half), op.Mul(y, constValue('float32', [], Float32Array.of(0.3)))), undefined, { keepdims: 0 });
      return { y: op.Identity(y), mask: op.Cast(mask, { to: DTYPES.float32.onnx }), loss };
    });
    const { grads, nodes } = differentiate(builder.nodes, loss, [x], 17);
    const tail = new GraphBuilder(17);
    const gx = withBuilder(tail, () => op.Identity(grads.get(x)!));
    for (const [v, name] of [[y, 'y'], [mask, 'mask'], [loss, 'loss'], [gx, 'gx']] as const) v.name = name;
    const graph: Graph = { name: 'dropout', opset: 17, inputs: [x, ratio], outputs: [loss, y, mask, gx], nodes: [...builder.nodes, ...nodes, ...tail.nodes], params: [], metadata: {} };
    removeDeadNodes(graph);
    nameGraph(graph);
    const session = await ort.InferenceSession.create(encodeModel(buildModelProto(graph, { location: 'none', entries: new Map() }, { producerVersion: 'test' })), { logSeverityLevel: 3 });
    const random = rng(99);
    const xs = Float32Array.from({ length: 32 }, () => random() * 2 - 1);
    const out = await session.run({ x: new ort.Tensor('float32', xs, [4, 8]), ratio: new ort.Tensor('float32', Float32Array.of(0.5), []) });
    const [ys, ms, gs] = [out.y!.data, out.mask!.data, out.gx!.data] as Float32Array[];
    expect(ms.some((m) => m === 0) && ms.some((m) => m === 1)).toBe(true);
    for (let i = 0; i < 32; i++) {
      expect(ys[i]).toBeCloseTo((xs[i]! * ms[i]!) / 0.5, 6);
      expect(gs[i]).toBeCloseTo(((ys[i]! + 0.3) * ms[i]!) / 0.5, 5);
    }
    await session.release();
  });

  it('every rule is covered by a case', () => {
    const covered = new Set<string>(['Identity', 'Relu', 'Flatten', 'Dropout']);
    for (const c of CASES) for (const word of c.name.split(/[^A-Za-z]+/)) covered.add(word);
    covered.add('ReduceSum').add('ReduceMean').add('Unsqueeze').add('Squeeze').add('Reshape').add('Transpose');
    const missing = Object.keys(GRAD_RULES).filter((op) => !covered.has(op));
    expect(missing).toEqual([]);
  });
});

