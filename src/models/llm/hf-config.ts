/** Reading a Hugging Face LLM `config.json` into a DecoderConfig. */
import { UserError } from '../../errors.ts';
import type { DecoderConfig } from './decoder.ts';
import { ropeFromHF } from './rope-config.ts';

export type HFConfig = Record<string, unknown>;

/**
 * Cheap upper bounds, checked before anything is built: far above every released model, low
 * enough that a typo (1e9 layers, a hidden size of 1e9) is a message instead of a hang or V8
 * running out of memory.
 */
export const LIMITS = {
  layers: 1024,
  hidden: 65536,
  heads: 1024,
  intermediate: 1 << 20,
  vocab: 1 << 22,
  headDim: 4096,
  positions: 1 << 24,
  imageSize: 8192,
  experts: 4096,
} as const;

/** A field that must be present and numeric. */
export function num(cfg: HFConfig, key: string, where: string): number {
  const v = cfg[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new UserError(`${where}: field '${key}' must be a number (got ${JSON.stringify(v)})`);
  return v;
}

export function optNum(cfg: HFConfig, key: string, fallback: number, where: string): number {
  return cfg[key] === undefined || cfg[key] === null ? fallback : num(cfg, key, where);
}

/** A field that must be a whole number in [min, max] (a count or a size): never truncated. */
export function int(cfg: HFConfig, key: string, where: string, max: number, min = 1): number {
  const v = num(cfg, key, where);
  if (!Number.isInteger(v)) throw new UserError(`${where}: field '${key}' must be a whole number (got ${v})`);
  if (v < min || v > max) throw new UserError(`${where}: field '${key}' must be between ${min} and ${max} (got ${v})`);
  return v;
}

export function optInt(cfg: HFConfig, key: string, fallback: number, where: string, max: number, min = 1): number {
  return cfg[key] === undefined || cfg[key] === null ? fallback : int(cfg, key, where, max, min);
}

/** A positive finite number (eps, theta, factors). */
export function positive(cfg: HFConfig, key: string, fallback: number, where: string): number {
  const v = optNum(cfg, key, fallback, where);
  if (!(v > 0)) throw new UserError(`${where}: field '${key}' must be greater than 0 (got ${v})`);
  return v;
}

export function optBool(cfg: HFConfig, key: string, fallback: boolean, where?: string): boolean {
  const v = cfg[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v === 'boolean') return v;
  if (where !== undefined) throw new UserError(`${where}: field '${key}' must be true or false (got ${JSON.stringify(v)})`);
  return fallback;
}

/** transformers' ACT2FN names for SiLU; SwiGLU is built on it. */
const LLM_ACTIVATIONS = ['silu', 'swish'];

export function decoderConfigFromHF(cfg: HFConfig, where: string): DecoderConfig {
  const hidden = int(cfg, 'hidden_size', where, LIMITS.hidden);
  const heads = int(cfg, 'num_attention_heads', where, LIMITS.heads);
  const kvHeads = optInt(cfg, 'num_key_value_heads', heads, where, LIMITS.heads);
  if (heads % kvHeads !== 0) throw new UserError(`${where}: num_attention_heads (${heads}) must be a multiple of num_key_value_heads (${kvHeads})`);
  const headDim = headDimFromHF(cfg, hidden, heads, where);
  const maxPositions = optInt(cfg, 'max_position_embeddings', 2048, where, LIMITS.positions);
  const act = cfg.hidden_act ?? 'silu';
  if (typeof act !== 'string' || !LLM_ACTIVATIONS.includes(act)) {
    throw new UserError(`${where}: hidden_act ${JSON.stringify(act)} is not supported (supported: ${LLM_ACTIVATIONS.join(', ')}; the MLP is SwiGLU)`);
  }
  const pad = cfg.pad_token_id;
  const vocab = int(cfg, 'vocab_size', where, LIMITS.vocab);
  const rope = ropeFromHF(cfg, { maxPositions, headDim }, where);
  return {
    hidden,
    heads,
    kvHeads,
    headDim,
    layers: int(cfg, 'num_hidden_layers', where, LIMITS.layers),
    intermediate: int(cfg, 'intermediate_size', where, LIMITS.intermediate),
    vocab,
    rmsNormEps: positive(cfg, 'rms_norm_eps', 1e-6, where),
    ropeTheta: rope.theta,
    maxPositions,
    ropeScaling: rope.scaling,
    tieEmbeddings: optBool(cfg, 'tie_word_embeddings', false, where),
    oBias: optBool(cfg, 'attention_bias', false, where),
    qkvBias: optBool(cfg, 'attention_bias', false, where),
    mlpBias: optBool(cfg, 'mlp_bias', false, where),
    partialRotaryFactor: rope.partialRotaryFactor,
    padTokenId: typeof pad === 'number' && Number.isSafeInteger(pad) && pad >= 0 && pad < vocab ? pad : undefined,
  };
}

/** head_dim, or hidden / heads, which must then divide evenly; rotary needs it even. */
function headDimFromHF(cfg: HFConfig, hidden: number, heads: number, where: string): number {
  if (cfg.head_dim === undefined || cfg.head_dim === null) {
    if (hidden % heads !== 0) throw new UserError(`${where}: hidden_size (${hidden}) is not divisible by num_attention_heads (${heads}); set head_dim or fix one of them`);
    return hidden / heads;
  }
  return int(cfg, 'head_dim', where, LIMITS.headDim);
}
