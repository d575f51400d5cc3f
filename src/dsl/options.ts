/**
 * Option objects of the DSL (`qwen2({...})`, `internViT({...})`, `internvl({...})`) checked at run
 * time: TypeScript's excess-property check only runs where graph files are type-checked, and a
 * misspelt key (`rmsNormEsp`) would otherwise build with the default silently. Errors name the
 * graph file line and suggest the closest known key.
 */
import { GraphError } from '../errors.ts';
import { captureSite, formatSite } from '../ir/site.ts';

/** A GraphError at the graph file line that called the DSL function. */
export function optionError(what: string, message: string): GraphError {
  const site = formatSite(captureSite());
  return new GraphError(`${site ? `${site}: ` : ''}${what}: ${message}`);
}

/** Throws for the first key of `options` not in `known`, with a did-you-mean. */
export function checkOptionKeys(what: string, options: object, known: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const guess = closest(key, known);
    throw optionError(what, `unknown option '${key}'${guess ? ` (did you mean '${guess}'?)` : ''}; known options: ${known.join(', ')}`);
  }
}

/** A whole number in [min, max]: counts and sizes are never truncated. */
export function checkWhole(what: string, key: string, value: unknown, max: number, min = 1): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw optionError(what, `option '${key}' must be a whole number from ${min} to ${max} (got ${JSON.stringify(value)})`);
  }
}

function closest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}
