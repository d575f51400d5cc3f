/**
 * The inverse of from-config: the config.json files that describe a model, for checkpoints vlmc
 * writes itself (the demo's random checkpoint, tests) in the layouts released checkpoints use.
 */
import type { InternVLChatModel } from './internvl.ts';
import type { InternVisionModel } from './internvit.ts';
import type { CausalLM } from './llm/decoder.ts';
import type { RopeScaling } from '../nn/rotary.ts';
import { phi3WindowField, type WindowSemantics } from './llm/sliding-window.ts';

export function visionConfigJson(v: InternVisionModel): Record<string, unknown> {
  const c = v.config;
  return {
    architectures: ['InternVisionModel'],
    model_type: 'intern_vit_6b',
    hidden_size: c.hidden,
    num_attention_heads: c.heads,
    num_hidden_layers: c.layers,
    intermediate_size: c.intermediate,
    image_size: c.imageSize,
    patch_size: c.patchSize,
    num_channels: 3,
    norm_type: c.norm,
    qkv_bias: c.qkvBias,
    qk_normalization: c.qkNorm,
    layer_norm_eps: c.eps,
    initializer_factor: c.layerScaleInit ?? 0.1,
    hidden_act: 'gelu',
  };
}

const MODEL_TYPES: Record<string, string> = {
  Qwen2ForCausalLM: 'qwen2',
  LlamaForCausalLM: 'llama',
  InternLM2ForCausalLM: 'internlm2',
  Phi3ForCausalLM: 'phi3',
  Qwen3ForCausalLM: 'qwen3',
  Qwen3MoeForCausalLM: 'qwen3_moe',
  GptOssForCausalLM: 'gpt_oss',
};

/**
 * `semantics`: whose code the config is for where the window's meaning differs (Phi-3): InternVL's
 * (original layout, Path B; the default) or transformers' (an HF-native text_config).
 */
export function llmConfigJson(llm: CausalLM, semantics: WindowSemantics = 'internvl'): Record<string, unknown> {
  const c = llm.config;
  const out: Record<string, unknown> = {
    architectures: [llm.architecture],
    model_type: MODEL_TYPES[llm.architecture] ?? 'llama',
    hidden_size: c.hidden,
    num_attention_heads: c.heads,
    num_key_value_heads: c.kvHeads,
    num_hidden_layers: c.layers,
    intermediate_size: c.intermediate,
    vocab_size: c.vocab,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    max_position_embeddings: c.maxPositions,
    rope_scaling: c.ropeScaling ? ropeScalingJson(c.ropeScaling) : null,
    // Phi-3 keeps LongRoPE's original context at the top level, as its released configs do.
    ...(c.ropeScaling?.type === 'longrope' ? { original_max_position_embeddings: c.ropeScaling.originalMaxPositions } : {}),
    tie_word_embeddings: c.tieEmbeddings,
    hidden_act: 'silu',
  };
  if (c.headDim !== undefined && c.headDim !== c.hidden / c.heads) out.head_dim = c.headDim;
  if ((c.partialRotaryFactor ?? 1) !== 1) out.partial_rotary_factor = c.partialRotaryFactor;
  if (llm.architecture === 'InternLM2ForCausalLM') out.bias = c.qkvBias ?? false;
  else if (llm.architecture === 'Qwen3ForCausalLM' || llm.architecture === 'Qwen3MoeForCausalLM') {
    // Qwen3Config defaults head_dim to 128, so it is always written.
    out.head_dim = c.headDim ?? c.hidden / c.heads;
    out.attention_bias = c.qkvBias ?? false;
  } else if (llm.architecture === 'LlamaForCausalLM') {
    out.attention_bias = c.qkvBias ?? false;
    out.mlp_bias = c.mlpBias ?? false;
  } else if (llm.architecture === 'GptOssForCausalLM') {
    // GptOssConfig defaults head_dim to 64 and attention_bias to true: both always written.
    out.head_dim = c.headDim ?? c.hidden / c.heads;
    out.attention_bias = c.qkvBias ?? false;
  }
  if (c.padTokenId !== undefined) out.pad_token_id = c.padTokenId;
  if (llm.architecture === 'GptOssForCausalLM') return Object.assign(out, gptOssJson(c));
  Object.assign(out, slidingWindowJson(llm, semantics));
  if (c.moe) Object.assign(out, moeJson(c.moe));
  return out;
}

/** GptOssConfig's expert and window fields: intermediate_size is the experts' width; layer_types always spelled out. */
function gptOssJson(c: CausalLM['config']): Record<string, unknown> {
  const m = c.moe!;
  return {
    intermediate_size: m.intermediate,
    num_local_experts: m.experts,
    num_experts_per_tok: m.topK,
    ...(m.swigluLimit !== undefined ? { swiglu_limit: m.swigluLimit } : {}),
    ...(m.swigluAlpha !== undefined ? { swiglu_alpha: m.swigluAlpha } : {}),
    sliding_window: c.slidingWindow ?? null,
    layer_types: c.layerTypes ?? Array.from({ length: c.layers }, () => (c.slidingWindow === undefined ? 'full_attention' : 'sliding_attention')),
  };
}

/** Qwen3MoeConfig's expert fields (num_experts: the original layout's spelling, which transformers 5 also reads). */
function moeJson(m: NonNullable<CausalLM['config']['moe']>): Record<string, unknown> {
  return {
    num_experts: m.experts,
    num_experts_per_tok: m.topK,
    moe_intermediate_size: m.intermediate,
    norm_topk_prob: m.normTopKProb ?? false,
    decoder_sparse_step: m.decoderSparseStep ?? 1,
    mlp_only_layers: m.mlpOnlyLayers ?? [],
  };
}

/** The window fields each family reads (src/models/llm/sliding-window.ts, inverted). */
function slidingWindowJson(llm: CausalLM, semantics: WindowSemantics): Record<string, unknown> {
  const { slidingWindow: window, layerTypes: types, layers } = llm.config;
  if (window === undefined) return {};
  if (llm.architecture === 'Phi3ForCausalLM') return { sliding_window: phi3WindowField(window, semantics) };
  const firstSliding = types === undefined ? 0 : types.indexOf('sliding_attention');
  const suffix = types === undefined || types.every((t, i) => (t === 'sliding_attention') === (i >= firstSliding));
  return {
    use_sliding_window: true,
    sliding_window: window,
    // Qwen2's original configs say which layers slide with max_window_layers; other patterns need layer_types.
    ...(suffix ? { max_window_layers: firstSliding === -1 ? layers : firstSliding } : { layer_types: types }),
  };
}

function ropeScalingJson(s: RopeScaling): Record<string, unknown> {
  switch (s.type) {
    case 'linear':
    case 'dynamic':
      return { type: s.type, factor: s.factor };
    case 'llama3':
      return { rope_type: 'llama3', factor: s.factor, low_freq_factor: s.lowFreqFactor, high_freq_factor: s.highFreqFactor, original_max_position_embeddings: s.originalMaxPositions };
    case 'longrope':
      return {
        type: 'longrope',
        short_factor: s.shortFactor,
        long_factor: s.longFactor,
        ...(s.attentionFactor !== undefined ? { attention_factor: s.attentionFactor } : {}),
      };
    case 'yarn':
      return {
        rope_type: 'yarn',
        factor: s.factor,
        original_max_position_embeddings: s.originalMaxPositions,
        ...(s.attentionFactor !== undefined ? { attention_factor: s.attentionFactor } : {}),
        ...(s.betaFast !== undefined ? { beta_fast: s.betaFast } : {}),
        ...(s.betaSlow !== undefined ? { beta_slow: s.betaSlow } : {}),
        ...(s.truncate !== undefined ? { truncate: s.truncate } : {}),
      };
    case 'proportional':
      return { rope_type: 'proportional', factor: s.factor, partial_rotary_factor: s.proportion };
  }
}

/** The conversation template a config.json written from a model names (InternVL2's own default). */
export const WRITTEN_TEMPLATE = 'Hermes-2';

/** InternVLChatConfig for a unified checkpoint. */
export function internvlConfigJson(m: InternVLChatModel): Record<string, unknown> {
  const o = m.options;
  return {
    architectures: ['InternVLChatModel'],
    model_type: 'internvl_chat',
    downsample_ratio: o.downsampleRatio,
    ps_version: o.psVersion,
    select_layer: o.selectLayer,
    force_image_size: o.imageSize,
    template: WRITTEN_TEMPLATE,
    vision_config: visionConfigJson(m.vision_model),
    llm_config: llmConfigJson(m.language_model),
  };
}
