/**
 * Sliding-window attention settings from a Hugging Face LLM config, per family, as transformers 5
 * reads them (and, where it differs, as the official InternVL code computes them).
 *
 * What vlmc models (DecoderConfig.slidingWindow): on a sliding layer, query i attends to the keys
 * j with i - W < j <= i, i.e. W keys including itself — transformers' `sliding_window_overlay`
 * (`kv_idx > q_idx - sliding_window`). Which layers slide is `layerTypes`.
 *
 * - Phi-3: every layer slides when `sliding_window` is set. InternVL's own Phi-3 (the original
 *   layout's remote code) masks with `_prepare_4d_causal_attention_mask(sliding_window=W)` /
 *   flash `window_size=(W, W)`, which keeps W + 1 keys: an original-layout config reads as W + 1.
 * - Qwen2 / Qwen3: `sliding_window` only counts with `use_sliding_window` true; `layer_types`
 *   names each layer, else layers from `max_window_layers` on slide.
 * - Qwen3-MoE: with `use_sliding_window`, every layer (max_window_layers / layer_types unread).
 * - GPT-OSS: `layer_types` (alternating sliding / full by default), `sliding_window` always set.
 *
 * A window at least `max_position_embeddings` long is left out: it cannot apply inside the
 * context (Phi-3-mini-128k's 262144), and graphs stay as they were.
 */
import { UserError } from '../../errors.ts';
import { LIMITS, type HFConfig } from '../config-fields.ts';

export type LayerType = 'full_attention' | 'sliding_attention';
export const LAYER_TYPES: readonly LayerType[] = ['full_attention', 'sliding_attention'];

export interface SlidingWindowSettings {
  /** Keys a query on a sliding layer attends to, itself included; undefined: no window. */
  slidingWindow?: number;
  /** Per layer; undefined with a window: every layer slides. */
  layerTypes?: LayerType[];
}

/** Whose numbers a checkpoint's config stands for: transformers' (HF-native) or InternVL's own code. */
export type WindowSemantics = 'transformers' | 'internvl';

const maxPositionsOf = (hf: HFConfig): number => (typeof hf.max_position_embeddings === 'number' ? hf.max_position_embeddings : 2048);

function windowField(hf: HFConfig, where: string): number | undefined {
  const w = hf.sliding_window;
  if (w === undefined || w === null) return undefined;
  if (typeof w !== 'number' || !Number.isInteger(w) || w < 1 || w > LIMITS.positions * 64) {
    throw new UserError(`${where}: field 'sliding_window' must be a whole number of at least 1 or null (got ${JSON.stringify(w)})`);
  }
  return w;
}

function layerTypesField(hf: HFConfig, layers: number, where: string): LayerType[] | undefined {
  const t = hf.layer_types;
  if (t === undefined || t === null) return undefined;
  if (!Array.isArray(t) || !t.every((x): x is LayerType => typeof x === 'string' && (LAYER_TYPES as readonly string[]).includes(x))) {
    throw new UserError(`${where}: field 'layer_types' must be a list of ${LAYER_TYPES.map((x) => `'${x}'`).join(' / ')} (got ${JSON.stringify(t)})`);
  }
  if (t.length !== layers) throw new UserError(`${where}: field 'layer_types' has ${t.length} entries; num_hidden_layers is ${layers}`);
  return t;
}

const layerCount = (hf: HFConfig): number => (typeof hf.num_hidden_layers === 'number' ? hf.num_hidden_layers : 0);

/** The settings for a window of `keys` on the layers `types` marks (all when undefined), or none when it cannot apply. */
function settings(hf: HFConfig, keys: number, types: LayerType[] | undefined): SlidingWindowSettings {
  if (types && !types.includes('sliding_attention')) return {};
  // A window as long as the context never hides a key inside it.
  if (keys > maxPositionsOf(hf)) return {};
  return types && types.includes('full_attention') ? { slidingWindow: keys, layerTypes: types } : { slidingWindow: keys };
}

/**
 * Qwen2 (and Qwen3, Qwen3-MoE, which copy it): transformers sets sliding_window to None unless
 * use_sliding_window; layer_types, when absent, slides the layers from max_window_layers on.
 */
export function qwen2SlidingWindow(hf: HFConfig, where: string): SlidingWindowSettings {
  const layers = layerCount(hf);
  const types = layerTypesField(hf, layers, where);
  const window = hf.use_sliding_window === true ? windowField(hf, where) ?? 4096 : undefined;
  if (window === undefined) {
    // transformers 5 then fails to build the sliding mask; vlmc says why instead.
    if (types?.includes('sliding_attention')) {
      throw new UserError(`${where}: field 'layer_types' names sliding_attention layers, but use_sliding_window is not true, so there is no sliding_window for them (transformers cannot build this model either)`);
    }
    return {};
  }
  if (types) return settings(hf, window, types);
  const from = hf.max_window_layers === undefined || hf.max_window_layers === null ? 28 : hf.max_window_layers;
  if (typeof from !== 'number' || !Number.isInteger(from) || from < 0) {
    throw new UserError(`${where}: field 'max_window_layers' must be a whole number (got ${JSON.stringify(from)})`);
  }
  return settings(hf, window, Array.from({ length: layers }, (_, i) => (i >= from ? 'sliding_attention' : 'full_attention')));
}

/** Qwen3-MoE: with use_sliding_window, every layer (its model builds one mask; no layer_types). */
export function qwen3MoeSlidingWindow(hf: HFConfig, where: string): SlidingWindowSettings {
  if (hf.use_sliding_window !== true) return {};
  return settings(hf, windowField(hf, where) ?? 4096, undefined);
}

/** Phi-3: every layer uses sliding_window when it is set; InternVL's own code keeps one key more. */
export function phi3SlidingWindow(hf: HFConfig, where: string, semantics: WindowSemantics): SlidingWindowSettings {
  const window = windowField(hf, where);
  if (window === undefined) return {};
  // Phi3Config has no layer_types: transformers slides every layer whatever the field says.
  return settings(hf, semantics === 'internvl' ? window + 1 : window, undefined);
}

/** GPT-OSS: layer_types, by default sliding on even layers and full on odd ones; sliding_window 128 by default. */
export function gptOssSlidingWindow(hf: HFConfig, where: string): SlidingWindowSettings {
  const layers = layerCount(hf);
  const types = layerTypesField(hf, layers, where) ?? Array.from({ length: layers }, (_, i) => ((i + 1) % 2 === 0 ? 'full_attention' : 'sliding_attention'));
  // Absent means the class default; an explicit null leaves sliding layers without a window.
  const window = hf.sliding_window === undefined ? 128 : windowField(hf, where);
  if (window === undefined) {
    if (types.includes('sliding_attention')) throw new UserError(`${where}: field 'sliding_window' is null but layer_types names sliding_attention layers (transformers cannot build this model either)`);
    return {};
  }
  return settings(hf, window, types);
}

/** The original-layout config field for a window of `keys` (the inverse of the readers above). */
export function phi3WindowField(keys: number, semantics: WindowSemantics): number {
  return semantics === 'internvl' ? keys - 1 : keys;
}
