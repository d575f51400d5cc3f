/**
 * Checkpoints of a LoRA training run, saved as InternVL's own training saves them (so InternVL's
 * code and `vlmc build --weights` load them): LoRA unmerged under `<part>.base_model.model.`
 * (src/models/internvl.lora.names.ts), config `use_backbone_lora` / `use_llm_lora` = r, and the
 * LLM's head untied (InternVLChatConfig forces `tie_word_embeddings` False, so its saves always
 * carry their own `lm_head` / `output`).
 */
import type { ManifestParameter } from '../artifact/format.ts';
import { loraModuleOf } from '../dsl/lora.ts';
import { internvlLoraLayout, INTERNVL_LORA_CONFIG_FIELDS, type LoraPartFound } from '../models/internvl.lora.names.ts';
import { TIED_DUPLICATES } from '../models/internvl.names.ts';

export interface LoraCheckpointLayout {
  /** The checkpoint key of a parameter. */
  keyOf(name: string): string;
  /** Heads written as copies of a tied embedding: key -> the parameter copied. */
  untiedHeads: { key: string; from: string }[];
  /** config.json as the save writes it. */
  config(json: Record<string, unknown>): Record<string, unknown>;
}

/** The layout of a run whose artifact has LoRA adapters; undefined for a run without. */
export function loraCheckpointLayout(parameters: readonly ManifestParameter[]): LoraCheckpointLayout | undefined {
  const parts = wrappedParts(parameters);
  if (parts.length === 0) return undefined;
  const layout = internvlLoraLayout(parts);
  const names = new Set(parameters.map((p) => p.name));
  const heads = Object.entries(TIED_DUPLICATES).filter(([head, embedding]) => !names.has(head) && names.has(embedding));
  return {
    keyOf: (name) => keyOf(layout.keysFor(name), name),
    untiedHeads: heads.map(([head, embedding]) => ({ key: keyOf(layout.keysFor(head), head), from: embedding })),
    config: (json) => {
      const out: Record<string, unknown> = { ...json };
      for (const [module, field] of Object.entries(INTERNVL_LORA_CONFIG_FIELDS)) out[field] = parts.find((p) => p.module === module)?.r ?? 0;
      const llm = out.llm_config;
      if (heads.length > 0 && typeof llm === 'object' && llm !== null) out.llm_config = { ...llm, tie_word_embeddings: false };
      return out;
    },
  };
}

/** InternVL's layout names every parameter by one key. */
function keyOf(key: string | string[] | undefined, name: string): string {
  return typeof key === 'string' ? key : name;
}

/** The parts with adapters, their rank (lora_A rows) and wrapped modules, from the parameter names. */
function wrappedParts(parameters: readonly ManifestParameter[]): LoraPartFound[] {
  const byModule = new Map<string, LoraPartFound>();
  for (const p of parameters) {
    const lora = loraModuleOf(p.name);
    if (!lora || lora.which !== 'A') continue;
    const module = Object.keys(INTERNVL_LORA_CONFIG_FIELDS).find((m) => lora.module.startsWith(`${m}.`));
    if (!module) continue;
    const part = byModule.get(module) ?? { module, r: p.shape[0]!, alpha: 2 * p.shape[0]!, rslora: false, modules: [] };
    part.modules.push(lora.module.slice(module.length + 1));
    byModule.set(module, part);
  }
  return [...byModule.values()];
}
