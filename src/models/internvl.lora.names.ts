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
import * as nodePath from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { UserError } from '../errors.ts';
import { Checkpoint } from '../checkpoint/checkpoint.ts';
import { loraModuleOf, loraScaling, targetsOf, type LoraPartInfo } from '../dsl/lora.ts';
import { IDENTITY_RULES, KeyLayout, type PrefixMap } from '../bind/layout.ts';

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

const WRAPPED_KEY = /^(.+?)\.base_model\.model\.(.+)$/;

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

/** The LoRA of a checkpoint whose keys say it is unmerged (`<part>.base_model.model.`); undefined otherwise. */
export function detectInternVLLora(ckpt: Checkpoint): LoraSource | undefined {
  const keys = ckpt.keys().filter((k) => WRAPPED_KEY.test(k));
  if (keys.length === 0) return undefined;
  const adapters = new Set<string>();
  const byPart = new Map<string, Map<string, number>>();
  for (const k of keys) {
    const [, part, rest] = WRAPPED_KEY.exec(k)!;
    if (!byPart.has(part!)) byPart.set(part!, new Map());
    const m = /^(.+)\.lora_A\.([^.]+)\.weight$/.exec(rest!);
    if (!m) continue;
    adapters.add(m[2]!);
    byPart.get(part!)!.set(m[1]!, ckpt.entry(k).shape[0] ?? 0);
  }
  if (adapters.size > 1) throw new UserError(`${ckpt.dir}: the checkpoint holds several LoRA adapters (${[...adapters].sort().join(', ')}); vlmc reads one (InternVL saves 'default')`);
  const parts: LoraPartFound[] = [...byPart].map(([module, modules]) => {
    if (modules.size === 0) throw new UserError(`${ckpt.dir}: ${module}.base_model.model.* holds no lora_A tensor; a wrapped part without adapters is not a LoRA checkpoint vlmc can read`);
    const r = Math.max(...modules.values());
    // InternVL wraps with lora_alpha = 2r.
    return { module, r, alpha: 2 * r, rslora: false, modules: [...modules.keys()].sort() };
  });
  parts.sort((a, b) => a.module.localeCompare(b.module));
  const layout = internvlLoraLayout(parts, [...adapters][0] ?? 'default');
  return { layout, lora: loraKeys(ckpt.dir, parts, layout) };
}

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';

/** A standalone PEFT adapter of one part: `base_model.model.<module>.lora_{A,B}.weight`, relative to the part. */
function peftAdapterLayout(module: string): KeyLayout {
  return new KeyLayout('peft-adapter', [{ graph: `${module}.`, checkpoint: 'base_model.model.', rules: (['A', 'B'] as const).map((x) => ({ from: `{rest}.lora_${x}.weight`, to: `{rest}.lora_${x}.weight` })) }]);
}

/** A PEFT adapter folder, read and checked: its config, its tensors, and the part of the model it adapts. */
export interface PeftAdapter extends LoraSource {
  dir: string;
  checkpoint: Checkpoint;
  /** The LoRA part name (`llm`, `vision`). */
  part: string;
}

/**
 * Opens `dir` as a PEFT LoRA adapter for the model whose LoRA parts and parameter names are given.
 * Refuses what vlmc does not compute the same way (DoRA, LoRA bias, per-module ranks / alphas,
 * modules_to_save, fan_in_fan_out), naming the field.
 */
export async function openPeftAdapter(dir: string, loraParts: Readonly<Record<string, LoraPartInfo>>, paramNames: ReadonlySet<string>): Promise<PeftAdapter> {
  const configFile = nodePath.join(dir, ADAPTER_CONFIG_FILE);
  if (!existsSync(configFile)) throw new UserError(`--adapter ${dir}: no ${ADAPTER_CONFIG_FILE}; an adapter folder is what PeftModel.save_pretrained writes (${ADAPTER_CONFIG_FILE} + ${ADAPTER_WEIGHTS_FILE})`);
  const config = readAdapterConfig(configFile);
  const checkpoint = await Checkpoint.openFile(nodePath.join(dir, ADAPTER_WEIGHTS_FILE));
  try {
    const modules = new Map<string, number>();
    for (const key of checkpoint.keys()) {
      const m = /^base_model\.model\.(.+)\.lora_([AB])\.weight$/.exec(key);
      if (!m) throw new UserError(`--adapter ${dir}: ${ADAPTER_WEIGHTS_FILE} holds '${key}', which is not a LoRA tensor (base_model.model.<module>.lora_A.weight / lora_B.weight); modules_to_save and embedding adapters are not supported`);
      if (m[2] === 'A') modules.set(m[1]!, checkpoint.entry(key).shape[0] ?? 0);
    }
    if (modules.size === 0) throw new UserError(`--adapter ${dir}: ${ADAPTER_WEIGHTS_FILE} holds no lora_A tensor`);
    for (const [module, r] of modules) {
      if (r !== config.r) throw new UserError(`--adapter ${dir}: base_model.model.${module}.lora_A.weight has rank ${r}, but ${ADAPTER_CONFIG_FILE} says r ${config.r}`);
    }
    const part = adapterPart(dir, [...modules.keys()], loraParts, paramNames);
    const found: LoraPartFound = { module: loraParts[part]!.module, r: config.r, alpha: config.alpha, rslora: config.rslora, modules: [...modules.keys()].sort() };
    const layout = peftAdapterLayout(found.module);
    return { dir, checkpoint, layout, lora: loraKeys(dir, [found], layout), part };
  } catch (e) {
    await checkpoint.close();
    throw e;
  }
}

/** The LoRA part whose Linears the adapter's modules all are (an adapter is saved relative to the model it wraps). */
function adapterPart(dir: string, modules: string[], loraParts: Readonly<Record<string, LoraPartInfo>>, paramNames: ReadonlySet<string>): string {
  const fits = Object.entries(loraParts).filter(([, info]) => modules.every((m) => paramNames.has(`${info.module}.${m}.weight`)));
  if (fits.length === 1) return fits[0]![0];
  const sample = modules.slice(0, 2).join(', ');
  if (fits.length === 0) throw new UserError(`--adapter ${dir}: its modules (${sample}, ...) are not Linears of ${Object.values(loraParts).map((p) => p.module).join(' or ')}; is it an adapter for this model?`);
  throw new UserError(`--adapter ${dir}: its modules (${sample}, ...) fit ${fits.map(([, p]) => p.module).join(' and ')}; vlmc cannot tell which part it adapts`);
}

interface AdapterConfig {
  r: number;
  alpha: number;
  rslora: boolean;
}

function readAdapterConfig(file: string): AdapterConfig {
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) throw new UserError(`${file}: not a JSON object`);
  const refuse = (field: string, why: string) => new UserError(`${file}: ${field} ${why}; vlmc applies plain LoRA adapters (W + alpha/r B A) only`);
  if (cfg.peft_type !== undefined && cfg.peft_type !== 'LORA') throw refuse('peft_type', `is ${JSON.stringify(cfg.peft_type)}`);
  const r = cfg.r;
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) throw new UserError(`${file}: r must be a positive whole number (got ${JSON.stringify(r)})`);
  const alpha = cfg.lora_alpha ?? r;
  if (typeof alpha !== 'number' || !(alpha > 0)) throw new UserError(`${file}: lora_alpha must be a positive number (got ${JSON.stringify(alpha)})`);
  if (cfg.use_dora === true) throw refuse('use_dora', 'is true (DoRA)');
  if (cfg.lora_bias === true) throw refuse('lora_bias', 'is true');
  if (cfg.bias !== undefined && cfg.bias !== 'none') throw refuse('bias', `is ${JSON.stringify(cfg.bias)}`);
  if (cfg.fan_in_fan_out === true) throw refuse('fan_in_fan_out', 'is true');
  for (const field of ['rank_pattern', 'alpha_pattern']) {
    const v = cfg[field];
    if (v !== undefined && v !== null && (typeof v !== 'object' || Object.keys(v).length > 0)) throw refuse(field, 'gives modules their own rank or alpha');
  }
  const toSave = cfg.modules_to_save;
  if (Array.isArray(toSave) && toSave.length > 0) throw refuse('modules_to_save', `lists ${toSave.join(', ')}`);
  return { r, alpha, rslora: cfg.use_rslora === true };
}

/** What `targetsOf` makes of a part's wrapped modules: the declaration a kept LoRA takes. */
export function declaredTargets(part: LoraPartFound): string[] {
  return targetsOf(part.modules);
}
