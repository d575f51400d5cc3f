/** `vlmc init --from <checkpoint>` / `--vision <dir> --llm <dir>`: a graph file for a checkpoint. */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as nodePath from 'node:path';
import { UserError } from '../errors.ts';
import { writeFileAtomic } from '../artifact/atomic.ts';
import { findSpecialTokenId } from '../checkpoint/tokens.ts';
import { internvlFromConfig, internvlFromParts, pickProjectorOptions, type ProjectorOptions } from '../models/from-config.ts';
import { HF_LM_HEAD_KEYS, hfDefaultImageTokenId, internvlFromHFConfig, isHFInternVLConfig } from '../models/from-hf-config.ts';
import { Checkpoint } from '../checkpoint/checkpoint.ts';
import type { InternVLChatModel } from '../models/internvl.ts';

export interface InitOptions extends ProjectorOptions {
  from?: string;
  vision?: string;
  llm?: string;
  name?: string;
  /** Graph file to write; defaults to graphs/<name>.ts. */
  out?: string;
  force?: boolean;
}

async function readConfig(dir: string): Promise<Record<string, unknown>> {
  const file = nodePath.join(dir, 'config.json');
  if (!existsSync(file)) throw new UserError(`${file}: missing; a checkpoint folder needs config.json`);
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message})`);
  }
}

async function modelFor(o: InitOptions): Promise<{ model: InternVLChatModel; source: string; tokenDir: string; hfNative?: boolean }> {
  if (o.from && (o.vision || o.llm)) throw new UserError('give either --from (Path A) or --vision and --llm (Path B), not both');
  if (o.from) {
    const config = await readConfig(o.from);
    const where = nodePath.join(o.from, 'config.json');
    const model = isHFInternVLConfig(config)
      ? internvlFromHFConfig(config, where, pickProjectorOptions(o), { hasLmHead: await hasLmHead(o.from) })
      : internvlFromConfig(config, where, pickProjectorOptions(o));
    return { model, source: `the InternVL checkpoint ${nodePath.basename(nodePath.resolve(o.from))}`, tokenDir: o.from, hfNative: isHFInternVLConfig(config) };
  }
  if (o.vision && o.llm) {
    const model = internvlFromParts(await readConfig(o.vision), nodePath.join(o.vision, 'config.json'), await readConfig(o.llm), nodePath.join(o.llm, 'config.json'), pickProjectorOptions(o));
    const base = (d: string) => nodePath.basename(nodePath.resolve(d));
    return { model, source: `the vision checkpoint ${base(o.vision)} and the LLM checkpoint ${base(o.llm)}`, tokenDir: o.llm };
  }
  throw new UserError('vlmc init needs --from <InternVL checkpoint> or --vision <dir> --llm <dir>');
}

/** Whether an HF-native checkpoint saves its own lm_head (which unties it when the config is silent). */
async function hasLmHead(dir: string): Promise<boolean> {
  const ckpt = await Checkpoint.open(dir);
  try {
    return HF_LM_HEAD_KEYS.some((k) => ckpt.has(k));
  } finally {
    await ckpt.close();
  }
}

/** Writes the graph file; returns its path. Never overwrites without `force`. */
export async function init(o: InitOptions): Promise<string> {
  const { model, source, tokenDir, hfNative } = await modelFor(o);
  const name = o.name ?? nodePath.basename(nodePath.resolve(o.from ?? o.llm!));
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new UserError(`--name '${name}' must be letters, digits, '.', '_' or '-'`);
  const out = o.out ?? nodePath.join('graphs', `${name}.ts`);
  if (existsSync(out) && !o.force) throw new UserError(`${out} exists; pass --force to overwrite it`);
  model.options.imgContextTokenId ??= o.imgContextTokenId ?? findSpecialTokenId(tokenDir) ?? (hfNative ? hfDefaultImageTokenId(model) : undefined);
  // Loaded here, not at the top: graph-source.ts brings in ts-morph and TypeScript (about 0.4 s),
  // which every importer of the library (graph files import 'vlmc') would otherwise pay for.
  const { graphSource } = await import('./graph-source.ts');
  await writeFileAtomic(out, graphSource(model, { name, source }));
  return out;
}
