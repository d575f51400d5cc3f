/**
 * Rotary position embeddings (Llama layout: rotate_half over the whole head dim), with the scaling
 * variants the released checkpoints use. Sequence-dependent variants (dynamic NTK, LongRoPE) are
 * computed in the graph from the actual sequence length, so one graph serves every length.
 */
import type { Tensor } from '../dsl/module.ts';
import * as op from '../ops/index.ts';
import { f32, f32Scalar, i64, i64Scalar } from '../dsl/constants.ts';
import { DTYPES } from '../ir/dtype.ts';

export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'dynamic'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number }
  | { type: 'longrope'; shortFactor: number[]; longFactor: number[]; originalMaxPositions: number; attentionFactor?: number }
  /**
   * YaRN (transformers `_compute_yarn_parameters`): frequencies blended between interpolated
   * (/ factor) and original along a ramp between the dimensions that make betaFast and betaSlow
   * rotations over originalMaxPositions; cos and sin are multiplied by attentionFactor (default
   * 0.1 ln(factor) + 1). Static: the same tables at every length.
   */
  | { type: 'yarn'; factor: number; originalMaxPositions: number; attentionFactor?: number; betaFast?: number; betaSlow?: number; truncate?: boolean }
  /**
   * Proportional RoPE (transformers `_compute_proportional_rope_parameters`): rotate_half over the
   * whole head, the first floor(proportion * head_dim / 2) frequencies as default RoPE (exponents
   * over head_dim), the rest zero (those feature pairs pass through), all divided by factor.
   */
  | { type: 'proportional'; factor: number; proportion: number };

export interface RopeConfig {
  theta: number;
  /** Features that rotate: the head dim, or less with partial rotary. */
  headDim: number;
  maxPositions: number;
  scaling?: RopeScaling | undefined;
}

export interface RotaryTables {
  /** [seq, 1, head_dim], broadcast over batch-first [b, seq, heads, head_dim]. */
  cos: Tensor;
  sin: Tensor;
}

/** Exponents 2i/d for i < d/2. */
function exponents(dim: number): number[] {
  return Array.from({ length: dim / 2 }, (_, i) => (2 * i) / dim);
}

function invFreq(theta: number, dim: number): number[] {
  return exponents(dim).map((e) => 1 / theta ** e);
}

/** Llama-3.1 frequency smoothing, a static transform of inv_freq. */
function llama3InvFreq(base: number[], s: Extract<RopeScaling, { type: 'llama3' }>): number[] {
  const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositions / s.highFreqFactor;
  return base.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) return f;
    if (wavelen > lowWavelen) return f / s.factor;
    const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return (1 - smooth) * (f / s.factor) + smooth * f;
  });
}

/** cos/sin tables for positions 0..seq-1; `seq` is an int64 scalar tensor. */
export function rotaryTables(seq: Tensor, cfg: RopeConfig): RotaryTables {
  return rotaryTablesAt(op.Range(i64Scalar(0), seq, i64Scalar(1)), seq, cfg);
}

/**
 * cos/sin tables at explicit positions: int64 [seq] gives [seq, 1, d], [b, seq] gives
 * [b, seq, 1, d] (a batch with a KV cache, rows at different offsets). `length` is the sequence
 * length that length-dependent scaling (dynamic NTK, LongRoPE) sees: as in transformers'
 * dynamic_rope_update, max(position_ids) + 1 of this forward.
 */
export function rotaryTablesAt(positionIds: Tensor, length: Tensor, cfg: RopeConfig): RotaryTables {
  const s = cfg.scaling;
  let positions = op.Cast(positionIds, { to: DTYPES.float32.onnx });
  if (s?.type === 'linear') positions = op.Div(positions, f32Scalar(s.factor));
  const freqs = op.Mul(op.Unsqueeze(positions, i64([positionIds.rank])), inverseFrequencies(length, cfg));
  const emb = op.Concat([freqs, freqs], { axis: -1 });
  let cos = op.Cos(emb);
  let sin = op.Sin(emb);
  const attentionFactor = s?.type === 'longrope' ? longropeAttentionFactor(s, cfg.maxPositions) : s?.type === 'yarn' ? (s.attentionFactor ?? yarnMscale(s.factor)) : 1;
  if (attentionFactor !== 1) {
    cos = op.Mul(cos, f32Scalar(attentionFactor));
    sin = op.Mul(sin, f32Scalar(attentionFactor));
  }
  // The heads axis, just before the features: [seq, 1, d] or [b, seq, 1, d].
  const headsAxis = positionIds.rank;
  return { cos: op.Unsqueeze(cos, i64([headsAxis])), sin: op.Unsqueeze(sin, i64([headsAxis])) };
}

/** inv_freq as a [head_dim/2] tensor; constant unless the scaling depends on the sequence length. */
function inverseFrequencies(seq: Tensor, cfg: RopeConfig): Tensor {
  const d = cfg.headDim;
  const s = cfg.scaling;
  if (s?.type === 'dynamic') {
    // Dynamic NTK: past max positions the base grows with the sequence length.
    const seqF = op.Cast(seq, { to: DTYPES.float32.onnx });
    const grown = op.Mul(
      f32Scalar(cfg.theta),
      op.Pow(op.Sub(op.Mul(seqF, f32Scalar(s.factor / cfg.maxPositions)), f32Scalar(s.factor - 1)), f32Scalar(d / (d - 2))),
    );
    const base = op.Where(op.Greater(seq, i64Scalar(cfg.maxPositions)), grown, f32Scalar(cfg.theta));
    return op.Reciprocal(op.Pow(base, f32(exponents(d))));
  }
  if (s?.type === 'longrope') {
    const ext = (factors: number[]) => f32(exponents(d).map((e, i) => 1 / (factors[i]! * cfg.theta ** e)));
    const long = op.Greater(seq, i64Scalar(s.originalMaxPositions));
    return op.Where(long, ext(s.longFactor), ext(s.shortFactor));
  }
  if (s?.type === 'yarn') return f32(yarnInvFreq(cfg.theta, d, s));
  if (s?.type === 'proportional') return f32(proportionalInvFreq(cfg.theta, d, s));
  const base = invFreq(cfg.theta, d);
  return f32(s?.type === 'llama3' ? llama3InvFreq(base, s) : base);
}

/** YaRN's inverse frequencies (float64 here; transformers computes them in float32). */
export function yarnInvFreq(theta: number, dim: number, s: Extract<RopeScaling, { type: 'yarn' }>): number[] {
  const correctionDim = (rotations: number) => (dim * Math.log(s.originalMaxPositions / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
  let low = correctionDim(s.betaFast ?? 32);
  let high = correctionDim(s.betaSlow ?? 1);
  if (s.truncate ?? true) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001; // transformers' guard against a zero-width ramp
  return exponents(dim).map((e, i) => {
    const extrapolation = 1 / theta ** e;
    const ramp = Math.min(Math.max((i - low) / (high - low), 0), 1);
    // ramp 0: keep the original frequency (extrapolate); ramp 1: interpolate (divide by factor).
    return (extrapolation / s.factor) * ramp + extrapolation * (1 - ramp);
  });
}

/** YaRN's default attention factor, transformers' get_mscale(factor). */
export const yarnMscale = (factor: number, mscale = 1): number => (factor <= 1 ? 1 : 0.1 * mscale * Math.log(factor) + 1);

function proportionalInvFreq(theta: number, headDim: number, s: Extract<RopeScaling, { type: 'proportional' }>): number[] {
  const rotated = Math.floor((s.proportion * headDim) / 2);
  return Array.from({ length: headDim / 2 }, (_, i) => (i < rotated ? 1 / theta ** ((2 * i) / headDim) : 0) / s.factor);
}

function longropeAttentionFactor(s: Extract<RopeScaling, { type: 'longrope' }>, maxPositions: number): number {
  if (s.attentionFactor !== undefined) return s.attentionFactor;
  const scale = maxPositions / s.originalMaxPositions;
  return scale <= 1 ? 1 : Math.sqrt(1 + Math.log(scale) / Math.log(s.originalMaxPositions));
}

/**
 * x * cos + rotate_half(x) * sin, for x [b, seq, heads, head_dim]. With partial rotary
 * (`rotaryDim` < head_dim) only the first rotaryDim features rotate; the rest pass through.
 */
export function applyRotary(x: Tensor, t: RotaryTables, rotaryDim: number, headDim = rotaryDim): Tensor {
  const lastDim = (from: number, to: number) => op.Slice(x, i64([from]), i64([to]), i64([-1]));
  const rot = rotaryDim === headDim ? x : lastDim(0, rotaryDim);
  const half = rotaryDim / 2;
  const x1 = op.Slice(rot, i64([0]), i64([half]), i64([-1]));
  const x2 = op.Slice(rot, i64([half]), i64([rotaryDim]), i64([-1]));
  const rotated = op.Concat([op.Neg(x2), x1], { axis: -1 });
  const out = op.Add(op.Mul(rot, t.cos), op.Mul(rotated, t.sin));
  return rotaryDim === headDim ? out : op.Concat([out, lastDim(rotaryDim, headDim)], { axis: -1 });
}
