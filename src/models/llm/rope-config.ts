/**
 * RoPE settings from a Hugging Face config, in both spellings: transformers 4.x (`rope_theta` and
 * `rope_scaling` at the top level) and transformers >= 5 (`rope_parameters` holding `rope_theta`,
 * `rope_type` and the scaling fields). Precedence follows transformers'
 * `convert_rope_params_to_dict` / `standardize_rope_params`: a `rope_scaling` dict wins over
 * `rope_parameters`; inside it `rope_theta` wins over the top-level one (default 10000);
 * `rope_type` over the legacy `type`; a top-level `partial_rotary_factor` or (llama3/longrope/yarn)
 * `original_max_position_embeddings` wins over the dict's.
 *
 * Every rope_type transformers 5 defines (ROPE_INIT_FUNCTIONS): default, linear, dynamic, llama3,
 * longrope, yarn and proportional, with transformers 5's readings where 4.x differed: an explicit
 * `factor` wins over max / original positions (YaRN's and LongRoPE's attention factor).
 *
 * Anything that would change the numbers and is not understood is an error naming the field.
 */
import { UserError } from '../../errors.ts';
import { yarnMscale, type RopeScaling } from '../../nn/rotary.ts';
import type { HFConfig } from '../config-fields.ts';

export interface RopeSettings {
  theta: number;
  scaling: RopeScaling | undefined;
  partialRotaryFactor: number;
}

const DEFAULT_THETA = 10000;

/** Keys each rope_type may carry (besides rope_type/type/rope_theta/partial_rotary_factor). */
const TYPE_KEYS: Record<string, readonly string[]> = {
  default: [],
  linear: ['factor'],
  dynamic: ['factor'],
  llama3: ['factor', 'low_freq_factor', 'high_freq_factor'],
  longrope: ['short_factor', 'long_factor', 'factor', 'attention_factor'],
  yarn: ['factor', 'attention_factor', 'beta_fast', 'beta_slow', 'mscale', 'mscale_all_dim', 'truncate'],
  proportional: ['factor'],
};
const COMMON_KEYS = ['rope_type', 'type', 'rope_theta', 'partial_rotary_factor', 'original_max_position_embeddings'];
/** Phi-3's old name for longrope (Phi3Config also reads 'yarn' so: isPhi3). */
const ALIASES: Record<string, string> = { su: 'longrope' };

export function ropeFromHF(cfg: HFConfig, dims: { maxPositions: number; headDim: number }, where: string): RopeSettings {
  const { params, field } = ropeDict(cfg, where);
  const at = `${where}: ${field}`;
  const theta = positiveField(params, 'rope_theta', at) ?? positiveField(cfg, 'rope_theta', where) ?? DEFAULT_THETA;
  const partialRotaryFactor = fraction(cfg, 'partial_rotary_factor', where) ?? fraction(params, 'partial_rotary_factor', at) ?? 1;
  const rawType = params.rope_type ?? params.type ?? 'default';
  if (typeof rawType !== 'string' || !Object.hasOwn({ ...TYPE_KEYS, ...ALIASES }, rawType)) {
    throw new UserError(`${at}: rope_type ${JSON.stringify(rawType)} is not supported (supported: ${[...Object.keys(TYPE_KEYS), ...Object.keys(ALIASES)].join(', ')})`);
  }
  const type = Object.hasOwn(ALIASES, rawType) ? ALIASES[rawType]! : rawType === 'yarn' && isPhi3(cfg) ? 'longrope' : rawType;
  for (const key of Object.keys(params)) {
    if (!COMMON_KEYS.includes(key) && !TYPE_KEYS[type]!.includes(key)) {
      throw new UserError(`${at}: field '${key}' is not understood for rope_type '${type}' (it takes ${[...TYPE_KEYS[type]!, ...COMMON_KEYS].join(', ')})`);
    }
  }
  // Proportional RoPE reads partial_rotary_factor as the share of frequencies that turn; rotate_half spans the head.
  const rotaryDim = type === 'proportional' ? dims.headDim : Math.floor(dims.headDim * partialRotaryFactor);
  if (rotaryDim < 2 || rotaryDim % 2 !== 0) {
    throw new UserError(`${where}: the rotary dimension head_dim x partial_rotary_factor = ${rotaryDim} must be even and at least 2`);
  }
  const originalMax = () => originalMaxPositions(cfg, params, dims.maxPositions, where, at);
  const topLevelOriginal = cfg.original_max_position_embeddings !== undefined && cfg.original_max_position_embeddings !== null;
  const context = { at, rotaryDim, originalMax, topLevelOriginal, maxPositions: dims.maxPositions, partialRotaryFactor };
  return { theta, partialRotaryFactor: type === 'proportional' ? 1 : partialRotaryFactor, scaling: scalingOf(type, params, context) };
}

/** Phi3Config reads rope_type 'yarn' as 'longrope' (backward compatibility in transformers 5). */
function isPhi3(cfg: HFConfig): boolean {
  return cfg.model_type === 'phi3' || (Array.isArray(cfg.architectures) && cfg.architectures[0] === 'Phi3ForCausalLM');
}

/** The dict that holds the RoPE fields, and its name for messages. */
function ropeDict(cfg: HFConfig, where: string): { params: HFConfig; field: string } {
  for (const field of ['rope_scaling', 'rope_parameters']) {
    const v = cfg[field];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'object' || Array.isArray(v)) throw new UserError(`${where}: '${field}' must be an object (got ${JSON.stringify(v)})`);
    if (Object.keys(v).length === 0) continue;
    if (Object.values(v).some((x) => typeof x === 'object' && x !== null && !Array.isArray(x))) {
      throw new UserError(`${where}: '${field}' holds per-layer-type RoPE settings, which vlmc does not support`);
    }
    return { params: v as HFConfig, field };
  }
  return { params: {}, field: 'rope_parameters' };
}

interface ScalingContext {
  at: string;
  rotaryDim: number;
  originalMax: () => number;
  topLevelOriginal: boolean;
  maxPositions: number;
  partialRotaryFactor: number;
}

function scalingOf(type: string, p: HFConfig, ctx: ScalingContext): RopeScaling | undefined {
  const { at, rotaryDim, originalMax } = ctx;
  switch (type) {
    case 'linear':
    case 'dynamic':
      return { type, factor: requiredPositive(p, 'factor', at) };
    case 'llama3': {
      const lowFreqFactor = requiredPositive(p, 'low_freq_factor', at);
      const highFreqFactor = requiredPositive(p, 'high_freq_factor', at);
      if (highFreqFactor <= lowFreqFactor) throw new UserError(`${at}: high_freq_factor (${highFreqFactor}) must be greater than low_freq_factor (${lowFreqFactor})`);
      return { type: 'llama3', factor: requiredPositive(p, 'factor', at), lowFreqFactor, highFreqFactor, originalMaxPositions: originalMax() };
    }
    case 'longrope': {
      const attentionFactor = positiveField(p, 'attention_factor', at) ?? longropeFactorScale(p, at, originalMax);
      return {
        type: 'longrope',
        shortFactor: factorList(p, 'short_factor', at, rotaryDim / 2),
        longFactor: factorList(p, 'long_factor', at, rotaryDim / 2),
        originalMaxPositions: originalMax(),
        ...(attentionFactor !== undefined ? { attentionFactor } : {}),
      };
    }
    case 'yarn':
      return yarnScaling(p, ctx);
    case 'proportional':
      return { type: 'proportional', factor: positiveField(p, 'factor', at) ?? 1, proportion: ctx.partialRotaryFactor };
    default:
      return undefined;
  }
}

/**
 * YaRN as transformers 5 reads it: `factor` (null: max_position_embeddings / original), the
 * attention factor given, or mscale / mscale_all_dim's ratio when both are set (non-zero), or
 * 0.1 ln(factor) + 1; beta_fast / beta_slow default 32 / 1 (also when 0); truncate default true.
 */
function yarnScaling(p: HFConfig, ctx: ScalingContext): RopeScaling {
  const { at } = ctx;
  const originalMaxPositions = ctx.originalMax();
  if (!Object.hasOwn(p, 'factor')) throw new UserError(`${at}: 'factor' is required for rope_type 'yarn' (null: max_position_embeddings / original_max_position_embeddings)`);
  const factor = positiveField(p, 'factor', at) ?? ctx.maxPositions / originalMaxPositions;
  const mscale = nonNegativeField(p, 'mscale', at);
  const mscaleAllDim = nonNegativeField(p, 'mscale_all_dim', at);
  const attentionFactor = positiveField(p, 'attention_factor', at) ?? (mscale && mscaleAllDim ? yarnMscale(factor, mscale) / yarnMscale(factor, mscaleAllDim) : yarnMscale(factor));
  const truncate = p.truncate ?? true;
  if (typeof truncate !== 'boolean') throw new UserError(`${at}: 'truncate' must be true or false (got ${JSON.stringify(truncate)})`);
  return {
    type: 'yarn',
    factor,
    originalMaxPositions,
    attentionFactor,
    betaFast: nonNegativeField(p, 'beta_fast', at) || 32,
    betaSlow: nonNegativeField(p, 'beta_slow', at) || 1,
    truncate,
  };
}

function nonNegativeField(o: HFConfig, key: string, at: string): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new UserError(`${at}: '${key}' must be a number of at least 0 (got ${JSON.stringify(v)})`);
  return v;
}

/**
 * transformers 5 derives LongRoPE's attention scale from the dict's `factor` when it has one, else
 * from max / original positions (Phi-3's configs); the second is rotary.ts's default, the first is
 * made explicit here.
 */
function longropeFactorScale(p: HFConfig, at: string, originalMax: () => number): number | undefined {
  const factor = positiveField(p, 'factor', at);
  if (factor === undefined) return undefined;
  return factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(originalMax()));
}

/** As transformers: the top-level field first (Phi-3 keeps it there), then the dict's, then max positions. */
function originalMaxPositions(cfg: HFConfig, p: HFConfig, maxPositions: number, where: string, at: string): number {
  const top = wholePositive(cfg, 'original_max_position_embeddings', where);
  return top ?? wholePositive(p, 'original_max_position_embeddings', at) ?? maxPositions;
}

function factorList(p: HFConfig, key: string, at: string, length: number): number[] {
  const f = p[key];
  if (!Array.isArray(f) || !f.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0)) {
    throw new UserError(`${at}: '${key}' must be a list of positive numbers`);
  }
  if (f.length !== length) throw new UserError(`${at}: '${key}' has ${f.length} entries; it needs one per rotary frequency, ${length} (rotary dim / 2)`);
  return f as number[];
}

function positiveField(o: HFConfig, key: string, at: string): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new UserError(`${at}: '${key}' must be a positive number (got ${JSON.stringify(v)})`);
  return v;
}

function requiredPositive(o: HFConfig, key: string, at: string): number {
  const v = positiveField(o, key, at);
  if (v === undefined) throw new UserError(`${at}: '${key}' is required`);
  return v;
}

function wholePositive(o: HFConfig, key: string, at: string): number | undefined {
  const v = positiveField(o, key, at);
  if (v !== undefined && !Number.isInteger(v)) throw new UserError(`${at}: '${key}' must be a whole number (got ${v})`);
  return v;
}

/** partial_rotary_factor: in (0, 1]. */
function fraction(o: HFConfig, key: string, at: string): number | undefined {
  const v = positiveField(o, key, at);
  if (v !== undefined && v > 1) throw new UserError(`${at}: '${key}' must be in (0, 1] (got ${v})`);
  return v;
}
