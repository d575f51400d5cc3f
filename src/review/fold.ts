/**
 * Folding of indexed names shared by the diff renderers and the Mermaid diagram: counts with a
 * fixed grouping, and items that differ only in numeric path segments (`layers.{0..79}`).
 */

/** 1234567 -> "1,234,567": fixed grouping, not the locale's, so output is the same everywhere. */
export function formatCount(n: number): string {
  const sign = n < 0 ? '-' : '';
  return sign + String(Math.abs(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** Items sharing a change whose names differ only in numeric path segments, named by an index pattern. */
export interface Folded<T> {
  name: string;
  item: T;
  count: number;
}

/**
 * Folds items that differ only in numeric path segments (`layers.0`, `layers.1`, ...) and have the
 * same `keyOf`, so widening 80 layers reads as one line. Groups keep their first member's position.
 */
export function foldBy<T>(items: readonly T[], nameOf: (t: T) => string, keyOf: (t: T) => string): Folded<T>[] {
  const groups = new Map<string, T[]>();
  for (const t of items) {
    const key = JSON.stringify([nameOf(t).replace(/(^|\.)\d+(?=\.|$)/g, '$1*'), keyOf(t)]);
    const g = groups.get(key);
    if (g) g.push(t);
    else groups.set(key, [t]);
  }
  return [...groups.values()].map((g) => ({ name: g.length === 1 ? nameOf(g[0]!) : indexPattern(g.map(nameOf)), item: g[0]!, count: g.length }));
}

function indexPattern(names: readonly string[]): string {
  const split = names.map((n) => n.split('.'));
  return split[0]!
    .map((seg, i) => {
      const values = [...new Set(split.map((s) => s[i]!))];
      return values.length === 1 ? seg : `{${indexSet(values.map(Number))}}`;
    })
    .join('.');
}

/** [0,1,2,3,7] -> "0..3,7". */
export function indexSet(values: number[]): string {
  const sorted = [...values].sort((x, y) => x - y);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(j - i >= 2 ? `${sorted[i]}..${sorted[j]}` : sorted.slice(i, j + 1).join(','));
    i = j + 1;
  }
  return parts.join(',');
}
