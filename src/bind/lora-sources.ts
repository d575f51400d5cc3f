/**
 * What a build makes of LoRA: the sources that hold adapters (an InternVL checkpoint saved with
 * LoRA unmerged, PEFT adapter folders given with --adapter) and the LoRA the graph declares
 * (--use-backbone-lora / --use-llm-lora, or --keep-lora: the sources' own, kept separate).
 * Without a declaration, adapters a source holds are merged into their base weights at bind.
 */
import * as nodePath from 'node:path';
import { UserError } from '../errors.ts';
import type { Model } from '../dsl/model.ts';
import { assignPaths, collectParams } from '../dsl/module.ts';
import { targetsOf, type LoraDeclaration, type LoraPartOptions } from '../dsl/lora.ts';
import { detectInternVLLora, openPeftAdapter, type LoraPartFound } from '../models/internvl.lora.names.ts';
import type { WeightSource } from './plan.ts';

export interface LoraBuildOptions {
  /** Rank of a new or continued LoRA on the vision backbone (InternVL's --use_backbone_lora). */
  useBackboneLora?: number;
  /** Rank of a new or continued LoRA on the LLM (InternVL's --use_llm_lora). */
  useLlmLora?: number;
  /** Keep the LoRA a checkpoint or adapter holds as separate parameters instead of merging it. */
  keepLora?: boolean;
  /** PEFT adapter folders applied onto the base weights. */
  adapters?: string[];
  /** The declared LoRA's adapters become graph inputs, fed at run time (`vlmc run --adapter`). */
  loraInputs?: boolean;
}

/** A unified checkpoint in InternVL's own layout saved with LoRA unmerged is read through its LoRA layout. */
export function withLoraLayout(source: WeightSource): WeightSource {
  if (source.role !== 'unified' || !source.layout.original) return source;
  const found = detectInternVLLora(source.checkpoint);
  return found ? { ...source, ...found } : source;
}

/**
 * A unified checkpoint's config names its LoRA ranks (use_backbone_lora / use_llm_lora); they must
 * agree with the wrapped parts its keys show.
 */
export function checkLoraConfig(model: Model, source: WeightSource | undefined): void {
  if (!source || source.role !== 'unified') return;
  const config = source.checkpoint.config;
  const file = nodePath.join(source.checkpoint.dir, 'config.json');
  for (const info of Object.values(model.loraParts())) {
    const raw = config[info.configField];
    const declared = raw === undefined || raw === null || raw === false ? 0 : raw;
    if (typeof declared !== 'number' || !Number.isInteger(declared) || declared < 0) throw new UserError(`${file}: ${info.configField} must be a whole number (got ${JSON.stringify(raw)})`);
    const held = source.lora?.parts.find((p) => p.module === info.module);
    if (declared > 0 && !held) throw new UserError(`${file}: ${info.configField} is ${declared}, but the checkpoint has no ${info.module}.base_model.model.* keys (LoRA unmerged); merged checkpoints set ${info.configField} to 0`);
    if (held && declared !== held.r) throw new UserError(`${file}: ${info.configField} is ${declared}, but the checkpoint's ${info.module} LoRA has rank ${held.r} (lora_A rows)`);
  }
}

/** Opens each --adapter folder for the part of the model it adapts; one adapter per part, none where the checkpoint already holds LoRA. */
export async function openAdapterSources(dirs: readonly string[], model: Model, sources: readonly WeightSource[]): Promise<WeightSource[]> {
  if (dirs.length === 0) return [];
  assignPaths(model);
  const names = new Set(collectParams(model).map((p) => p.name));
  const opened: WeightSource[] = [];
  try {
    for (const dir of dirs) {
      const adapter = await openPeftAdapter(dir, model.loraParts(), names);
      opened.push({ role: 'adapter', checkpoint: adapter.checkpoint, layout: adapter.layout, lora: adapter.lora });
      const module = adapter.lora.parts[0]!.module;
      const other = [...sources, ...opened.slice(0, -1)].find((s) => s.lora?.parts.some((p) => p.module === module));
      if (other) throw new UserError(`--adapter ${dir}: ${other.lora!.where} already holds LoRA for ${module}; give one adapter per part`);
    }
    return opened;
  } catch (e) {
    for (const s of opened) await s.checkpoint.close();
    throw e;
  }
}

/**
 * The LoRA the graph declares: the rank flags, and with --keep-lora every part a source holds
 * (its rank, alpha and wrapped modules). A flag for a part a source holds continues that LoRA, so
 * its rank must match.
 */
export function loraDeclarationFor(o: LoraBuildOptions, model: Model, sources: readonly WeightSource[]): LoraDeclaration | undefined {
  const infos = Object.entries(model.loraParts());
  const held = new Map<string, { found: LoraPartFound; where: string }>();
  for (const s of sources) for (const found of s.lora?.parts ?? []) held.set(found.module, { found, where: s.lora!.where });
  const parts: Record<string, LoraPartOptions> = {};
  const origins: string[] = [];
  for (const [part, info] of infos) {
    const flagged = part === 'vision' ? o.useBackboneLora : part === 'llm' ? o.useLlmLora : undefined;
    const source = held.get(info.module);
    if (flagged !== undefined && source && flagged !== source.found.r && flagged !== 0) {
      throw new UserError(`${info.flag} ${flagged}: ${source.where} holds ${info.module} LoRA of rank ${source.found.r}; give ${info.flag} ${source.found.r} (or --keep-lora) to keep it, or drop the flag to merge it`);
    }
    if (source && (o.keepLora || (flagged !== undefined && flagged !== 0))) {
      const { r, alpha, rslora, modules } = source.found;
      parts[part] = { r, alpha, rslora, targets: targetsOf(modules) };
      origins.push(`${info.module} LoRA of ${source.where}${o.keepLora ? ' (--keep-lora)' : ` (${info.flag} ${flagged})`}`);
    } else if (flagged !== undefined) {
      parts[part] = { r: flagged };
      origins.push(`${info.flag} ${flagged}`);
    }
  }
  if (o.loraInputs) checkLoraInputs(o, model, held, origins.length > 0);
  if (o.keepLora && held.size === 0) throw new UserError('--keep-lora: there is no LoRA to keep; the checkpoint has no LoRA unmerged (use_llm_lora / use_backbone_lora 0) and no --adapter was given');
  const unknown = [...held.keys()].filter((m) => !infos.some(([, i]) => i.module === m));
  if (unknown.length > 0) throw new UserError(`${held.get(unknown[0]!)!.where}: holds LoRA for ${unknown.join(', ')}, which the model has no LoRA part for`);
  if (origins.length === 0) return undefined;
  return { parts, origin: origins.join(', ') };
}

/** --lora-inputs turns a declared LoRA into inputs; a LoRA a source holds is merged or kept, not fed. */
function checkLoraInputs(o: LoraBuildOptions, model: Model, held: Map<string, { where: string }>, declared: boolean): void {
  if (o.keepLora) throw new UserError('--lora-inputs with --keep-lora: kept adapters are parameters bound from the checkpoint; inputs are fed at run time; give one');
  if (!declared && !model.lora) throw new UserError('--lora-inputs: no LoRA is declared; give --use-llm-lora R and / or --use-backbone-lora R (the parts and targets whose adapters become inputs; any rank is fed)');
  const [module, source] = [...held][0] ?? [];
  if (module) throw new UserError(`--lora-inputs: ${source!.where} holds ${module} LoRA, which is merged at bind or kept (--keep-lora); adapters fed at run time go onto a base without LoRA`);
}
