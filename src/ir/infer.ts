/**
 * Shape inference (and symbolic evaluation of small integer tensors) for the ops the building
 * blocks use. Runs as each node is created; a thrown Error becomes a GraphError naming the module.
 */
import type { DType } from './dtype.ts';
import type { Dim, Node, Shape, Value } from './graph.ts';
import type { OpSignature } from '../ops/signature.ts';
import { broadcastShapes, dimAdd, dimDiv, dimMul, dimSub, dimsConflict, formatShape, freshDim, product } from './dims.ts';
import { dtypeFromOnnx } from './dtype.ts';

type Rule = (node: Node, a: AttrReader) => void;

interface AttrReader {
  int(name: string): number | undefined;
  ints(name: string): number[] | undefined;
  float(name: string): number | undefined;
}

const UNARY = ['Relu', 'Sigmoid', 'Tanh', 'Erf', 'Sqrt', 'Reciprocal', 'Neg', 'Exp', 'Log', 'Abs', 'Cos', 'Sin', 'Softmax', 'LogSoftmax', 'Identity', 'Not', 'IsNaN', 'IsInf', 'CumSum', 'Trilu', 'Floor', 'Ceil', 'Round', 'Sign'];
const BROADCAST = ['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor', 'Where', 'Max', 'Min', 'Sum', 'Mean', 'Mod'];

const RULES: Record<string, Rule> = {
  MatMul: (n) => setShape(n, matmulShape(req(n, 0).shape, req(n, 1).shape)),
  Gemm: inferGemm,
  // Output and mask have the data's shape.
  Dropout: (n) => {
    for (const o of n.outputs) o.shape = [...req(n, 0).shape];
  },
  Reshape: inferReshape,
  Transpose: (n, a) => {
    const x = req(n, 0).shape;
    const perm = a.ints('perm') ?? x.map((_, i) => x.length - 1 - i);
    if (perm.length !== x.length) throw new Error(`perm ${formatShape(perm)} does not fit rank ${x.length}`);
    setShape(n, perm.map((p) => x[p]!));
  },
  Concat: inferConcat,
  LayerNormalization: inferLayerNorm,
  Slice: inferSlice,
  Gather: inferGather,
  Unsqueeze: (n) => {
    const x = req(n, 0).shape;
    const axes = constInts(n, 1, 'axes');
    const rank = x.length + axes.length;
    const norm = axes.map((ax) => normAxis(ax, rank));
    const out: Dim[] = [];
    let j = 0;
    for (let i = 0; i < rank; i++) out.push(norm.includes(i) ? 1 : x[j++]!);
    setShape(n, out);
  },
  Squeeze: (n) => {
    const x = req(n, 0).shape;
    const axes = n.inputs[1] ? constInts(n, 1, 'axes').map((ax) => normAxis(ax, x.length)) : x.flatMap((d, i) => (d === 1 ? [i] : []));
    for (const ax of axes) if (dimsConflict(x[ax]!, 1)) throw new Error(`cannot squeeze axis ${ax} of size ${x[ax]}`);
    setShape(n, x.filter((_, i) => !axes.includes(i)));
  },
  Shape: (n, a) => {
    const x = req(n, 0).shape;
    const start = normAxisClamped(a.int('start') ?? 0, x.length);
    const end = normAxisClamped(a.int('end') ?? x.length, x.length);
    const dims = x.slice(start, end);
    setShape(n, [dims.length]);
    n.outputs[0]!.sym = dims;
  },
  Expand: (n) => setShape(n, broadcastShapes(req(n, 0).shape, symOf(n, 1, 'shape'))),
  ReduceMean: inferReduce,
  ReduceSum: inferReduce,
  ReduceMax: inferReduce,
  ReduceLogSumExp: inferReduce,
  Conv: inferConv,
  Range: (n) => {
    const [start, limit, delta] = [0, 1, 2].map((i) => req(n, i).sym?.[0]);
    const len =
      typeof start === 'number' && typeof limit === 'number' && typeof delta === 'number'
        ? Math.max(Math.ceil((limit - start) / delta), 0)
        : start === 0 && delta === 1 && limit !== undefined
          ? limit
          : freshDim('range');
    setShape(n, [len]);
    n.outputs[0]!.dtype = req(n, 0).dtype;
  },
  Compress: (n, a) => {
    const x = req(n, 0).shape;
    const axis = a.int('axis');
    if (axis === undefined) setShape(n, [freshDim('compress')]);
    else setShape(n, x.map((d, i) => (i === normAxis(axis, x.length) ? freshDim('compress') : d)));
  },
  Resize: (n) => setShape(n, symOf(n, 3, 'sizes')),
  ConstantOfShape: (n) => {
    setShape(n, symOf(n, 0, 'shape'));
    const value = n.attrs.value?.value as { dtype: DType } | undefined;
    n.outputs[0]!.dtype = value?.dtype ?? 'float32';
  },
  Cast: (n, a) => {
    setShape(n, req(n, 0).shape);
    n.outputs[0]!.dtype = dtypeFromOnnx(a.int('to')!);
  },
  Split: (n, a) => {
    const x = req(n, 0).shape;
    const axis = normAxis(a.int('axis') ?? 0, x.length);
    const sizes = n.inputs[1] ? symOf(n, 1, 'split') : n.outputs.map(() => dimDiv(x[axis]!, n.outputs.length));
    if (sizes.length !== n.outputs.length) throw new Error(`split has ${sizes.length} sizes for ${n.outputs.length} outputs`);
    n.outputs.forEach((o, i) => (o.shape = x.map((d, j) => (j === axis ? sizes[i]! : d))));
  },
  // Gradient ops (src/passes/grad-rules): results shaped like their data, or padded.
  ScatterND: (n) => setShape(n, req(n, 0).shape),
  ScatterElements: (n) => setShape(n, req(n, 0).shape),
  NonZero: (n) => setShape(n, [req(n, 0).rank, freshDim('nonzero')]),
  // Mixture-of-experts routing: values and indices are x with K along the axis.
  TopK: (n, a) => {
    const x = req(n, 0).shape;
    const axis = normAxis(a.int('axis') ?? -1, x.length);
    const k = req(n, 1).sym?.[0] ?? freshDim('topk');
    for (const o of n.outputs) o.shape = x.map((d, i) => (i === axis ? k : d));
  },
  Pad: (n) => {
    const x = req(n, 0).shape;
    const pads = req(n, 1).sym;
    setShape(n, x.map((d, i) => (pads ? dimAdd(dimAdd(d, pads[i]!), pads[i + x.length]!) : freshDim('pad'))));
  },
  Flatten: (n, a) => {
    const x = req(n, 0).shape;
    const axis = normAxis(a.int('axis') ?? 1, x.length + 1);
    setShape(n, [product(x.slice(0, axis)), product(x.slice(axis))]);
  },
  // ONNX Runtime contrib ops (src/ops/contrib.generated.ts), emitted by the --target gpu fusions.
  SimplifiedLayerNormalization: inferNormalization,
  SkipSimplifiedLayerNormalization: inferNormalization,
  SkipLayerNormalization: inferNormalization,
  Gelu: (n) => setShape(n, req(n, 0).shape),
  // MoE / QMoE: the output is the input's shape (tokens [T, H] or [b, s, H]).
  MoE: (n) => setShape(n, req(n, 0).shape),
  QMoE: (n) => setShape(n, req(n, 0).shape),
  RMSNormalization: (n) => setShape(n, req(n, 0).shape),
  MultiHeadAttention: inferAttention,
  GroupQueryAttention: inferAttention,
  RotaryEmbedding: (n) => setShape(n, req(n, 0).shape),
  MatMulNBits: (n, a) => setShape(n, [...req(n, 0).shape.slice(0, -1), a.int('N')!]),
  // As emitted by src/passes/nd-linears.ts: A [..., K] times a 2-D B (transposed with transB).
  FusedMatMul: (n, a) => {
    const b = req(n, 1).shape;
    if (b.length !== 2 || a.int('transA')) throw new Error('FusedMatMul: only an N-D A times a 2-D B is inferred');
    setShape(n, [...req(n, 0).shape.slice(0, -1), a.int('transB') ? b[0]! : b[1]!]);
  },
};
for (const op of UNARY) RULES[op] = (n) => setShape(n, req(n, 0).shape);
for (const op of BROADCAST) {
  RULES[op] = (n) => setShape(n, n.inputs.reduce<Shape>((s, v) => (v ? broadcastShapes(s, v.shape) : s), []));
}

export function inferNode(node: Node, sig: OpSignature): void {
  const rule = RULES[node.op];
  if (!rule) throw new Error(`no shape inference for op ${node.op}; add a rule in src/ir/infer.ts`);
  rule(node, attrReader(node, sig));
  propagateSym(node);
}

function attrReader(node: Node, sig: OpSignature): AttrReader {
  const get = (name: string): unknown => node.attrs[name]?.value ?? sig.attrs[name]?.default;
  return {
    int: (name) => get(name) as number | undefined,
    ints: (name) => get(name) as number[] | undefined,
    float: (name) => get(name) as number | undefined,
  };
}

function req(n: Node, i: number): Value {
  const v = n.inputs[i];
  if (!v) throw new Error(`input ${i} is missing`);
  return v;
}

function setShape(n: Node, shape: Shape): void {
  n.outputs[0]!.shape = shape;
}

function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} is out of range for rank ${rank}`);
  return a;
}

function normAxisClamped(axis: number, rank: number): number {
  return Math.min(Math.max(axis < 0 ? axis + rank : axis, 0), rank);
}

/** Symbolic contents of input i, which must be known while tracing. */
function symOf(n: Node, i: number, what: string): Dim[] {
  const sym = req(n, i).sym;
  if (!sym) throw new Error(`'${what}' must be computable while tracing (a constant or shape arithmetic)`);
  return sym;
}

function constInts(n: Node, i: number, what: string): number[] {
  const sym = symOf(n, i, what);
  if (!sym.every((d) => typeof d === 'number')) throw new Error(`'${what}' must be a constant`);
  return sym as number[];
}

function matmulShape(a: Shape, b: Shape): Shape {
  if (a.length === 0 || b.length === 0) throw new Error('MatMul needs inputs of rank >= 1');
  const a2 = a.length === 1 ? [1, a[0]!] : a;
  const b2 = b.length === 1 ? [b[0]!, 1] : b;
  const k1 = a2[a2.length - 1]!;
  const k2 = b2[b2.length - 2]!;
  if (dimsConflict(k1, k2)) throw new Error(`inner dimensions differ: ${formatShape(a)} x ${formatShape(b)}`);
  const batch = broadcastShapes(a2.slice(0, -2), b2.slice(0, -2));
  const out = [...batch, ...(a.length === 1 ? [] : [a2[a2.length - 2]!]), ...(b.length === 1 ? [] : [b2[b2.length - 1]!])];
  return out;
}

/** Gemm: A [M,K] (or [K,M] with transA) x B [K,N] (or [N,K] with transB) + C broadcast to [M,N]. */
function inferGemm(n: Node, a: AttrReader): void {
  const [x, w] = [req(n, 0).shape, req(n, 1).shape];
  if (x.length !== 2 || w.length !== 2) throw new Error(`Gemm needs rank-2 inputs (got ${formatShape(x)} and ${formatShape(w)})`);
  const [m, k1] = a.int('transA') ? [x[1]!, x[0]!] : [x[0]!, x[1]!];
  const [k2, nOut] = a.int('transB') ? [w[1]!, w[0]!] : [w[0]!, w[1]!];
  if (dimsConflict(k1, k2)) throw new Error(`inner dimensions differ: ${formatShape(x)} x ${formatShape(w)}${a.int('transB') ? ' (transposed)' : ''}`);
  const c = n.inputs[2];
  if (c) broadcastShapes([m, nOut], c.shape);
  setShape(n, [m, nOut]);
}

function inferReshape(n: Node): void {
  const x = req(n, 0).shape;
  const target = symOf(n, 1, 'shape');
  const out = target.map((d, i) => (d === 0 ? x[i]! : d));
  const minus = out.indexOf(-1);
  const total = product(x);
  if (minus >= 0) {
    const known = product(out.filter((_, i) => i !== minus));
    out[minus] = typeof total === 'number' && typeof known === 'number' ? total / known : knownQuotient(x, out.filter((_, i) => i !== minus));
    if (typeof out[minus] === 'number' && !Number.isInteger(out[minus])) {
      throw new Error(`cannot reshape ${formatShape(x)} to ${formatShape(target)}`);
    }
  } else {
    const t = product(out);
    if (typeof total === 'number' && typeof t === 'number' && total !== t) {
      throw new Error(`cannot reshape ${formatShape(x)} (${total} elements) to ${formatShape(target)} (${t} elements)`);
    }
  }
  setShape(n, out);
}

/** product(x) / product(known): symbols cancel by name, numbers divide. */
function knownQuotient(x: Shape, known: Shape): Dim {
  const symbols = x.filter((d): d is string => typeof d === 'string');
  let numeric = x.reduce<number>((acc, d) => (typeof d === 'number' ? acc * d : acc), 1);
  for (const d of known) {
    if (typeof d === 'number') {
      numeric /= d;
      continue;
    }
    const j = symbols.indexOf(d);
    if (j < 0) return freshDim('reshape');
    symbols.splice(j, 1);
  }
  if (!Number.isInteger(numeric)) return freshDim('reshape');
  return symbols.reduce<Dim>((acc, d) => dimMul(acc, d), numeric);
}

function inferConcat(n: Node, a: AttrReader): void {
  const vals = n.inputs.filter((v): v is Value => v !== undefined);
  const rank = vals[0]!.rank;
  const axis = normAxis(a.int('axis')!, rank);
  const out = [...vals[0]!.shape];
  for (const v of vals.slice(1)) {
    if (v.rank !== rank) throw new Error(`inputs have ranks ${rank} and ${v.rank}`);
    v.shape.forEach((d, i) => {
      if (i === axis) out[i] = dimAdd(out[i]!, d);
      else if (dimsConflict(out[i]!, d)) throw new Error(`dimension ${i} differs: ${formatShape(vals[0]!.shape)} vs ${formatShape(v.shape)}`);
    });
  }
  setShape(n, out);
}

const INT_MAX = Number.MAX_SAFE_INTEGER;

function inferSlice(n: Node): void {
  const x = req(n, 0).shape;
  const starts = constInts(n, 1, 'starts');
  const ends = constInts(n, 2, 'ends');
  const axes = n.inputs[3] ? constInts(n, 3, 'axes') : starts.map((_, i) => i);
  const steps = n.inputs[4] ? constInts(n, 4, 'steps') : starts.map(() => 1);
  const out = [...x];
  axes.forEach((ax, i) => {
    const axis = normAxis(ax, x.length);
    const dim = x[axis]!;
    const [s, e, st] = [starts[i]!, ends[i]!, steps[i]!];
    if (typeof dim === 'number') out[axis] = sliceLength(dim, s, e, st);
    else if (s === 0 && e >= INT_MAX && st === 1) out[axis] = dim;
    else if (s >= 0 && e >= 0 && e < INT_MAX && st === 1) out[axis] = e - s;
    else out[axis] = freshDim('slice');
  });
  setShape(n, out);
}

function sliceLength(dim: number, start: number, end: number, step: number): number {
  const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
  const s = step > 0 ? clamp(start < 0 ? start + dim : start, 0, dim) : clamp(start < 0 ? start + dim : start, -1, dim - 1);
  const e = step > 0 ? clamp(end < 0 ? end + dim : end, 0, dim) : clamp(end < 0 ? end + dim : end, -1, dim - 1);
  return Math.max(Math.ceil((e - s) / step), 0);
}

function inferGather(n: Node, a: AttrReader): void {
  const data = req(n, 0).shape;
  const idx = req(n, 1).shape;
  const axis = normAxis(a.int('axis') ?? 0, data.length);
  const size = data[axis]!;
  const values = req(n, 1).sym;
  if (typeof size === 'number' && values) {
    for (const i of values) {
      if (typeof i === 'number' && (i < -size || i >= size)) throw new Error(`index ${i} is out of range for axis ${axis} of ${formatShape(data)} (valid: ${-size} to ${size - 1})`);
    }
  }
  setShape(n, [...data.slice(0, axis), ...idx, ...data.slice(axis + 1)]);
}

/** Scale and bias must broadcast to the normalized dims (axis..end) without growing them. */
function inferLayerNorm(n: Node, a: AttrReader): void {
  const x = req(n, 0).shape;
  const axis = normAxis(a.int('axis') ?? -1, x.length);
  const normalized = x.slice(axis);
  for (const [i, what] of [[1, 'scale'], [2, 'bias']] as const) {
    const p = n.inputs[i]?.shape;
    if (!p) continue;
    const fits = p.length <= normalized.length && p.every((d, j) => d === 1 || !dimsConflict(d, normalized[normalized.length - p.length + j]!));
    if (!fits) throw new Error(`${what} ${formatShape(p)} does not match the normalized dims ${formatShape(normalized)} of input ${formatShape(x)}`);
  }
  setShape(n, x);
}

/**
 * (Skip)(Simplified)LayerNormalization: output and the residual sum (Skip*: input_skip_bias_sum)
 * have the input's shape; mean / inv_std_var keep all but the last dim.
 */
function inferNormalization(n: Node): void {
  const x = req(n, 0).shape;
  const reduced = [...x.slice(0, -1), 1];
  const skip = n.op.startsWith('Skip');
  n.outputs.forEach((o, i) => (o.shape = i === 0 || (skip && i === 3) ? x : reduced));
}

/** MultiHeadAttention / GroupQueryAttention: [batch, seq, heads * v_head_size] (BSD query layout). */
function inferAttention(n: Node, a: AttrReader): void {
  const q = req(n, 0).shape;
  const v = n.inputs[2]?.shape;
  const heads = a.int('num_heads')!;
  const kvHeads = a.int('kv_num_heads') ?? heads;
  const headDim = n.op === 'GroupQueryAttention' && !n.inputs[1] ? dimDiv(q[2]!, heads + 2 * kvHeads) : dimDiv(q[2]!, heads);
  const vHidden = v && v.length === 3 ? dimMul(dimDiv(v[2]!, kvHeads), heads) : dimMul(headDim, heads);
  setShape(n, [q[0]!, q[1]!, vHidden]);
}

function inferReduce(n: Node, a: AttrReader): void {
  const x = req(n, 0).shape;
  const axesRaw = n.inputs[1] ? constInts(n, 1, 'axes') : a.ints('axes');
  const axes = (axesRaw ?? x.map((_, i) => i)).map((ax) => normAxis(ax, x.length));
  const keep = (a.int('keepdims') ?? 1) === 1;
  setShape(n, keep ? x.map((d, i) => (axes.includes(i) ? 1 : d)) : x.filter((_, i) => !axes.includes(i)));
}

function inferConv(n: Node, a: AttrReader): void {
  const x = req(n, 0).shape;
  const w = req(n, 1).shape;
  if (x.length !== 4 || w.length !== 4) throw new Error('only 2-D convolution is supported');
  if (dimsConflict(x[1]!, w[1]!)) throw new Error(`input has ${x[1]} channels, weight expects ${w[1]}`);
  const kernel = a.ints('kernel_shape') ?? (w.slice(2) as number[]);
  const strides = a.ints('strides') ?? [1, 1];
  const pads = a.ints('pads') ?? [0, 0, 0, 0];
  const spatial = [0, 1].map((i) => {
    const d = x[2 + i]!;
    if (typeof d !== 'number') return freshDim('conv');
    return Math.floor((d + pads[i]! + pads[i + 2]! - kernel[i]!) / strides[i]!) + 1;
  });
  setShape(n, [x[0]!, w[0]!, ...spatial]);
}

/** Evaluates small integer shape arithmetic symbolically, so Reshape targets stay known. */
function propagateSym(n: Node): void {
  const out = n.outputs[0]!;
  if (out.sym || (out.dtype !== 'int64' && out.dtype !== 'int32') || out.rank > 1) return;
  const syms = n.inputs.map((v) => v?.sym);
  const s0 = syms[0];
  switch (n.op) {
    case 'Identity':
    case 'Cast':
    case 'Squeeze':
      out.sym = s0;
      break;
    case 'Unsqueeze':
      if (n.inputs[0]!.rank === 0) out.sym = s0;
      break;
    case 'Concat':
      if (syms.every((s) => s)) out.sym = syms.flatMap((s) => s!);
      break;
    case 'Gather': {
      const idx = syms[1];
      if (s0 && idx && idx.every((d) => typeof d === 'number')) out.sym = (idx as number[]).map((i) => s0[i < 0 ? i + s0.length : i]!);
      break;
    }
    case 'Slice': {
      const [st, en] = [syms[1], syms[2]];
      if (s0 && st && en && n.inputs.length <= 4 && typeof st[0] === 'number' && typeof en[0] === 'number') {
        out.sym = s0.slice(st[0], Math.min(en[0], s0.length));
      }
      break;
    }
    case 'Add':
    case 'Sub':
    case 'Mul':
    case 'Div': {
      const s1 = syms[1];
      if (s0 && s1) out.sym = elementwise(n.op, s0, s1);
      break;
    }
  }
}

function elementwise(op: string, a: Dim[], b: Dim[]): Dim[] | undefined {
  const len = Math.max(a.length, b.length);
  if ((a.length !== len && a.length !== 1) || (b.length !== len && b.length !== 1)) return undefined;
  const f = { Add: dimAdd, Sub: dimSub, Mul: dimMul, Div: dimDiv }[op]!;
  return Array.from({ length: len }, (_, i) => f(a[a.length === 1 ? 0 : i]!, b[b.length === 1 ? 0 : i]!));
}
