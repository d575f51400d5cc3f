/**
 * Freeze annotations: which parameters train. Rules apply in order to parameter paths; the last rule
 * that matches a parameter decides. Patterns are dotted module paths where a segment may be `*` (any
 * one segment), `**` (any number of segments), a range `22-23`, or a Python slice `N:` (index N on;
 * negative N = the last |N|); a pattern matches the module it names and everything under it.
 * Aliases (`vision` -> `vision_model`, `llm.head` -> the LLM's output head) come from the model.
 *
 * InternVL's training flags are here with their intended meaning: `freezeBackbone()`,
 * `freezeLlm()`, `freezeMlp()`, `unfreezeVitLayers(n)`, `unfreezeLmHead()` (which, unlike the
 * official flag, really unfreezes the head: `lm_head`, InternLM2's `output`, or the tied embedding).
 */
import { UserError } from '../errors.ts';
import type { GraphParam, Site } from '../ir/graph.ts';
import { captureSite, formatSite } from '../ir/site.ts';

export type FreezeRule = {
  action: 'freeze' | 'unfreeze';
  pattern: string;
  /** Where the rule was written (the graph file's line), for errors. */
  site?: Site;
  /** Where a rule not written in a graph file came from (`--freeze`, `--preset stage1`). */
  origin?: string;
};

const rules = (action: FreezeRule['action'], patterns: string[]): FreezeRule[] => {
  const site = captureSite();
  return patterns.map((pattern) => ({ action, pattern, site }));
};

export const freeze = (...patterns: string[]): FreezeRule[] => rules('freeze', patterns);
export const unfreeze = (...patterns: string[]): FreezeRule[] => rules('unfreeze', patterns);

/** InternVL's `freeze_backbone`: the vision tower. */
export const freezeBackbone = (): FreezeRule[] => rules('freeze', ['vision']);
/** InternVL's `freeze_llm`: the language model. */
export const freezeLlm = (): FreezeRule[] => rules('freeze', ['llm']);
/** InternVL's `freeze_mlp`: the projector. */
export const freezeMlp = (): FreezeRule[] => rules('freeze', ['projector']);
/** InternVL's `unfreeze_vit_layers N`: ViT layers `[N:]` (negative N: the last |N|). */
export const unfreezeVitLayers = (n: number): FreezeRule[] => {
  if (!Number.isInteger(n)) throw new UserError(`unfreezeVitLayers(${n}): the layer index must be an integer`);
  return rules('unfreeze', [`vision.layers.${n}:`]);
};
/** InternVL's `unfreeze_lm_head`, meaning it: the LLM's output head, whatever the family calls it. */
export const unfreezeLmHead = (): FreezeRule[] => rules('unfreeze', ['llm.head']);

/** InternVL's training stages. */
export const PRESETS: Record<string, FreezeRule[]> = {
  /** Stage 1 (pretraining): only the projector trains. */
  stage1: [...freeze('**'), ...unfreeze('projector')],
  /** Stage 2 (instruction tuning): projector and language model train. */
  stage2: [...freeze('**'), ...unfreeze('projector', 'llm')],
  full: unfreeze('**'),
  inference: freeze('**'),
  /** InternVL's LoRA scripts (--freeze_llm --freeze_mlp --freeze_backbone with use_*_lora): only the LoRA adapters train. */
  lora: [...freeze('**'), ...unfreeze('**.lora_A', '**.lora_B')],
};

/** A preset's rules, sited where preset() is called (the graph file's line). */
export function preset(name: string): FreezeRule[] {
  const found = PRESETS[name];
  if (!found) throw new UserError(`unknown freeze preset '${name}'; known presets: ${Object.keys(PRESETS).join(', ')}`);
  const site = captureSite();
  return found.map((r) => ({ ...r, site, origin: `preset('${name}')` }));
}

/** Sets `trainable` on every parameter; a rule that matches nothing is an error (likely a typo). */
export function applyFreezeRules(params: GraphParam[], rules: FreezeRule[], aliases: Record<string, string>): void {
  for (const p of params) p.trainable = true;
  const paths = params.map((p) => p.name.split('.'));
  for (const rule of rules) {
    const segments = resolveSlices(rule, expandAlias(rule.pattern, aliases).split('.'), paths);
    const matched = params.filter((_, i) => matchesPrefix(segments, paths[i]!));
    if (matched.length === 0) throw new UserError(`${describeRule(rule)} matches no parameter`);
    for (const p of matched) p.trainable = rule.action === 'unfreeze';
  }
}

/** True when the glob names `name` or a module above it (the matcher the freeze rules use). */
export function matchesGlob(pattern: string, name: string): boolean {
  return matchesPrefix(pattern.split('.'), name.split('.'));
}

/** `graphs/x.ts:12:3: unfreeze('vison')`, or `--unfreeze 'vison'` for a CLI rule. */
function describeRule(rule: FreezeRule): string {
  const call = `${rule.action}('${rule.pattern}')`;
  const where = formatSite(rule.site);
  return [where, rule.origin, call].filter(Boolean).join(': ');
}

function expandAlias(pattern: string, aliases: Record<string, string>): string {
  const keys = Object.keys(aliases).sort((a, b) => b.length - a.length);
  for (const k of keys) {
    if (pattern === k || pattern.startsWith(`${k}.`)) return aliases[k]! + pattern.slice(k.length);
  }
  return pattern;
}

/**
 * A slice segment `N:` becomes the index range it selects among the indices present at that
 * position (the layers of the list it follows), as Python's `layers[N:]` would.
 */
function resolveSlices(rule: FreezeRule, pattern: string[], paths: string[][]): string[] {
  return pattern.map((segment, depth) => {
    const m = /^(-?\d+):$/.exec(segment);
    if (!m) return segment;
    const prefix = pattern.slice(0, depth);
    if (prefix.includes('**')) throw new UserError(`${describeRule(rule)}: a slice cannot follow '**'`);
    const indices = paths.filter((p) => p.length > depth && matchesExactly(prefix, p.slice(0, depth)) && /^\d+$/.test(p[depth]!)).map((p) => Number(p[depth]));
    const count = indices.length === 0 ? 0 : Math.max(...indices) + 1;
    const n = Number(m[1]);
    const start = n < 0 ? count + n : n;
    if (count === 0) throw new UserError(`${describeRule(rule)} matches no parameter`);
    if (start < 0 || start >= count) throw new UserError(`${describeRule(rule)}: index ${n} is out of range; there are ${count} layers, valid: ${-count}..${count - 1}`);
    return `${start}-${count - 1}`;
  });
}

function matchesExactly(pattern: string[], path: string[]): boolean {
  return pattern.length === path.length && pattern.every((s, i) => segmentMatches(s, path[i]!));
}

/** True when the pattern matches a prefix of the path (a module and everything under it). */
function matchesPrefix(pattern: string[], path: string[]): boolean {
  if (pattern.length === 0) return true;
  const [head, ...rest] = pattern;
  if (head === '**') {
    for (let i = 0; i <= path.length; i++) if (matchesPrefix(rest, path.slice(i))) return true;
    return false;
  }
  if (path.length === 0 || !segmentMatches(head!, path[0]!)) return false;
  return matchesPrefix(rest, path.slice(1));
}

function segmentMatches(pattern: string, segment: string): boolean {
  if (pattern === '*' || pattern === segment) return true;
  const range = /^(\d+)-(\d+)$/.exec(pattern);
  if (range && /^\d+$/.test(segment)) {
    const i = Number(segment);
    return i >= Number(range[1]) && i <= Number(range[2]);
  }
  return false;
}

/**
 * Whether a pattern in the freeze-rule language (no aliases) matches a dotted path: the module it
 * names and everything under it, `*` one segment, `**` any number, `22-23` a range. vlmc's one glob
 * language, shared by `--allow-missing` and `--ignore-unexpected`.
 */
export function pathPatternMatches(pattern: string, path: string): boolean {
  return matchesPrefix(pattern.split('.'), path.split('.'));
}
