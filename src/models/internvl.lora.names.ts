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
import type { CheckpointLayout } from './internvl.hf.names.ts';

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

const WRAPPED_KEY = /^(.+?)\.base_model\.model\.(.+)$/;

/** InternVL's own checkpoint with LoRA unmerged. */
export class InternVLLoraLayout implements CheckpointLayout, LoraKeys {
  readonly name = 'internvl-lora';

  constructor(
    readonly where: string,
    readonly parts: readonly LoraPartFound[],
    /** PEFT's adapter name in the keys (InternVL: `default`). */
    readonly adapter = 'default',
  ) {}

  /** The layout of a checkpoint whose keys say LoRA is unmerged (`<part>.base_model.model.`); undefined otherwise. */
  static detect(ckpt: Checkpoint): InternVLLoraLayout | undefined {
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
      const r = Math.max(0, ...modules.values());
      if (modules.size === 0) throw new UserError(`${ckpt.dir}: ${module}.base_model.model.* holds no lora_A tensor; a wrapped part without adapters is not a LoRA checkpoint vlmc can read`);
      // InternVL wraps with lora_alpha = 2r.
      return { module, r, alpha: 2 * r, rslora: false, modules: [...modules.keys()].sort() };
    });
    return new InternVLLoraLayout(ckpt.dir, parts.sort((a, b) => a.module.localeCompare(b.module)), [...adapters][0] ?? 'default');
  }

  keysFor(name: string): string | undefined {
    const found = splitPart(this.parts, name);
    if (!found) return undefined;
    const base = `${found.part.module}.base_model.model.`;
    const lora = loraModuleOf(found.rest);
    if (lora) return `${base}${lora.module}.lora_${lora.which}.${this.adapter}.weight`;
    const leaf = /^(.+)\.(weight|bias)$/.exec(found.rest);
    if (leaf && found.part.modules.includes(leaf[1]!)) return `${base}${leaf[1]}.base_layer.${leaf[2]}`;
    return base + found.rest;
  }

  nameFor(key: string): string | undefined {
    const m = WRAPPED_KEY.exec(key);
    if (!m) return key;
    const rest = m[2]!.replace(/\.base_layer\.(weight|bias)$/, '.$1').replace(new RegExp(`\\.lora_([AB])\\.${escape(this.adapter)}\\.weight$`), '.lora_$1.weight');
    return `${m[1]}.${rest}`;
  }

  pairFor(weightName: string): LoraPair | undefined {
    const found = splitPart(this.parts, weightName);
    const module = found?.rest.endsWith('.weight') ? found.rest.slice(0, -'.weight'.length) : undefined;
    if (!found || module === undefined || !found.part.modules.includes(module)) return undefined;
    const base = `${found.part.module}.base_model.model.${module}`;
    return { a: `${base}.lora_A.${this.adapter}.weight`, b: `${base}.lora_B.${this.adapter}.weight` };
  }

  scalingFor(weightName: string): number {
    const part = splitPart(this.parts, weightName)!.part;
    return loraScaling(part.r, part.alpha, part.rslora);
  }
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';

/** A standalone PEFT adapter applied to one part of the model. */
export class PeftAdapterLayout implements CheckpointLayout, LoraKeys {
  readonly name = 'peft-adapter';
  readonly parts: readonly LoraPartFound[];

  constructor(
    readonly where: string,
    part: LoraPartFound,
  ) {
    this.parts = [part];
  }

  keysFor(name: string): string | undefined {
    const found = splitPart(this.parts, name);
    const lora = found ? loraModuleOf(found.rest) : undefined;
    if (!found || !lora || !found.part.modules.includes(lora.module)) return undefined;
    return `base_model.model.${lora.module}.lora_${lora.which}.weight`;
  }

  nameFor(key: string): string | undefined {
    const m = /^base_model\.model\.(.+)$/.exec(key);
    return m ? `${this.parts[0]!.module}.${m[1]}` : undefined;
  }

  pairFor(weightName: string): LoraPair | undefined {
    const found = splitPart(this.parts, weightName);
    const module = found?.rest.endsWith('.weight') ? found.rest.slice(0, -'.weight'.length) : undefined;
    if (!found || module === undefined || !found.part.modules.includes(module)) return undefined;
    return { a: `base_model.model.${module}.lora_A.weight`, b: `base_model.model.${module}.lora_B.weight` };
  }

  scalingFor(): number {
    const p = this.parts[0]!;
    return loraScaling(p.r, p.alpha, p.rslora);
  }
}

/** A PEFT adapter folder, read and checked: its config, its tensors, and the part of the model it adapts. */
export interface PeftAdapter {
  dir: string;
  checkpoint: Checkpoint;
  layout: PeftAdapterLayout;
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
    return { dir, checkpoint, layout: new PeftAdapterLayout(dir, found), part };
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
