/**
 * What a build makes of LoRA: the sources that hold adapters (an InternVL checkpoint saved with
 * LoRA unmerged, PEFT adapter folders given with --adapter) and the LoRA the graph declares
 * (--use-backbone-lora / --use-llm-lora, or --keep-lora: the sources' own, kept separate).
 * Without a declaration, adapters a source holds are merged into their base weights at bind.
 */
import * as nodePath from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { UserError } from '../errors.ts';
import type { Model } from '../dsl/model.ts';
import { assignPaths, collectParams } from '../dsl/module.ts';
import { targetsOf, type LoraDeclaration, type LoraPartInfo, type LoraPartOptions } from '../dsl/lora.ts';
import { Checkpoint } from '../checkpoint/checkpoint.ts';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, internvlLoraLayout, loraKeys, peftAdapterLayout, type LoraPartFound, type LoraSource } from '../models/internvl.lora.names.ts';
import type { WeightSource } from './source.ts';

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

const WRAPPED_KEY = /^(.+?)\.base_model\.model\.(.+)$/;

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

