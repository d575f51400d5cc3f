/**
 * Rename detection: a subtree of parameters that disappeared and one that appeared in its place is
 * one rename (`mlp1` -> `projector`, `layers.3` -> `layers.4`), not a removal plus an addition.
 *
 * Candidates are the largest subtrees present on one side only. They pair in two passes:
 *  1. exact: the same structure (relative names, shapes, dtypes), a sibling preferred; a bare
 *     parameter, which says little about itself, only pairs with a sibling;
 *  2. partial: sibling modules that share at least half of their relative parameter names, so a
 *     module renamed *and* widened reads as a rename plus reshapes under the new name.
 * An LLM family swap (`self_attn.q_proj` vs `attention.wqkv`) shares no names and stays add + remove.
 */
import { ancestorsOf, comparePaths, parentPath } from './tree.ts';
import type { ParamEntry } from './types.ts';

export interface RenameMatch {
  from: string;
  to: string;
  /** Same structure on both sides; otherwise the contents changed too (reported under `to`). */
  exact: boolean;
}

/** Below this share of common relative names, two modules are not the same module renamed. */
const PARTIAL_OVERLAP = 0.5;

interface Side {
  params: Map<string, ParamEntry>;
  /** Every module path and parameter name present. */
  present: Set<string>;
  /** Parameter names under each path (a parameter is under its own name). */
  under: Map<string, string[]>;
  children: Map<string, Set<string>>;
}

export function detectRenames(a: readonly ParamEntry[], b: readonly ParamEntry[]): RenameMatch[] {
  const sa = side(a);
  const sb = side(b);
  const removed = maximalOnly(sa, sb);
  const added = maximalOnly(sb, sa);
  const exact = pairExact(removed, added, sa, sb);
  const taken = new Set([...exact.map((m) => m.from), ...exact.map((m) => m.to)]);
  const partial = pairPartial(
    removed.filter((p) => !taken.has(p) && !sa.params.has(p)),
    added.filter((p) => !taken.has(p) && !sb.params.has(p)),
    sa,
    sb,
  );
  return [...exact, ...partial].sort((x, y) => comparePaths(x.from, y.from));
}

/** A parameter name of side a as it is called on side b. */
export function renamePath(path: string, renames: readonly RenameMatch[]): string {
  for (const r of renames) {
    if (path === r.from) return r.to;
    if (path.startsWith(`${r.from}.`)) return r.to + path.slice(r.from.length);
  }
  return path;
}

function side(params: readonly ParamEntry[]): Side {
  const s: Side = { params: new Map(), present: new Set(), under: new Map(), children: new Map() };
  for (const p of params) {
    s.params.set(p.name, p);
    const chain = [...ancestorsOf(parentPath(p.name)), p.name];
    chain.forEach((path, i) => {
      s.present.add(path);
      const list = s.under.get(path);
      if (list) list.push(p.name);
      else s.under.set(path, [p.name]);
      if (i > 0) {
        const kids = s.children.get(chain[i - 1]!);
        if (kids) kids.add(path);
        else s.children.set(chain[i - 1]!, new Set([path]));
      }
    });
  }
  return s;
}

/** The largest paths present in `mine` and absent from `other` (their parent is present in both). */
function maximalOnly(mine: Side, other: Side): string[] {
  const out: string[] = [];
  const visit = (path: string) => {
    for (const child of mine.children.get(path) ?? []) {
      if (!other.present.has(child)) out.push(child);
      else visit(child);
    }
  };
  visit('');
  return out.sort(comparePaths);
}

/** Relative parameter names under a path (`.0.weight`), or '' for a bare parameter. */
const relativeNames = (path: string, s: Side): string[] => (s.under.get(path) ?? []).map((n) => n.slice(path.length));

/** Structure of a subtree: relative names, dtypes and shapes of its parameters. */
function signature(path: string, s: Side): string {
  return relativeNames(path, s)
    .map((rel) => {
      const p = s.params.get(path + rel)!;
      return `${rel} ${p.dtype} [${p.shape.join(',')}]`;
    })
    .sort()
    .join('\n');
}

function pairExact(removed: readonly string[], added: readonly string[], sa: Side, sb: Side): RenameMatch[] {
  const addedBySig = new Map<string, string[]>();
  for (const path of added) {
    const sig = signature(path, sb);
    const list = addedBySig.get(sig);
    if (list) list.push(path);
    else addedBySig.set(sig, [path]);
  }
  const taken = new Set<string>();
  const out: RenameMatch[] = [];
  for (const r of removed) {
    const bare = sa.params.has(r);
    const options = (addedBySig.get(signature(r, sa)) ?? []).filter((c) => !taken.has(c) && (!bare || parentPath(c) === parentPath(r)));
    const pick = options.find((c) => parentPath(c) === parentPath(r)) ?? options[0];
    if (pick === undefined) continue;
    taken.add(pick);
    out.push({ from: r, to: pick, exact: true });
  }
  return out;
}

function pairPartial(removed: readonly string[], added: readonly string[], sa: Side, sb: Side): RenameMatch[] {
  const scored: { from: string; to: string; score: number }[] = [];
  for (const r of removed) {
    const mine = new Set(relativeNames(r, sa));
    for (const c of added) {
      if (parentPath(c) !== parentPath(r)) continue;
      const theirs = relativeNames(c, sb);
      const common = theirs.filter((n) => mine.has(n)).length;
      const score = common / (mine.size + theirs.length - common);
      if (score >= PARTIAL_OVERLAP) scored.push({ from: r, to: c, score });
    }
  }
  // Best overlap first; ties in canonical order, so the result does not depend on input order.
  scored.sort((x, y) => y.score - x.score || comparePaths(x.from, y.from) || comparePaths(x.to, y.to));
  const taken = new Set<string>();
  const out: RenameMatch[] = [];
  for (const s of scored) {
    if (taken.has(s.from) || taken.has(s.to)) continue;
    taken.add(s.from).add(s.to);
    out.push({ from: s.from, to: s.to, exact: false });
  }
  return out;
}
