/** `vlmc init --from <checkpoint>` / `--vision <dir> --llm <dir>`: a graph file for a checkpoint. */
import { readJsonObject } from '../checkpoint/json-file.ts';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as nodePath from 'node:path';
import { UserError } from '../errors.ts';
import { writeFileAtomic } from '../fs/atomic.ts';
import { checkOutputPath } from '../fs/output-path.ts';
import { checkpointName } from './name.ts';
import { checkContextTokenId, findSpecialTokenId } from '../checkpoint/tokens.ts';
import { compile } from '../compile.ts';
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
  return readJsonObject(file);
}

async function modelFor(o: InitOptions): Promise<{ model: InternVLChatModel; source: string; tokenDir: string; config: Record<string, unknown>; hfNative?: boolean }> {
  if (o.from && (o.vision || o.llm)) throw new UserError('give either --from (Path A) or --vision and --llm (Path B), not both');
  if (o.from) {
    const config = await readConfig(o.from);
    const where = nodePath.join(o.from, 'config.json');
    const hfNative = isHFInternVLConfig(config);
    const model = hfNative
      ? internvlFromHFConfig({ ...config }, where, pickProjectorOptions(o), { hasLmHead: await hasLmHead(o.from) })
      : internvlFromConfig({ ...config }, where, pickProjectorOptions(o));
    return { model, source: `the InternVL checkpoint ${nodePath.basename(nodePath.resolve(o.from))}`, tokenDir: o.from, config, hfNative };
  }
  if (o.vision && o.llm) {
    const config = await readConfig(o.llm);
    const model = internvlFromParts(await readConfig(o.vision), nodePath.join(o.vision, 'config.json'), { ...config }, nodePath.join(o.llm, 'config.json'), pickProjectorOptions(o));
    const base = (d: string) => nodePath.basename(nodePath.resolve(d));
    return { model, source: `the vision checkpoint ${base(o.vision)} and the LLM checkpoint ${base(o.llm)}`, tokenDir: o.llm, config };
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

/**
 * Writes the graph file and its lock beside it (so `vlmc lock --check` passes at once); returns the
 * graph file's path. Never overwrites a graph without `force`. The lock is computed from the file
 * as written, loaded from a temporary sibling first, so a graph that does not compile leaves nothing.
 */
export async function init(o: InitOptions): Promise<string> {
  const { model, source, tokenDir, config, hfNative } = await modelFor(o);
  const name = o.name ?? checkpointName(o.from ?? o.llm!, config);
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new UserError(`--name '${name}' must be letters, digits, '.', '_' or '-'`);
  const out = o.out ?? nodePath.join('graphs', `${name}.ts`);
  const inputs = [o.from, o.vision, o.llm];
  // The file is TypeScript that vlmc build loads by its extension; checked before --force is asked
  // for (a file whose name is then refused would be a dead end), after a folder is named as one.
  if (!/\.m?ts$/.test(out) && !statSync(out, { throwIfNoEntry: false })?.isDirectory()) throw new UserError(`--out ${out}: a graph file is TypeScript; give a path ending in .ts (or .mts)`);
  checkOutputPath(out, { kind: 'graph', force: o.force, inputs });
  const { lockPathFor, lockText, loadGraphSummary } = await import('../review/index.ts');
  const lock = lockPathFor(out);
  checkOutputPath(lock, { kind: 'lock', inputs });
  const id = model.options.imgContextTokenId ?? o.imgContextTokenId ?? findSpecialTokenId(tokenDir) ?? (hfNative ? hfDefaultImageTokenId(model) : undefined);
  if (id !== undefined) checkContextTokenId(id, model.language_model.config.vocab, o.imgContextTokenId !== undefined ? '--img-context-token-id' : `${tokenDir} (added_tokens.json / tokenizer_config.json)`);
  // The same checks as vlmc build, so a graph file is only written for a config that builds.
  compile(model, { structureOnly: true, facts: { imgContextTokenId: id } });
  // Loaded here, not at the top: graph-source.ts brings in ts-morph and TypeScript (about 0.4 s),
  // which every importer of the library (graph files import 'vlmc') would otherwise pay for.
  const { graphSource } = await import('./graph-source.ts');
  const text = graphSource(model, { name, source, imgContextTokenId: id });
  const lockContent = lockText(await summaryOfSource(out, text, loadGraphSummary));
  await writeFileAtomic(out, text);
  await writeFileAtomic(lock, lockContent);
  return out;
}

/** The summary of generated graph source `text` (which imports only 'vlmc'): loaded from a temporary file, removed afterwards. */
async function summaryOfSource<T>(out: string, text: string, load: (file: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(nodePath.join(tmpdir(), 'vlmc-init-'));
  try {
    const temp = nodePath.join(dir, `${nodePath.basename(out).replace(/\.m?[jt]s$/, '')}.mts`);
    await writeFile(temp, text);
    return await load(temp);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
