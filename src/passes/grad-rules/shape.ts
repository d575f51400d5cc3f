/** Gradients of the data-movement ops: re-views, Transpose, Expand, Concat, Slice, Split. */
import * as op from '../../ops/index.ts';
import type { Value } from '../../ir/graph.ts';
import { i64, INT64_MAX } from '../../dsl/constants.ts';
import type { GradRule } from './types.ts';
import { normAxis, reshapeLike, sumToShape } from './util.ts';

const reView: GradRule = (c) => [reshapeLike(c.gy, c.node.inputs[0]!)];

const transpose: GradRule = (c) => {
  const x = c.node.inputs[0]!;
  const perm = (c.node.attrs.perm?.value as number[] | undefined) ?? x.shape.map((_, i) => x.rank - 1 - i);
  const inverse = new Array<number>(perm.length);
  perm.forEach((p, i) => (inverse[p] = i));
  return [op.Transpose(c.gy, { perm: inverse })];
};

const expand: GradRule = (c) => [sumToShape(c.gy, c.node.inputs[0]!.shape)];

/** The size of `v` along `axis` as a 1-element int64 tensor. */
function dimTensor(v: Value, axis: number): Value {
  const d = v.shape[axis]!;
  return typeof d === 'number' ? i64([d]) : op.Shape(v, { start: axis, end: axis + 1 });
}

/** Concat: each input gets its own slab of g back (Split by the inputs' sizes). */
const concat: GradRule = (c) => {
  const inputs = c.node.inputs.map((v) => v!);
  const axis = normAxis(c.node.attrs.axis!.value as number, inputs[0]!.rank);
  const sizes = op.Concat(inputs.map((v) => dimTensor(v, axis)), { axis: 0 });
  const parts = op.Split(c.gy, sizes, { axis }, inputs.length);
  return parts.map((p, i) => {
    if (!c.needs(i)) return undefined;
    p.shape = [...inputs[i]!.shape];
    return p;
  });
};

/** Split: the outputs' gradients concatenated back (zeros for outputs that got none). */
const split: GradRule = (c) => {
  const x = c.node.inputs[0]!;
  const axis = normAxis((c.node.attrs.axis?.value as number | undefined) ?? 0, x.rank);
  const parts = c.node.outputs.map((o, i) => c.gys[i] ?? zerosFor(o));
  const out = op.Concat(parts, { axis });
  out.shape = [...x.shape];
  return [out];
};

function zerosFor(v: Value): Value {
  const data = v.dtype === 'float64' ? new Float64Array(1) : new Float32Array(1);
  const shape = v.shape.every((d) => typeof d === 'number') ? i64(v.shape as number[]) : op.Shape(v);
  const out = op.ConstantOfShape(shape, { value: { dtype: v.dtype, shape: [1], data } });
  out.shape = [...v.shape];
  return out;
}

/**
 * Slice (unit steps): g padded with zeros back to the input's extent. The pads are constants where
 * the sizes are known and computed from the input's shape where they are symbolic.
 */
const slice: GradRule = (c) => {
  const [x, startsV, endsV, axesV, stepsV] = c.node.inputs;
  const starts = ints(startsV!, 'starts');
  const ends = ints(endsV!, 'ends');
  const axes = axesV ? ints(axesV, 'axes').map((a) => normAxis(a, x!.rank)) : starts.map((_, i) => i);
  if (stepsV && ints(stepsV, 'steps').some((s) => s !== 1)) throw new Error('no gradient rule for Slice with steps other than 1');
  const before: Value[] = [];
  const after: Value[] = [];
  for (let axis = 0; axis < x!.rank; axis++) {
    const i = axes.indexOf(axis);
    const [b, a] = i < 0 ? [i64([0]), i64([0])] : padsFor(x!, axis, starts[i]!, ends[i]!);
    before.push(b);
    after.push(a);
  }
  const out = op.Pad(c.gy, op.Concat([...before, ...after], { axis: 0 }));
  out.shape = [...x!.shape];
  return [out];
};

/** Zeros to put back before and after the slice [start, end) of `x` along `axis`. */
function padsFor(x: Value, axis: number, start: number, end: number): [Value, Value] {
  const dim = x.shape[axis]!;
  if (typeof dim === 'number') {
    const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + dim : v, 0), dim);
    const s = clamp(start);
    const e = Math.max(clamp(end), s);
    return [i64([s]), i64([dim - e])];
  }
  const full = op.Shape(x, { start: axis, end: axis + 1 });
  const toEnd = end >= INT64_MAX;
  const before = start >= 0 ? i64([start]) : op.Add(full, i64([start]));
  const after = toEnd ? i64([0]) : end < 0 ? i64([-end]) : op.Sub(full, i64([end]));
  return [before, after];
}

function ints(v: Value, what: string): number[] {
  if (!v.sym || !v.sym.every((d) => typeof d === 'number')) throw new Error(`Slice ${what} must be constant to differentiate`);
  return v.sym as number[];
}

export const SHAPE_RULES: Record<string, GradRule> = {
  Reshape: reView,
  Unsqueeze: reView,
  Squeeze: reView,
  Flatten: reView,
  Transpose: transpose,
  Expand: expand,
  Concat: concat,
  Split: split,
  Slice: slice,
};

