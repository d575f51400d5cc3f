/**
 * Graphs derived from checkpoint configs, so any released InternVL checkpoint builds without a
 * graph file: Path A reads one InternVLChatConfig; Path B reads a vision and an LLM config.
 */
import { UserError } from '../errors.ts';
import { internViT, type InternViTConfig, type InternVisionModel } from './internvit.ts';
import { internvl, type InternVLChatModel, type InternVLOptions } from './internvl.ts';
import { llmFromHF } from './llm/index.ts';
import { num, optBool, optNum, type HFConfig } from './llm/hf-config.ts';
import type { PsVersion } from './projector.ts';
import { hfVisionConfig, internvlFromHFConfig, isHFInternVLConfig, isHFVisionConfig } from './from-hf-config.ts';

/** Vision tower configs by model_type; a config without one is read as InternViT. */
const VISION_MODEL_TYPES = ['intern_vit_6b (InternVisionModel)', 'internvl_vision (transformers InternVLVisionModel)'];

export function visionConfigFromHF(cfg: HFConfig, where: string): InternViTConfig {
  if (isHFVisionConfig(cfg)) return hfVisionConfig(cfg, where);
  const archs = Array.isArray(cfg.architectures) ? cfg.architectures : [];
  if (typeof cfg.model_type === 'string' && cfg.model_type !== 'intern_vit_6b' && !archs.includes('InternVisionModel')) {
    throw new UserError(`${where}: model_type '${cfg.model_type}' is not a supported vision tower; supported: ${VISION_MODEL_TYPES.join(', ')}`);
  }
  const act = cfg.hidden_act ?? 'gelu';
  if (act !== 'gelu') throw new UserError(`${where}: vision hidden_act '${String(act)}' is not supported (gelu only)`);
  const norm = (cfg.norm_type ?? 'rms_norm') as string;
  if (norm !== 'rms_norm' && norm !== 'layer_norm') throw new UserError(`${where}: norm_type '${norm}' is not supported (rms_norm, layer_norm)`);
  return {
    hidden: num(cfg, 'hidden_size', where),
    heads: num(cfg, 'num_attention_heads', where),
    layers: num(cfg, 'num_hidden_layers', where),
    intermediate: num(cfg, 'intermediate_size', where),
    imageSize: num(cfg, 'image_size', where),
    patchSize: num(cfg, 'patch_size', where),
    norm,
    qkvBias: optBool(cfg, 'qkv_bias', false),
    qkNorm: optBool(cfg, 'qk_normalization', false),
    eps: optNum(cfg, 'layer_norm_eps', 1e-6, where),
    layerScaleInit: optNum(cfg, 'initializer_factor', 0.1, where),
  };
}

export function visionFromHF(cfg: HFConfig, where: string): InternVisionModel {
  return internViT(visionConfigFromHF(cfg, where));
}

/** Projector and splice options, as InternVLChatConfig names them. */
export interface ProjectorOptions {
  downsampleRatio?: number;
  psVersion?: PsVersion;
  selectLayer?: number;
  imageSize?: number;
  imgContextTokenId?: number;
}

/** Overrides that are left out rather than set to undefined, so they never clobber a default. */
function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Just the projector options of a larger options object (CLI flags), dropping undefined ones. */
export function pickProjectorOptions(o: ProjectorOptions): ProjectorOptions {
  const out: ProjectorOptions = {};
  if (o.downsampleRatio !== undefined) out.downsampleRatio = o.downsampleRatio;
  if (o.psVersion !== undefined) out.psVersion = o.psVersion;
  if (o.selectLayer !== undefined) out.selectLayer = o.selectLayer;
  if (o.imageSize !== undefined) out.imageSize = o.imageSize;
  return out;
}

export function psVersionOf(v: unknown, where: string): PsVersion {
  if (v === 'v1' || v === 'v2') return v;
  throw new UserError(`${where}: ps_version must be 'v1' or 'v2' (got ${JSON.stringify(v)})`);
}

/** Path A: an InternVLChatConfig (`config.json` of a unified checkpoint). */
export function internvlFromConfig(cfg: HFConfig, where: string, extra: Partial<InternVLOptions> = {}): InternVLChatModel {
  if (isHFInternVLConfig(cfg)) return internvlFromHFConfig(cfg, where, extra);
  const archs = cfg.architectures;
  if (cfg.model_type !== 'internvl_chat' && !(Array.isArray(archs) && archs.includes('InternVLChatModel'))) {
    throw new UserError(`${where}: not an InternVL checkpoint config (model_type '${String(cfg.model_type)}'); supported: 'internvl_chat' (InternVLChatModel: vision_config + llm_config) and 'internvl' (transformers' InternVLForConditionalGeneration: vision_config + text_config)`);
  }
  const vision = cfg.vision_config as HFConfig | undefined;
  const llm = cfg.llm_config as HFConfig | undefined;
  if (!vision || typeof vision !== 'object') throw new UserError(`${where}: 'vision_config' is missing`);
  if (!llm || typeof llm !== 'object') throw new UserError(`${where}: 'llm_config' is missing`);
  const forced = cfg.force_image_size;
  return internvl({
    vision: visionFromHF(vision, `${where} vision_config`),
    llm: llmFromHF(llm, `${where} llm_config`),
    downsampleRatio: optNum(cfg, 'downsample_ratio', 0.5, where),
    psVersion: psVersionOf(cfg.ps_version ?? 'v1', where),
    selectLayer: optNum(cfg, 'select_layer', -1, where),
    ...(typeof forced === 'number' ? { imageSize: forced } : {}),
    ...withoutUndefined(extra),
  });
}

/** Path B: a standalone InternViT config plus a standalone LLM config plus projector options. */
export function internvlFromParts(vision: HFConfig, visionWhere: string, llm: HFConfig, llmWhere: string, o: ProjectorOptions & Partial<InternVLOptions> = {}): InternVLChatModel {
  return internvl({
    ...withoutUndefined(o),
    vision: visionFromHF(vision, visionWhere),
    llm: llmFromHF(llm, llmWhere),
    downsampleRatio: o.downsampleRatio ?? 0.5,
    psVersion: o.psVersion ?? 'v2',
    selectLayer: o.selectLayer ?? -1,
  });
}
