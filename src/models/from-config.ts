/**
 * Graphs derived from checkpoint configs, so any released InternVL checkpoint builds without a
 * graph file: Path A reads one InternVLChatConfig; Path B reads a vision and an LLM config.
 */
import { UserError } from '../errors.ts';
import { internViT, type InternVisionModel } from './internvit.ts';
import type { InternViTConfig } from './internvit-config.ts';
import { internvl, type InternVLChatModel, type InternVLOptions } from './internvl.ts';
import { llmFromHF } from './llm/index.ts';
import { LIMITS, int, optBool, optInt, optNum, positive, type HFConfig } from './config-fields.ts';
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
  if (act !== 'gelu') throw new UserError(`${where}: vision hidden_act ${JSON.stringify(act)} is not supported (supported: gelu)`);
  const norm = (cfg.norm_type ?? 'rms_norm') as string;
  if (norm !== 'rms_norm' && norm !== 'layer_norm') throw new UserError(`${where}: norm_type ${JSON.stringify(norm)} is not supported (supported: rms_norm, layer_norm)`);
  const channels = optInt(cfg, 'num_channels', 3, where, 3);
  if (channels !== 3) throw new UserError(`${where}: num_channels ${channels} is not supported (supported: 3, RGB)`);
  const hidden = int(cfg, 'hidden_size', where, LIMITS.hidden);
  const heads = int(cfg, 'num_attention_heads', where, LIMITS.heads);
  if (hidden % heads !== 0) throw new UserError(`${where}: hidden_size (${hidden}) is not divisible by num_attention_heads (${heads})`);
  const imageSize = int(cfg, 'image_size', where, LIMITS.imageSize);
  const patchSize = int(cfg, 'patch_size', where, LIMITS.imageSize);
  if (imageSize % patchSize !== 0) throw new UserError(`${where}: image_size (${imageSize}) is not a multiple of patch_size (${patchSize})`);
  return {
    hidden,
    heads,
    layers: int(cfg, 'num_hidden_layers', where, LIMITS.layers),
    intermediate: int(cfg, 'intermediate_size', where, LIMITS.intermediate),
    imageSize,
    patchSize,
    norm,
    qkvBias: optBool(cfg, 'qkv_bias', false, where),
    qkNorm: optBool(cfg, 'qk_normalization', false, where),
    eps: positive(cfg, 'layer_norm_eps', 1e-6, where),
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

/** Where a composite option came from, for messages: a config field or a flag / API option. */
export type OptionSources = Partial<Record<'downsampleRatio' | 'psVersion' | 'selectLayer' | 'imageSize', string>>;

/** The flag (and API option) that sets each projector option. */
export const PROJECTOR_FLAGS: Record<keyof OptionSources, string> = {
  downsampleRatio: '--downsample-ratio (downsampleRatio)',
  psVersion: '--ps-version (psVersion)',
  selectLayer: '--select-layer (selectLayer)',
  imageSize: '--force-image-size (forceImageSize)',
};

/**
 * The composite options checked against the vision tower before any graph is built: the tile
 * size a whole number of patches, 1 / downsample_ratio a whole number dividing the patch grid,
 * select_layer a whole number naming an existing hidden state. `sources` says who set what.
 */
export function checkCompositeOptions(o: { downsampleRatio: number; psVersion: unknown; selectLayer: number; imageSize: number }, vision: InternViTConfig, sources: OptionSources): void {
  const { imageSize, downsampleRatio, selectLayer } = o;
  const name = (k: keyof OptionSources) => sources[k] ?? k;
  psVersionOf(o.psVersion, name('psVersion'));
  if (!Number.isInteger(imageSize) || imageSize < 1 || imageSize > LIMITS.imageSize) {
    throw new UserError(`${name('imageSize')}: the image size must be a whole number between 1 and ${LIMITS.imageSize} (got ${imageSize})`);
  }
  if (imageSize % vision.patchSize !== 0) {
    throw new UserError(`${name('imageSize')}: the image size ${imageSize} is not a multiple of the vision patch_size ${vision.patchSize}`);
  }
  const grid = imageSize / vision.patchSize;
  const inverse = 1 / downsampleRatio;
  const factor = Math.round(inverse);
  if (!Number.isFinite(downsampleRatio) || downsampleRatio <= 0 || downsampleRatio > 1 || Math.abs(inverse - factor) > 1e-9) {
    throw new UserError(`${name('downsampleRatio')}: downsample_ratio must be 1/k for a whole number k (0.5, 0.25, ...; got ${downsampleRatio})`);
  }
  if (grid % factor !== 0) {
    throw new UserError(`${name('downsampleRatio')}: downsample_ratio ${downsampleRatio} needs the patch grid (${grid} x ${grid} for image ${imageSize} / patch ${vision.patchSize}) to be a multiple of ${factor}`);
  }
  const L = vision.layers;
  if (!Number.isInteger(selectLayer) || selectLayer < -(L + 1) || selectLayer > L) {
    throw new UserError(`${name('selectLayer')}: select_layer must be a whole number from ${-(L + 1)} to ${L} for a ${L}-layer vision tower (got ${selectLayer})`);
  }
}

/** Sources for the options given as overrides (flags / API options), the rest from `where`'s fields. */
function sourcesFor(where: string, overrides: ProjectorOptions, fields: Record<keyof OptionSources, string>): OptionSources {
  const out: OptionSources = {};
  for (const k of Object.keys(PROJECTOR_FLAGS) as (keyof OptionSources)[]) {
    out[k] = overrides[k] !== undefined ? PROJECTOR_FLAGS[k] : `${where}: field '${fields[k]}'`;
  }
  return out;
}

const CONFIG_FIELDS: Record<keyof OptionSources, string> = {
  downsampleRatio: 'downsample_ratio',
  psVersion: 'ps_version',
  selectLayer: 'select_layer',
  imageSize: 'force_image_size',
};

/** Path A: an InternVLChatConfig (`config.json` of a unified checkpoint). */
export function internvlFromConfig(cfg: HFConfig, where: string, extra: Partial<InternVLOptions> = {}): InternVLChatModel {
  if (isHFInternVLConfig(cfg)) return internvlFromHFConfig(cfg, where, extra);
  const archs = cfg.architectures;
  if (cfg.model_type !== 'internvl_chat' && !(Array.isArray(archs) && archs.includes('InternVLChatModel'))) {
    throw new UserError(`${where}: not an InternVL checkpoint config (model_type '${String(cfg.model_type)}'); supported: 'internvl_chat' (InternVLChatModel: vision_config + llm_config) and 'internvl' (transformers' InternVLForConditionalGeneration: vision_config + text_config)`);
  }
  const vision = cfg.vision_config as HFConfig | undefined;
  const llm = cfg.llm_config as HFConfig | undefined;
  if (!vision || typeof vision !== 'object' || Array.isArray(vision)) throw new UserError(`${where}: 'vision_config' is missing or not an object`);
  if (!llm || typeof llm !== 'object' || Array.isArray(llm)) throw new UserError(`${where}: 'llm_config' is missing or not an object`);
  const visionModel = visionFromHF(vision, `${where} vision_config`);
  const forced = cfg.force_image_size;
  if (forced !== undefined && forced !== null && typeof forced !== 'number') throw new UserError(`${where}: field 'force_image_size' must be a number or null (got ${JSON.stringify(forced)})`);
  const overrides = withoutUndefined(extra);
  const options = {
    downsampleRatio: optNum(cfg, 'downsample_ratio', 0.5, where),
    psVersion: cfg.ps_version ?? 'v1',
    selectLayer: optNum(cfg, 'select_layer', -1, where),
    imageSize: typeof forced === 'number' ? forced : visionModel.config.imageSize,
    ...overrides,
  };
  checkCompositeOptions(options, visionModel.config, sourcesFor(where, overrides, CONFIG_FIELDS));
  return internvl({
    ...options,
    psVersion: psVersionOf(options.psVersion, where),
    vision: visionModel,
    llm: llmFromHF(llm, `${where} llm_config`, 'internvl'),
  });
}

/** Path B: a standalone InternViT config plus a standalone LLM config plus projector options. */
export function internvlFromParts(vision: HFConfig, visionWhere: string, llm: HFConfig, llmWhere: string, o: ProjectorOptions & Partial<InternVLOptions> = {}): InternVLChatModel {
  checkPathBRoles(vision, visionWhere, llm, llmWhere);
  const visionModel = visionFromHF(vision, visionWhere);
  const options = {
    ...withoutUndefined(o),
    downsampleRatio: o.downsampleRatio ?? 0.5,
    psVersion: o.psVersion ?? 'v2',
    selectLayer: o.selectLayer ?? -1,
    imageSize: o.imageSize ?? visionModel.config.imageSize,
  };
  const sources: OptionSources = { ...PROJECTOR_FLAGS };
  if (o.imageSize === undefined) sources.imageSize = `${visionWhere}: field 'image_size'`;
  checkCompositeOptions(options, visionModel.config, sources);
  // The result is an InternVLChatModel: InternVL's own code runs its LLM (Phi-3's window included).
  return internvl({ ...options, vision: visionModel, llm: llmFromHF(llm, llmWhere, 'internvl') });
}

type Role = 'unified' | 'vision' | 'llm' | 'unknown';

/** What a config describes, from its architectures / model_type / fields. */
function roleOf(cfg: HFConfig): Role {
  const archs = Array.isArray(cfg.architectures) ? cfg.architectures.filter((a): a is string => typeof a === 'string') : [];
  if (cfg.model_type === 'internvl_chat' || archs.includes('InternVLChatModel') || (cfg.vision_config !== undefined && cfg.llm_config !== undefined)) return 'unified';
  if (archs.includes('InternVisionModel') || cfg.model_type === 'intern_vit_6b' || cfg.patch_size !== undefined) return 'vision';
  if (archs.some((a) => a.endsWith('ForCausalLM')) || cfg.vocab_size !== undefined) return 'llm';
  return 'unknown';
}

/** Path B folders given in the wrong places are explained as that, not as an odd field. */
function checkPathBRoles(vision: HFConfig, visionWhere: string, llm: HFConfig, llmWhere: string): void {
  const v = roleOf(vision);
  const l = roleOf(llm);
  if (v === 'unified' || l === 'unified') {
    const [flag, where] = v === 'unified' ? ['--vision', visionWhere] : ['--llm', llmWhere];
    throw new UserError(`${where}: ${flag} was given a unified InternVL checkpoint (InternVLChatModel); build it with --weights <dir> (Path A), or give ${flag} a standalone ${flag === '--vision' ? 'InternViT' : 'LLM'} checkpoint`);
  }
  if (v === 'llm' && l === 'vision') {
    throw new UserError(`--vision and --llm look swapped: ${visionWhere} describes an LLM and ${llmWhere} an InternViT; give --vision <InternViT dir> --llm <LLM dir>`);
  }
  if (v === 'llm') throw new UserError(`${visionWhere}: --vision was given an LLM checkpoint (${String((vision.architectures as unknown[] | undefined)?.[0] ?? vision.model_type)}); --vision takes an InternViT checkpoint`);
  if (l === 'vision') throw new UserError(`${llmWhere}: --llm was given an InternViT checkpoint; --llm takes a language-model checkpoint`);
}
