/**
 * LoRA as a declaration: which parts of a model get low-rank adapters, with what rank, alpha,
 * dropout and target modules. The model is not copied or changed: the `lora` pass
 * (src/passes/lora.ts) rewrites each traced graph's targeted Linears into
 *   y = x W^T + b + scaling * (x A^T) B^T,   A = lora_A [r, in], B = lora_B [out, r],
 * with A and B ordinary graph parameters (PEFT's initialisation: A kaiming-uniform, B zeros).
 *
 * InternVL's semantics (`wrap_backbone_lora` / `wrap_llm_lora` in modeling_internvl_chat.py):
 * lora_alpha = 2r, so scaling = alpha / r = 2 whatever r; dropout 0.05 on the LoRA input while
 * training; target modules per family (the model says which, `Model.loraParts()`).
 *
 * A graph file declares it with `lora({ llm: 16 })`; a build adds it from `--use-llm-lora R` /
 * `--use-backbone-lora R`, or from a LoRA checkpoint or a PEFT adapter with `--keep-lora`.
 */
import { UserError } from '../errors.ts';
import type { Site } from '../ir/graph.ts';
import { captureSite, formatSite } from '../ir/site.ts';

/** One part's LoRA as declared; what is left out takes InternVL's default. */
export interface LoraPartOptions {
  /** Rank; 0 means no LoRA on this part (InternVL's `use_llm_lora 0`). */
  r: number;
  /** lora_alpha; default 2r (InternVL). */
  alpha?: number;
  /** Module names (PEFT's target_modules: a module matches when its path ends with `.<target>`); default: the family's. */
  targets?: readonly string[];
  /** Dropout on the LoRA input while training; default 0.05. */
  dropout?: number;
  /** rsLoRA scaling, alpha / sqrt(r) (a PEFT adapter's use_rslora); default false. */
  rslora?: boolean;
}

/** LoRA by part name (`vision`, `llm` for InternVL: Model.loraParts()). */
export interface LoraDeclaration {
  parts: Readonly<Record<string, LoraPartOptions>>;
  /** Where it was declared (a graph file's line), for errors. */
  site?: Site;
  /** Where a declaration not written in a graph file came from (`--use-llm-lora 16`). */
  origin?: string;
}

/** A part of a model that LoRA can wrap: the module it is, and its family's default targets. */
export interface LoraPartInfo {
  /** Module path (`language_model`). */
  module: string;
  targets: readonly string[];
  /** The InternVL config field and CLI flag that set its rank (`use_llm_lora`, `--use-llm-lora`). */
  configField: string;
  flag: string;
}

/** One part's LoRA with every default filled in. */
export interface ResolvedLoraPart {
  /** Part name (`llm`). */
  part: string;
  module: string;
  r: number;
  alpha: number;
  scaling: number;
  dropout: number;
  rslora: boolean;
  targets: string[];
  /** True when the targets are the family's defaults rather than a declared list. */
  targetsAreDefault: boolean;
  /** Who declared it, for errors. */
  origin: string;
}

/** InternVL's LoRA dropout (wrap_backbone_lora / wrap_llm_lora). */
export const INTERNVL_LORA_DROPOUT = 0.05;

export interface LoraOptions {
  /** Rank of the vision backbone's LoRA (InternVL's use_backbone_lora). */
  vision?: number;
  /** Rank of the language model's LoRA (InternVL's use_llm_lora). */
  llm?: number;
  /** lora_alpha for every part; default 2r. */
  alpha?: number;
  /** Target modules per part; default the family's. */
  targets?: { vision?: readonly string[]; llm?: readonly string[] };
  dropout?: number;
}

/** The DSL's declaration: `lora({ llm: 16 })` is InternVL's `--use_llm_lora 16`. */
export function lora(o: LoraOptions): LoraDeclaration {
  const site = captureSite();
  const known = new Set(['vision', 'llm', 'alpha', 'targets', 'dropout']);
  for (const k of Object.keys(o)) if (!known.has(k)) throw new UserError(`${where(site)}lora(): unknown option '${k}'; known: ${[...known].join(', ')}`);
  const parts: Record<string, LoraPartOptions> = {};
  for (const part of ['vision', 'llm'] as const) {
    const r = o[part];
    if (r === undefined) continue;
    parts[part] = { r, ...(o.alpha === undefined ? {} : { alpha: o.alpha }), ...(o.targets?.[part] ? { targets: o.targets[part] } : {}), ...(o.dropout === undefined ? {} : { dropout: o.dropout }) };
  }
  const declared: LoraDeclaration = { parts, site };
  for (const [part, opts] of Object.entries(parts)) checkPart(part, opts, describeDeclaration(declared));
  return declared;
}

const where = (site: Site | undefined): string => {
  const s = formatSite(site);
  return s ? `${s}: ` : '';
};

/** `graphs/x.ts:12:3: lora()` or `--use-llm-lora 16`. */
export function describeDeclaration(d: LoraDeclaration): string {
  return d.origin ?? `${where(d.site)}lora()`;
}

function checkPart(part: string, o: LoraPartOptions, origin: string): void {
  if (!Number.isInteger(o.r) || o.r < 0 || o.r > 65536) throw new UserError(`${origin}: ${part} rank must be a whole number from 0 to 65536 (got ${o.r})`);
  if (o.alpha !== undefined && !(Number.isFinite(o.alpha) && o.alpha > 0)) throw new UserError(`${origin}: ${part} lora_alpha must be a positive number (got ${o.alpha})`);
  if (o.dropout !== undefined && !(o.dropout >= 0 && o.dropout < 1)) throw new UserError(`${origin}: ${part} dropout must be in [0, 1) (got ${o.dropout})`);
  if (o.targets !== undefined && (!Array.isArray(o.targets) || o.targets.length === 0 || o.targets.some((t) => typeof t !== 'string' || t === ''))) {
    throw new UserError(`${origin}: ${part} targets must be a non-empty list of module names`);
  }
}

/** alpha / r, or alpha / sqrt(r) for rsLoRA (PEFT's LoraLayer.update_layer). */
export function loraScaling(r: number, alpha: number, rslora = false): number {
  return rslora ? alpha / Math.sqrt(r) : alpha / r;
}

/**
 * The LoRA a build applies: the model's own declaration, then the build's (flags, a checkpoint's
 * LoRA kept separate). Both may name a part only with the same rank; a rank of 0 is no LoRA.
 */
export function resolveLora(parts: Readonly<Record<string, LoraPartInfo>>, declarations: (LoraDeclaration | undefined)[]): ResolvedLoraPart[] {
  const chosen = new Map<string, { opts: LoraPartOptions; origin: string }>();
  for (const d of declarations) {
    if (!d) continue;
    const origin = describeDeclaration(d);
    for (const [part, opts] of Object.entries(d.parts)) {
      checkPart(part, opts, origin);
      if (!Object.hasOwn(parts, part)) {
        const names = Object.keys(parts);
        throw new UserError(`${origin}: the model has no LoRA part '${part}'${names.length ? `; it has: ${names.join(', ')}` : ' (it declares no part LoRA can wrap)'}`);
      }
      const before = chosen.get(part);
      if (before && before.opts.r !== opts.r) {
        throw new UserError(`${origin} asks for ${part} LoRA rank ${opts.r}, but ${before.origin} declares rank ${before.opts.r}; give one`);
      }
      chosen.set(part, { opts: { ...before?.opts, ...opts }, origin: before ? `${before.origin} and ${origin}` : origin });
    }
  }
  const out: ResolvedLoraPart[] = [];
  for (const [part, { opts, origin }] of chosen) {
    if (opts.r === 0) continue;
    const info = parts[part]!;
    const alpha = opts.alpha ?? 2 * opts.r;
    const rslora = opts.rslora ?? false;
    out.push({ part, module: info.module, r: opts.r, alpha, scaling: loraScaling(opts.r, alpha, rslora), dropout: opts.dropout ?? INTERNVL_LORA_DROPOUT, rslora, targets: [...(opts.targets ?? info.targets)], targetsAreDefault: opts.targets === undefined, origin });
  }
  return out;
}

/** The names LoRA gives a wrapped Linear's adapters (PEFT's, without the adapter name). */
export function loraParamNames(module: string): { a: string; b: string } {
  return { a: `${module}.lora_A.weight`, b: `${module}.lora_B.weight` };
}

/** `language_model.model.layers.0.self_attn.q_proj` from its lora_A / lora_B name, else undefined. */
export function loraModuleOf(name: string): { module: string; which: 'A' | 'B' } | undefined {
  const m = /^(.+)\.lora_([AB])\.weight$/.exec(name);
  return m ? { module: m[1]!, which: m[2] as 'A' | 'B' } : undefined;
}

/** PEFT's target_modules list rule: the module's path (inside the wrapped part) is the target or ends with `.target`. */
export function isTargeted(relativePath: string, targets: readonly string[]): boolean {
  return targets.some((t) => relativePath === t || relativePath.endsWith(`.${t}`));
}

/**
 * Target names from a set of wrapped module paths (inside the part): the path after the last
 * `layers.N.` (`self_attn.q_proj`), or the whole path for a module outside the layers. What a
 * LoRA checkpoint or adapter wrapped, in the form a declaration takes.
 */
export function targetsOf(modulePaths: Iterable<string>): string[] {
  const out = new Set<string>();
  for (const p of modulePaths) out.add(p.replace(/^(?:.*\.)?layers\.\d+\./, ''));
  return [...out].sort();
}

/** The graph metadata line of one part (`vlmc.lora.language_model`), which locks and diffs show. */
export function loraMetadata(p: ResolvedLoraPart): string {
  return `r=${p.r} alpha=${p.alpha}${p.rslora ? ' rslora' : ''} scaling=${p.scaling} dropout=${p.dropout} targets=${p.targets.join(',')}`;
}
