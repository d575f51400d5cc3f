/**
 * Freeze annotations: which parameters train. Rules apply in order to parameter paths; the last rule
 * that matches a parameter decides. Patterns are dotted module paths where a segment may be `*` (any
 * one segment), `**` (any number of segments) or a range `22-23`; a pattern matches the module it
 * names and everything under it. Aliases (`vision` -> `vision_model`) come from the model.
 */
import { UserError } from '../errors.ts';
import type { Param } from '../ir/graph.ts';

export type FreezeRule = { action: 'freeze' | 'unfreeze'; pattern: string };

export const freeze = (...patterns: string[]): FreezeRule[] => patterns.map((pattern) => ({ action: 'freeze', pattern }));
export const unfreeze = (...patterns: string[]): FreezeRule[] => patterns.map((pattern) => ({ action: 'unfreeze', pattern }));

/** InternVL's training stages. */
export const PRESETS: Record<string, FreezeRule[]> = {
  /** Stage 1 (pretraining): only the projector trains. */
  stage1: [...freeze('**'), ...unfreeze('projector')],
  /** Stage 2 (instruction tuning): projector and language model train. */
  stage2: [...freeze('**'), ...unfreeze('projector', 'llm')],
  full: unfreeze('**'),
  inference: freeze('**'),
};

export function preset(name: string): FreezeRule[] {
  const rules = PRESETS[name];
  if (!rules) throw new UserError(`unknown freeze preset '${name}'; known presets: ${Object.keys(PRESETS).join(', ')}`);
  return rules;
}

/** Sets `trainable` on every parameter; a rule that matches nothing is an error (likely a typo). */
export function applyFreezeRules(params: Param[], rules: FreezeRule[], aliases: Record<string, string>): void {
  for (const p of params) p.trainable = true;
  for (const rule of rules) {
    const segments = expandAlias(rule.pattern, aliases).split('.');
    const matched = params.filter((p) => matchesPrefix(segments, p.name.split('.')));
    if (matched.length === 0) {
      throw new UserError(`${rule.action}('${rule.pattern}') matches no parameter`);
    }
    for (const p of matched) p.trainable = rule.action === 'unfreeze';
  }
}

function expandAlias(pattern: string, aliases: Record<string, string>): string {
  const keys = Object.keys(aliases).sort((a, b) => b.length - a.length);
  for (const k of keys) {
    if (pattern === k || pattern.startsWith(`${k}.`)) return aliases[k]! + pattern.slice(k.length);
  }
  return pattern;
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
