/**
 * `--allow-missing` / `--ignore-unexpected` globs must each match something, as `--freeze` globs
 * must: a glob that matches nothing does nothing, and is almost always a typo that would leave the
 * user believing a key was allowed.
 */
import { UserError } from '../errors.ts';
import type { GraphParam } from '../ir/graph.ts';
import { graphNameOf, pathGlob, type BuildPath, type WeightSource } from './plan.ts';

export function checkGlobsMatch(params: readonly GraphParam[], path: BuildPath, sources: readonly WeightSource[], o: { allowMissing?: string[]; ignoreUnexpected?: string[] }): void {
  for (const glob of o.allowMissing ?? []) {
    const re = pathGlob(glob, '--allow-missing');
    if (!params.some((p) => re.test(p.name))) throw new UserError(`--allow-missing '${glob}' matches no parameter of the graph (parameter names are the unified checkpoint keys, e.g. ${params[0]?.name ?? 'mlp1.0.weight'})`);
  }
  for (const glob of o.ignoreUnexpected ?? []) {
    const re = pathGlob(glob, '--ignore-unexpected');
    const keys = sources.flatMap((s) => s.checkpoint.keys().flatMap((k) => [k, graphNameOf(s, k)]));
    if (path === 'none') throw new UserError(`--ignore-unexpected '${glob}': there is no checkpoint (give --weights, or --vision and --llm)`);
    if (!keys.some((k) => re.test(k))) throw new UserError(`--ignore-unexpected '${glob}' matches no key of the checkpoint${sources.length > 1 ? 's' : ''} (${sources.map((s) => s.checkpoint.dir).join(', ')})`);
  }
}
