/**
 * What `vlmc diff A B` may compare: a graph file (`graphs/x.ts`), a graph file at a git revision
 * (`HEAD~1:graphs/x.ts`), an artifact folder (`model.onnx` + `manifest.json`), or any `.onnx` file.
 * Each resolves to a `GraphSummary`.
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
import type { GraphSummary } from './types.ts';

export type OperandKind = 'graph' | 'git' | 'artifact' | 'onnx';

export interface ResolvedOperand {
  /** The operand as given, for headings. */
  label: string;
  kind: OperandKind;
  summary: GraphSummary;
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
    if (statSync(path).isDirectory()) return { label: spec, kind: 'artifact', summary: summaryFromArtifact(path, options) };
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

/** An artifact folder: `model.onnx`, with freeze states from `manifest.json` when present. */
export function summaryFromArtifact(dir: string, options: OperandOptions = {}): GraphSummary {
  const model = join(dir, MODEL_FILE);
  if (!existsSync(model)) throw new UserError(`${dir}: not an artifact folder (no ${MODEL_FILE})`);
  const summary = summaryFromOnnxFile(model, options);
  const manifest = join(dir, MANIFEST_FILE);
  return existsSync(manifest) ? withTrainable(summary, manifestTrainable(manifest)) : summary;
}

/** `parameters[].name` / `parameters[].trainable` from a manifest; entries without a boolean are skipped. */
export function manifestTrainable(file: string): Map<string, boolean> {
  const params = readManifestObject(file).parameters;
  if (params === undefined) return new Map();
  if (!Array.isArray(params)) throw new UserError(`${file}: 'parameters' must be a list`);
  const out = new Map<string, boolean>();
  for (const p of params as { name?: unknown; trainable?: unknown }[]) {
    if (typeof p?.name === 'string' && typeof p.trainable === 'boolean') out.set(p.name, p.trainable);
  }
  return out;
}
