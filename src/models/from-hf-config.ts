/**
 * Graphs from the Hugging Face-native InternVL config (transformers' `InternVLConfig`,
 * `model_type: internvl`, and `InternVLVisionConfig`, `model_type: internvl_vision`). The result is
 * the same InternVLChatModel as for the original config; what transformers computes differently is
 * reproduced through options: the q/k-norm eps fixed at 1e-6, no image_flags (every tile counts),
 * pixel shuffle v2 only. Keys are bound through src/models/internvl.hf.names.ts.
 */
import { UserError } from '../errors.ts';
import { internViT, type InternVisionModel } from './internvit.ts';
import type { InternViTConfig } from './internvit-config.ts';
import { internvl, type InternVLChatModel, type InternVLOptions } from './internvl.ts';
import { llmFromHF } from './llm/index.ts';
import { num, optBool, optNum, type HFConfig } from './config-fields.ts';

/** transformers' InternVLVisionRMSNorm for q_norm / k_norm is built without an eps: LlamaRMSNorm's 1e-6. */
export const HF_QK_NORM_EPS = 1e-6;

export const HF_INTERNVL_ARCHITECTURE = 'InternVLForConditionalGeneration';
export const HF_VISION_ARCHITECTURE = 'InternVLVisionModel';

const hasArch = (cfg: HFConfig, arch: string) => Array.isArray(cfg.architectures) && cfg.architectures.includes(arch);

/** A transformers-native InternVL config (`model_type: internvl`). */
export function isHFInternVLConfig(cfg: HFConfig): boolean {
  return cfg.model_type === 'internvl' || hasArch(cfg, HF_INTERNVL_ARCHITECTURE);
}

/** A transformers-native InternVL vision tower config (`model_type: internvl_vision`). */
export function isHFVisionConfig(cfg: HFConfig): boolean {
  return cfg.model_type === 'internvl_vision' || hasArch(cfg, HF_VISION_ARCHITECTURE);
}

/** `image_size` / `patch_size`: a number or a square [h, w] pair. */
function squareSize(cfg: HFConfig, key: string, fallback: number, where: string): number {
  const v = cfg[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v;
  if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number' && Number.isInteger(x) && x > 0)) {
    if (v[0] !== v[1]) throw new UserError(`${where}: '${key}' ${JSON.stringify(v)} is not square; only square tiles are supported`);
    return v[0] as number;
  }
  throw new UserError(`${where}: '${key}' must be a positive integer or a [height, width] pair (got ${JSON.stringify(v)})`);
}

/** A field whose only supported value is `expected` (its default when absent). */
function requireValue(cfg: HFConfig, key: string, expected: unknown, where: string, why: string): void {
  const v = cfg[key];
  if (v !== undefined && v !== null && v !== expected) throw new UserError(`${where}: '${key}' ${JSON.stringify(v)} is not supported (${why})`);
}

/** InternVLVisionConfig -> InternViTConfig, with transformers' defaults for absent fields. */
export function hfVisionConfig(cfg: HFConfig, where: string): InternViTConfig {
  requireValue(cfg, 'hidden_act', 'gelu', where, 'gelu only');
  requireValue(cfg, 'use_mean_pooling', true, where, 'the final LayerNorm of use_mean_pooling false is not implemented');
  requireValue(cfg, 'use_absolute_position_embeddings', true, where, 'InternVL uses absolute position embeddings');
  requireValue(cfg, 'num_channels', 3, where, 'RGB tiles only');
  const norm = (cfg.norm_type ?? 'layer_norm') as string;
  if (norm !== 'rms_norm' && norm !== 'layer_norm') throw new UserError(`${where}: norm_type '${norm}' is not supported (rms_norm, layer_norm)`);
  const eps = optNum(cfg, 'layer_norm_eps', 1e-6, where);
  const qkNorm = optBool(cfg, 'use_qk_norm', false);
  return {
    hidden: optNum(cfg, 'hidden_size', 1024, where),
    heads: optNum(cfg, 'num_attention_heads', 16, where),
    layers: optNum(cfg, 'num_hidden_layers', 24, where),
    intermediate: optNum(cfg, 'intermediate_size', 4096, where),
    imageSize: squareSize(cfg, 'image_size', 448, where),
    patchSize: squareSize(cfg, 'patch_size', 14, where),
    norm,
    qkvBias: optBool(cfg, 'attention_bias', false),
    qkNorm,
    eps,
    // Stated only where it differs, so a graph equal to the original one stays equal.
    ...(qkNorm && eps !== HF_QK_NORM_EPS ? { qkNormEps: HF_QK_NORM_EPS } : {}),
    layerScaleInit: optNum(cfg, 'layer_scale_init_value', 0.1, where),
  };
}

export function hfVisionFromConfig(cfg: HFConfig, where: string): InternVisionModel {
  return internViT(hfVisionConfig(cfg, where));
}

/** What the checkpoint says beyond its config: transformers 5 unties the head when both matrices are saved. */
export interface HFCheckpointFacts {
  /** Whether the checkpoint holds a separate lm_head (either spelling). */
  hasLmHead?: boolean;
}

export const HF_LM_HEAD_KEYS = ['lm_head.weight', 'language_model.lm_head.weight'];

/**
 * Tying: the top-level `tie_word_embeddings` when the config states it; hub configs omit it, and
 * transformers 5 then defaults to tied but unties when the checkpoint holds both matrices.
 */
function tiedEmbeddings(cfg: HFConfig, facts: HFCheckpointFacts): boolean {
  const v = cfg.tie_word_embeddings;
  if (typeof v === 'boolean') return v;
  return !facts.hasLmHead;
}

/** `text_config` as the LLM readers expect it: model_type qwen2 when absent (InternVLConfig's default). */
function textConfigOf(cfg: HFConfig, tie: boolean): HFConfig {
  const text = { ...(cfg.text_config as HFConfig) };
  text.model_type ??= 'qwen2';
  return { ...text, tie_word_embeddings: tie };
}

/** Path A: an InternVLConfig (`config.json` of an InternVLForConditionalGeneration checkpoint). */
export function internvlFromHFConfig(cfg: HFConfig, where: string, extra: Partial<InternVLOptions> = {}, facts: HFCheckpointFacts = {}): InternVLChatModel {
  if (!isHFInternVLConfig(cfg)) throw new UserError(`${where}: not a transformers InternVL config (model_type '${String(cfg.model_type)}'; expected 'internvl')`);
  const vision = cfg.vision_config as HFConfig | undefined;
  const text = cfg.text_config as HFConfig | undefined;
  if (!vision || typeof vision !== 'object') throw new UserError(`${where}: 'vision_config' is missing`);
  if (!text || typeof text !== 'object') throw new UserError(`${where}: 'text_config' is missing`);
  requireValue(cfg, 'vision_feature_select_strategy', 'default', where, "only 'default', which drops the class token");
  requireValue(cfg, 'projector_hidden_act', 'gelu', where, 'gelu only');
  const layer = cfg.vision_feature_layer;
  if (layer !== undefined && layer !== null && (typeof layer !== 'number' || !Number.isInteger(layer))) {
    throw new UserError(`${where}: 'vision_feature_layer' must be one integer layer index (got ${JSON.stringify(layer)}; several layers are not supported)`);
  }
  if (extra.psVersion !== undefined && extra.psVersion !== 'v2') throw new UserError(`${where}: transformers' InternVL shuffles pixels the v2 way only (got ps_version ${extra.psVersion})`);
  const token = cfg.image_token_id;
  if (token !== undefined && token !== null && !(typeof token === 'number' && Number.isSafeInteger(token) && token >= 0)) {
    throw new UserError(`${where}: 'image_token_id' must be a non-negative integer (got ${JSON.stringify(token)})`);
  }
  const model = internvl({
    vision: hfVisionFromConfig(vision, `${where} vision_config`),
    llm: llmFromHF(textConfigOf(cfg, tiedEmbeddings(cfg, facts)), `${where} text_config`, 'transformers'),
    downsampleRatio: optNum(cfg, 'downsample_ratio', 0.5, where),
    psVersion: 'v2',
    selectLayer: typeof layer === 'number' ? layer : -1,
    imageFlags: false,
    ...(typeof token === 'number' ? { imgContextTokenId: token } : {}),
    ...Object.fromEntries(Object.entries(extra).filter(([, v]) => v !== undefined)),
  });
  checkImageSeqLength(cfg, model, where);
  return model;
}

/** InternVLConfig's image_token_id when config.json leaves it out (transformers saves only non-defaults). */
export const HF_DEFAULT_IMAGE_TOKEN_ID = 151667;

/**
 * The id transformers would use when neither config.json nor the tokenizer files name one: the
 * class default, where the vocabulary has it (Qwen2.5 / Qwen3-sized); otherwise none.
 */
export function hfDefaultImageTokenId(model: InternVLChatModel): number | undefined {
  return model.language_model.config.vocab > HF_DEFAULT_IMAGE_TOKEN_ID ? HF_DEFAULT_IMAGE_TOKEN_ID : undefined;
}

/** The processor expands each image to image_seq_length tokens: it must be what a tile gives. */
function checkImageSeqLength(cfg: HFConfig, model: InternVLChatModel, where: string): void {
  if (cfg.image_seq_length === undefined || cfg.image_seq_length === null) return;
  const n = num(cfg, 'image_seq_length', where);
  if (n !== model.tokensPerTile) {
    throw new UserError(`${where}: 'image_seq_length' is ${n}, but a ${model.options.imageSize}px tile gives ${model.tokensPerTile} tokens (patch ${model.vision_model.config.patchSize}, downsample_ratio ${model.options.downsampleRatio})`);
  }
}
