/** Reading a Hugging Face LLM `config.json` into a DecoderConfig. */
import { UserError } from '../../errors.ts';
import { LIMITS, int, optBool, optInt, positive, type HFConfig } from '../config-fields.ts';
import type { DecoderConfig } from './decoder.ts';
import { ropeFromHF } from './rope-config.ts';

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
