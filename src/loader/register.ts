/**
 * Registers the graph-file module hooks (graph-hooks.mjs) once per process: `vlmc` resolves to this
 * copy of vlmc (or to `entry`), TypeScript graph files load as ES modules anywhere. The CLI calls it
 * at start; a program that loads graph files through the library may call it too.
 */
import { register } from 'node:module';

const REGISTERED = Symbol.for('vlmc.graphHooksRegistered');

/** This copy's library entry point, as a file URL. */
export const VLMC_ENTRY = new URL('../index.ts', import.meta.url).href;

export function registerGraphHooks(entry: string = VLMC_ENTRY): void {
  const g = globalThis as { [REGISTERED]?: boolean };
  if (g[REGISTERED]) return;
  g[REGISTERED] = true;
  register(new URL('./graph-hooks.mjs', import.meta.url).href, { data: { vlmcEntry: entry } });
}
