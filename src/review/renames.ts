/**
 * Rename detection: a subtree of parameters that disappeared and one that appeared in its place is
 * one rename (`mlp1` -> `projector`, `layers.3` -> `layers.4`), not a removal plus an addition.
 *
 * Candidates are the largest subtrees present on one side only. Two pair only when they are the
 * same kind of module (the same set of ops in their subtrees, where both sides' ops are known) and
 * their parameters have the same relative names and shapes; anything else (a LayerNorm and a
 * Linear, a module renamed and widened) stays removed + added, so a diff never claims a kinship it
 * cannot show. Pairs with the same dtypes too are exact; a sibling is preferred; a bare
 * parameter, which says little about itself, only pairs with a sibling. Pairs whose only
 * difference is dtype are renames with retyped contents, reported under the new name.
 */
import { ancestorsOf, comparePaths, parentPath } from './tree.ts';
import type { ParamEntry } from './types.ts';

export interface RenameMatch {
  from: string;
  to: string;
  /** Same structure on both sides; otherwise the contents changed too (reported under `to`). */
  exact: boolean;
}

/** A module's kind: the op types in its subtree, sorted; '' when nothing records its ops. */
export type KindOf = (path: string) => string;

interface Side {
  params: Map<string, ParamEntry>;
  /** Every module path and parameter name present. */
  present: Set<string>;
  /** Parameter names under each path (a parameter is under its own name). */
  under: Map<string, string[]>;
  children: Map<string, Set<string>>;
  kind: KindOf;
}

export function detectRenames(a: readonly ParamEntry[], b: readonly ParamEntry[], kinds: { a?: KindOf; b?: KindOf } = {}): RenameMatch[] {
  const sa = side(a, kinds.a);
  const sb = side(b, kinds.b);
  const removed = maximalOnly(sa, sb);
  const added = maximalOnly(sb, sa);
  const exact = pairExact(removed, added, sa, sb);
  const taken = new Set([...exact.map((m) => m.from), ...exact.map((m) => m.to)]);
  const retyped = pairRetyped(
    removed.filter((p) => !taken.has(p) && !sa.params.has(p)),
    added.filter((p) => !taken.has(p) && !sb.params.has(p)),
    sa,
    sb,
  );
  return [...exact, ...retyped].sort((x, y) => comparePaths(x.from, y.from));
}

/** A parameter name of side a as it is called on side b. */
export function renamePath(path: string, renames: readonly RenameMatch[]): string {
  for (const r of renames) {
    if (path === r.from) return r.to;
    if (path.startsWith(`${r.from}.`)) return r.to + path.slice(r.from.length);
  }
  return path;
}

function side(params: readonly ParamEntry[], kind: KindOf = () => ''): Side {
  const s: Side = { params: new Map(), present: new Set(), under: new Map(), children: new Map(), kind };
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

/** Structure of a subtree: relative names and shapes of its parameters, and their dtypes when asked. */
function signature(path: string, s: Side, withDtypes = true): string {
  return relativeNames(path, s)
    .map((rel) => {
      const p = s.params.get(path + rel)!;
      return `${rel}${withDtypes ? ` ${p.dtype}` : ''} [${p.shape.join(',')}]`;
    })
    .sort()
    .join('\n');
}

/** Same kind of module, as far as both sides tell; a bare parameter has no kind of its own. */
function sameKind(r: string, sa: Side, c: string, sb: Side): boolean {
  if (sa.params.has(r) || sb.params.has(c)) return true;
  const x = sa.kind(r);
  const y = sb.kind(c);
  return x === '' || y === '' || x === y;
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
    const options = (addedBySig.get(signature(r, sa)) ?? []).filter((c) => !taken.has(c) && (!bare || parentPath(c) === parentPath(r)) && sameKind(r, sa, c, sb));
    const pick = options.find((c) => parentPath(c) === parentPath(r)) ?? options[0];
    if (pick === undefined) continue;
    taken.add(pick);
    out.push({ from: r, to: pick, exact: true });
  }
  return out;
}

/** Sibling modules of the same kind with the same names and shapes whose dtypes changed. */
function pairRetyped(removed: readonly string[], added: readonly string[], sa: Side, sb: Side): RenameMatch[] {
  const taken = new Set<string>();
  const out: RenameMatch[] = [];
  for (const r of removed) {
    const sig = signature(r, sa, false);
    const pick = added.find((c) => !taken.has(c) && parentPath(c) === parentPath(r) && signature(c, sb, false) === sig && sameKind(r, sa, c, sb));
    if (pick === undefined) continue;
    taken.add(pick);
    out.push({ from: r, to: pick, exact: false });
  }
  return out;
}
