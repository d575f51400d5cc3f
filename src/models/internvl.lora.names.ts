/**
 * LoRA checkpoint layouts as PEFT writes them, as data for binding. The graph keeps the unified
 * names (`language_model.model.layers.0.self_attn.q_proj.weight`) and the adapters' own
 * (`<module>.lora_A.weight`, src/dsl/lora.ts); these layouts say which key holds each.
 *
 * - InternVL's checkpoint with LoRA unmerged (InternVLChatModel.save_pretrained after
 *   `wrap_backbone_lora` / `wrap_llm_lora`): every tensor of a wrapped part under
 *   `<part>.base_model.model.`; a wrapped Linear's as `<module>.base_layer.{weight,bias}`,
 *   `<module>.lora_A.<adapter>.weight` [r, in] and `<module>.lora_B.<adapter>.weight` [out, r]
 *   (adapter `default`); `mlp1.*` is never wrapped. lora_alpha is 2r (scaling 2).
 * - A standalone PEFT adapter folder (PeftModel.save_pretrained): `adapter_config.json` (its own
 *   r, lora_alpha, use_rslora) and `adapter_model.safetensors` with keys
 *   `base_model.model.<module>.lora_{A,B}.weight`, relative to the part it adapts.
 */
import { loraScaling, targetsOf } from '../dsl/lora.ts';
import { IDENTITY_RULES, KeyLayout, type PrefixMap } from '../dsl/layout.ts';

/** The InternVLChatConfig field that holds each part's LoRA rank. */
export const INTERNVL_LORA_CONFIG_FIELDS: Readonly<Record<string, string>> = { vision_model: 'use_backbone_lora', language_model: 'use_llm_lora' };

export interface LoraPair {
  a: string;
  b: string;
}

/** One part's LoRA as a source holds it. */
export interface LoraPartFound {
  /** Module path of the part (`language_model`). */
  module: string;
  r: number;
  alpha: number;
  rslora: boolean;
  /** Wrapped module paths inside the part (`model.layers.0.self_attn.q_proj`), sorted. */
  modules: string[];
}

/** What binding needs from a source that carries LoRA adapters. */
export interface LoraKeys {
  /** Shown in messages: the checkpoint or adapter folder. */
  readonly where: string;
  readonly parts: readonly LoraPartFound[];
  /** The lora_A / lora_B keys of a base weight (graph name), when this source holds its adapters. */
  pairFor(weightName: string): LoraPair | undefined;
  scalingFor(weightName: string): number;
}

/** The part holding a graph name, and the rest of the name. */
function splitPart(parts: readonly LoraPartFound[], name: string): { part: LoraPartFound; rest: string } | undefined {
  const part = parts.find((p) => name.startsWith(`${p.module}.`));
  return part ? { part, rest: name.slice(part.module.length + 1) } : undefined;
}

/** A source's LoRA as binding reads it: its layout names the adapter keys, these say which weights have adapters. */
export function loraKeys(where: string, parts: readonly LoraPartFound[], layout: KeyLayout): LoraKeys {
  return {
    where,
    parts,
    pairFor(weightName) {
      const found = splitPart(parts, weightName);
      const module = found?.rest.endsWith('.weight') ? found.rest.slice(0, -'.weight'.length) : undefined;
      if (!found || module === undefined || !found.part.modules.includes(module)) return undefined;
      const [a, b] = (['A', 'B'] as const).map((x) => layout.keysFor(`${found.part.module}.${module}.lora_${x}.weight`));
      return typeof a === 'string' && typeof b === 'string' ? { a, b } : undefined;
    },
    scalingFor(weightName) {
      const part = splitPart(parts, weightName)!.part;
      return loraScaling(part.r, part.alpha, part.rslora);
    },
  };
}

/** A checkpoint or adapter folder's LoRA: the layout its keys are in, and its adapters. */
export interface LoraSource {
  layout: KeyLayout;
  lora: LoraKeys;
}

/**
 * InternVL's layout with LoRA unmerged, as data: each wrapped part's keys under
 * `<part>.base_model.model.`, its wrapped Linears' weight and bias under `base_layer`, every
 * adapter under the adapter name; the rest (`mlp1.*`, unwrapped parts) as the graph names them.
 */
export function internvlLoraLayout(parts: readonly LoraPartFound[], adapter = 'default'): KeyLayout {
  const maps: PrefixMap[] = parts.map((p) => ({
    graph: `${p.module}.`,
    checkpoint: `${p.module}.base_model.model.`,
    rules: [
      ...p.modules.flatMap((m) => ['weight', 'bias'].map((leaf) => ({ from: `${m}.${leaf}`, to: `${m}.base_layer.${leaf}` }))),
      ...(['A', 'B'] as const).map((x) => ({ from: `{rest}.lora_${x}.weight`, to: `{rest}.lora_${x}.${adapter}.weight` })),
      ...IDENTITY_RULES,
    ],
  }));
  return new KeyLayout(INTERNVL_LORA_LAYOUT, [...maps, { graph: '', checkpoint: '', rules: IDENTITY_RULES }]);
}

/** The manifest's name for InternVL's layout with LoRA unmerged. */
export const INTERNVL_LORA_LAYOUT = 'internvl-lora';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';

/** A standalone PEFT adapter of one part: `base_model.model.<module>.lora_{A,B}.weight`, relative to the part. */
export function peftAdapterLayout(module: string): KeyLayout {
  return new KeyLayout('peft-adapter', [{ graph: `${module}.`, checkpoint: 'base_model.model.', rules: (['A', 'B'] as const).map((x) => ({ from: `{rest}.lora_${x}.weight`, to: `{rest}.lora_${x}.weight` })) }]);
}

/** What `targetsOf` makes of a part's wrapped modules: the declaration a kept LoRA takes. */
export function declaredTargets(part: LoraPartFound): string[] {
  return targetsOf(part.modules);
}
