/** Reading a Hugging Face LLM `config.json` into a DecoderConfig. */
import { UserError } from '../../errors.ts';
import type { RopeScaling } from '../../nn/rotary.ts';
import type { DecoderConfig } from './decoder.ts';

export type HFConfig = Record<string, unknown>;

/** A field that must be present and numeric. */
export function num(cfg: HFConfig, key: string, where: string): number {
  const v = cfg[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new UserError(`${where}: field '${key}' must be a number (got ${JSON.stringify(v)})`);
  return v;
}

export function optNum(cfg: HFConfig, key: string, fallback: number, where: string): number {
  return cfg[key] === undefined || cfg[key] === null ? fallback : num(cfg, key, where);
}

export function optBool(cfg: HFConfig, key: string, fallback: boolean): boolean {
  const v = cfg[key];
  return typeof v === 'boolean' ? v : fallback;
}

export function decoderConfigFromHF(cfg: HFConfig, where: string): DecoderConfig {
  const heads = num(cfg, 'num_attention_heads', where);
  const hidden = num(cfg, 'hidden_size', where);
  const maxPositions = optNum(cfg, 'max_position_embeddings', 2048, where);
  const act = cfg.hidden_act ?? 'silu';
  if (act !== 'silu') throw new UserError(`${where}: hidden_act '${String(act)}' is not supported (SwiGLU with silu only)`);
  const pad = cfg.pad_token_id;
  return {
    hidden,
    heads,
    kvHeads: optNum(cfg, 'num_key_value_heads', heads, where),
    headDim: optNum(cfg, 'head_dim', hidden / heads, where),
    layers: num(cfg, 'num_hidden_layers', where),
    intermediate: num(cfg, 'intermediate_size', where),
    vocab: num(cfg, 'vocab_size', where),
    rmsNormEps: optNum(cfg, 'rms_norm_eps', 1e-6, where),
    ropeTheta: optNum(cfg, 'rope_theta', 10000, where),
    maxPositions,
    ropeScaling: ropeScalingFromHF(cfg, maxPositions, where),
    tieEmbeddings: optBool(cfg, 'tie_word_embeddings', false),
    oBias: optBool(cfg, 'attention_bias', false),
    qkvBias: optBool(cfg, 'attention_bias', false),
    mlpBias: optBool(cfg, 'mlp_bias', false),
    partialRotaryFactor: optNum(cfg, 'partial_rotary_factor', 1, where),
    padTokenId: typeof pad === 'number' && pad >= 0 ? pad : undefined,
  };
}

export function ropeScalingFromHF(cfg: HFConfig, maxPositions: number, where: string): RopeScaling | undefined {
  const rs = cfg.rope_scaling as HFConfig | null | undefined;
  if (!rs) return undefined;
  const type = (rs.rope_type ?? rs.type) as string | undefined;
  const at = `${where}: rope_scaling`;
  switch (type) {
    case undefined:
    case 'default':
      return undefined;
    case 'linear':
      return { type: 'linear', factor: num(rs, 'factor', at) };
    case 'dynamic':
      return { type: 'dynamic', factor: num(rs, 'factor', at) };
    case 'llama3':
      return {
        type: 'llama3',
        factor: num(rs, 'factor', at),
        lowFreqFactor: num(rs, 'low_freq_factor', at),
        highFreqFactor: num(rs, 'high_freq_factor', at),
        originalMaxPositions: num(rs, 'original_max_position_embeddings', at),
      };
    case 'su':
    case 'longrope': {
      const original = (rs.original_max_position_embeddings ?? cfg.original_max_position_embeddings ?? maxPositions) as number;
      const factors = (k: string) => {
        const f = rs[k];
        if (!Array.isArray(f) || !f.every((x) => typeof x === 'number')) throw new UserError(`${at}: '${k}' must be a list of numbers`);
        return f as number[];
      };
      const attentionFactor = typeof rs.attention_factor === 'number' ? rs.attention_factor : undefined;
      return { type: 'longrope', shortFactor: factors('short_factor'), longFactor: factors('long_factor'), originalMaxPositions: original, attentionFactor };
    }
    default:
      throw new UserError(`${at}: type '${type}' is not supported (supported: linear, dynamic, llama3, su/longrope)`);
  }
}
