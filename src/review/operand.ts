/**
 * What `vlmc diff A B` may compare and `vlmc view` may draw: a graph file (`graphs/x.ts`), a graph
 * file at a git revision (`HEAD~1:graphs/x.ts`), an artifact folder (`model.onnx` +
 * `manifest.json`, with `train.onnx` when built with --train), a split artifact (`pipeline.json`
 * and its three graphs), a checkpoint folder (the graph its `config.json` describes, as `vlmc
 * build` derives it), or any `.onnx` file. Each resolves to a `GraphSummary`, plus what the folder
 * adds to it (the manifest, the split or training graphs, the checkpoint's keys).
 */
import { existsSync, statSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { compile, type CompileOptions } from '../compile.ts';
import { UserError } from '../errors.ts';
import { MANIFEST_FILE, MODEL_FILE, readManifestObject } from '../artifact/format.ts';
import { loadGraphFile } from '../graph-file.ts';
import { withTrainable } from './assemble.ts';
import { summaryAtRevision } from './revision.ts';
import { summaryFromOnnxFile } from './onnx.ts';
import { summaryFromGraph } from './summary.ts';
import { summaryFromCheckpoint } from './checkpoint.ts';
import { summaryFromSplitArtifact, type GraphPart } from './split.ts';
import type { Manifest } from '../artifact/format.ts';
import { isSplitArtifact } from '../artifact/format.ts';
import type { GraphSummary } from './types.ts';

export type OperandKind = 'graph' | 'git' | 'artifact' | 'split' | 'checkpoint' | 'onnx';

export interface ResolvedOperand {
  /** The operand as given, for headings. */
  label: string;
  kind: OperandKind;
  /** The whole model (a split artifact's three graphs merged): what a diff compares. */
  summary: GraphSummary;
  /** An artifact's manifest.json, as read (fields are checked where they are used). */
  manifest?: Partial<Manifest>;
  /** The graphs beside the model: a split artifact's three, an artifact's train.onnx. */
  graphs?: GraphPart[];
  /** A checkpoint folder: the checkpoint key(s) each parameter is read from. */
  keys?: ReadonlyMap<string, readonly string[]>;
}

export interface OperandOptions {
  /** Hash weights of .onnx operands (graph files have none). */
  weights?: boolean;
  /** Where relative paths and git run from; defaults to the process's working directory. */
  cwd?: string;
}

const GRAPH_EXTENSIONS = new Set(['.ts', '.mts', '.js', '.mjs']);

export async function resolveOperand(spec: string, options: OperandOptions = {}): Promise<ResolvedOperand> {
  const cwd = options.cwd ?? process.cwd();
  const path = resolve(cwd, spec);
  if (existsSync(path)) {
    if (statSync(path).isDirectory()) return resolveFolder(spec, path, options);
    if (extname(path) === '.onnx') return { label: spec, kind: 'onnx', summary: summaryFromOnnxFile(path, options) };
    if (GRAPH_EXTENSIONS.has(extname(path))) return { label: spec, kind: 'graph', summary: await loadGraphSummary(path) };
    throw new UserError(`${spec}: not a graph file (.ts), an .onnx file or an artifact folder`);
  }
  const git = /^([^:]+):(.+)$/.exec(spec);
  if (git) return { label: spec, kind: 'git', summary: await summaryAtRevision(git[1]!, git[2]!, cwd, (f) => loadGraphSummary(f)) };
  throw new UserError(`${spec}: no such file or folder (expected a graph file, an .onnx file, an artifact folder or REV:path)`);
}

/**
 * Imports a graph file (graph-file.ts), compiles it and summarises the graph. Structure-only by
 * default: a lock or a diff must not need the tokenizer that supplies the <IMG_CONTEXT> id.
 */
export async function loadGraphSummary(file: string, options: CompileOptions = {}): Promise<GraphSummary> {
  return summaryFromGraph(compile(await loadGraphFile(file), { structureOnly: true, ...options }));
}

/** A folder: an artifact (model.onnx), a split artifact (pipeline.json) or a checkpoint (config.json). */
async function resolveFolder(label: string, dir: string, options: OperandOptions): Promise<ResolvedOperand> {
  if (existsSync(join(dir, 'model.onnx'))) {
    const manifest = readArtifactManifest(dir);
    const summary = summaryFromArtifact(dir, options, manifest);
    if (!existsSync(join(dir, TRAIN_GRAPH))) return { label, kind: 'artifact', summary, manifest };
    return { label, kind: 'artifact', summary, manifest, graphs: [{ name: 'train', file: TRAIN_GRAPH, summary: summaryFromOnnxFile(join(dir, TRAIN_GRAPH)) }] };
  }
  if (isSplitArtifact(dir)) {
    const manifest = readArtifactManifest(dir);
    const withManifest = (s: GraphSummary) => (manifest ? withTrainable(s, trainableOf(manifest, join(dir, 'manifest.json'))) : s);
    const { summary, graphs } = summaryFromSplitArtifact(dir, options);
    return { label, kind: 'split', summary: withManifest(summary), manifest, graphs: graphs.map((g) => ({ ...g, summary: withManifest(g.summary) })) };
  }
  if (existsSync(join(dir, 'config.json'))) {
    const { summary, keys } = await summaryFromCheckpoint(dir);
    return { label, kind: 'checkpoint', summary, keys };
  }
  throw new UserError(`${label}: not an artifact folder (no model.onnx), a split artifact (no pipeline.json) or a checkpoint folder (no config.json)`);
}

/** The training graph an artifact built with --train holds beside model.onnx. */
const TRAIN_GRAPH = 'train.onnx';

/** An artifact folder: `model.onnx`, with freeze states from `manifest.json` when present. */
export function summaryFromArtifact(dir: string, options: OperandOptions = {}, manifest = readArtifactManifest(dir)): GraphSummary {
  const model = join(dir, MODEL_FILE);
  if (!existsSync(model)) throw new UserError(`${dir}: not an artifact folder (no ${MODEL_FILE})`);
  const summary = summaryFromOnnxFile(model, options);
  return manifest ? withTrainable(summary, trainableOf(manifest, join(dir, MANIFEST_FILE))) : summary;
}

/** The folder's manifest.json, or undefined when there is none. */
function readArtifactManifest(dir: string): Partial<Manifest> | undefined {
  const file = join(dir, MANIFEST_FILE);
  return existsSync(file) ? readManifestJson(file) : undefined;
}

/** A manifest file as a JSON object (the artifact format's one reader), its `parameters` a list. */
export function readManifestJson(file: string): Partial<Manifest> {
  const json = readManifestObject(file);
  if (json['parameters'] !== undefined && !Array.isArray(json['parameters'])) throw new UserError(`${file}: 'parameters' must be a list`);
  return json as Partial<Manifest>;
}

/** `parameters[].name` / `parameters[].trainable` from a manifest; entries without a boolean are skipped. */
export function manifestTrainable(file: string): Map<string, boolean> {
  return trainableOf(readManifestJson(file), file);
}

function trainableOf(manifest: Partial<Manifest>, file: string): Map<string, boolean> {
  const out = new Map<string, boolean>();
  for (const p of manifestParameters(manifest, file)) if (typeof p?.name === 'string' && typeof p.trainable === 'boolean') out.set(p.name, p.trainable);
  return out;
}

/** The manifest's parameter entries; fields unchecked (each reader checks the ones it uses). */
export function manifestParameters(manifest: Partial<Manifest>, file = 'manifest.json'): Partial<Manifest['parameters'][number]>[] {
  const params = manifest.parameters as unknown;
  if (params === undefined) return [];
  if (!Array.isArray(params)) throw new UserError(`${file}: 'parameters' must be a list`);
  return params.filter((p): p is Record<string, unknown> => typeof p === 'object' && p !== null) as Partial<Manifest['parameters'][number]>[];
}
