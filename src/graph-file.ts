/** Loading a graph file: a TypeScript module whose default export is the model. */
import { pathToFileURL } from 'node:url';
import * as nodePath from 'node:path';
import { existsSync } from 'node:fs';
import { UserError } from './errors.ts';
import type { Model } from './dsl/model.ts';

export async function loadGraphFile(file: string): Promise<Model> {
  const abs = nodePath.resolve(file);
  if (!existsSync(abs)) throw new UserError(`${file}: graph file not found`);
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(abs).href)) as { default?: unknown };
  } catch (e) {
    if (e instanceof UserError) throw e;
    // One line: esbuild puts its 'file:line:col: ERROR ...' on a line of its own.
    const message = String((e as Error)?.message ?? e).split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
    throw new UserError(`${file}: could not load the graph file: ${message}`);
  }
  const model = mod.default;
  if (!isModel(model)) throw new UserError(`${file}: the default export must be a model, e.g. \`export default internvl({...})\``);
  return model;
}

function isModel(x: unknown): x is Model {
  const m = x as Partial<Model> | undefined;
  return typeof m === 'object' && m !== null && typeof m.inputs === 'function' && typeof m.forward === 'function';
}
