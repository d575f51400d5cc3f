/**
 * Module paths: canonical order, ancestors, and per-module aggregation. A path is dotted
 * (`language_model.model.layers.10`); '' is the root.
 */
import type { Counts, ModuleEntry, ParamEntry } from './types.ts';
import { elementCount } from '../ir/dims.ts';

const NUMERIC = /^\d+$/;

/**
 * Canonical order: segment by segment, numeric segments numerically (`layers.2` before
 * `layers.10`), others by code unit (not locale, so the order is the same on every machine), a
 * parent before its children.
 */
export function comparePaths(a: string, b: string): number {
  if (a === b) return 0;
  const sa = a === '' ? [] : a.split('.');
  const sb = b === '' ? [] : b.split('.');
  for (let i = 0; i < Math.min(sa.length, sb.length); i++) {
    const c = compareSegments(sa[i]!, sb[i]!);
    if (c !== 0) return c;
  }
  return sa.length - sb.length;
}

function compareSegments(x: string, y: string): number {
  if (x === y) return 0;
  const nx = NUMERIC.test(x);
  const ny = NUMERIC.test(y);
  if (nx && ny) return Number(x) - Number(y) || (x < y ? -1 : 1);
  if (nx !== ny) return nx ? -1 : 1;
  return x < y ? -1 : 1;
}

export const compareStrings = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The module that owns a parameter: its name without the last segment. */
export function parentPath(path: string): string {
  const i = path.lastIndexOf('.');
  return i < 0 ? '' : path.slice(0, i);
}

/** '', `a`, `a.b` for `a.b` (the path itself included). */
export function ancestorsOf(path: string): string[] {
  if (path === '') return [''];
  const segs = path.split('.');
  return ['', ...segs.map((_, i) => segs.slice(0, i + 1).join('.'))];
}

/** True when `path` is `prefix` or lies under it. */
export const depthOf = (path: string): number => (path === '' ? 0 : path.split('.').length);


/** Per-module tensor / element / trainable counts, aggregated to every ancestor, plus op-only modules. */
export function buildModules(params: readonly ParamEntry[], opModules: Iterable<string>): ModuleEntry[] {
  const counts = new Map<string, Counts & { unknown: boolean }>();
  const entry = (path: string) => {
    let c = counts.get(path);
    if (!c) counts.set(path, (c = { tensors: 0, params: 0, trainable: 0, unknown: false }));
    return c;
  };
  for (const p of params) {
    const n = elementCount(p.shape);
    for (const m of ancestorsOf(parentPath(p.name))) {
      const c = entry(m);
      c.tensors += 1;
      c.params += n;
      if (p.trainable === undefined) c.unknown = true;
      else if (p.trainable) c.trainable! += n;
    }
  }
  for (const scope of opModules) for (const m of ancestorsOf(scope)) entry(m);
  entry('');
  return [...counts.entries()]
    .sort(([a], [b]) => comparePaths(a, b))
    .map(([path, c]) => (c.unknown ? { path, tensors: c.tensors, params: c.params } : { path, tensors: c.tensors, params: c.params, trainable: c.trainable! }));
}

/** Op histogram aggregated over each module's subtree (root '' = the whole graph). */
export function aggregateOps(ops: Record<string, Record<string, number>>): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  for (const [module, hist] of Object.entries(ops)) {
    for (const m of ancestorsOf(module)) {
      let h = out.get(m);
      if (!h) out.set(m, (h = new Map()));
      for (const [op, n] of Object.entries(hist)) h.set(op, (h.get(op) ?? 0) + n);
    }
  }
  return out;
}

/** A histogram object with keys in canonical order, so JSON output is stable. */
export function sortedRecord<T>(entries: Iterable<[string, T]>, compare: (a: string, b: string) => number = compareStrings): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [k, v] of [...entries].sort(([a], [b]) => compare(a, b))) out[k] = v;
  return out;
}

/** Path of `target` as seen from module `from`: `^` per level up, then the rest (`^^.k_proj.weight`). */
export function relativePath(from: string, target: string): string {
  const f = from === '' ? [] : from.split('.');
  const t = target.split('.');
  let common = 0;
  while (common < f.length && common < t.length - 1 && f[common] === t[common]) common++;
  return `${'^'.repeat(f.length - common)}.${t.slice(common).join('.')}`;
}
