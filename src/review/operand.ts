/**
 * What `vlmc diff A B` may compare: a graph file (`graphs/x.ts`), a graph file at a git revision
 * (`HEAD~1:graphs/x.ts`), an artifact folder (`model.onnx` + `manifest.json`), a split artifact
 * folder (`vision.onnx`, `embedding.onnx`, `decoder.onnx` per `pipeline.json`), or any `.onnx`
 * file. Each resolves to a `GraphSummary` per graph: one, or a split artifact's three.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { compile, type CompileOptions } from '../compile.ts';
import { UserError } from '../errors.ts';
import { refuseNonRegularFile } from '../artifact/fs-errors.ts';
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

/** One graph of an operand: `graph` is the split artifact's file (`vision.onnx`, ...), or undefined for a single graph. */
export interface OperandGraph extends ResolvedOperand {
  graph?: string;
}

/**
 * An operand's graphs: a split artifact folder gives its three (compared graph by graph), anything
 * else the one resolveOperand gives.
 */
export async function resolveOperandGraphs(spec: string, options: OperandOptions = {}): Promise<OperandGraph[]> {
  const dir = resolve(options.cwd ?? process.cwd(), spec);
  const files = existsSync(dir) && statSync(dir).isDirectory() ? splitGraphFiles(dir) : undefined;
  if (!files) return [await resolveOperand(spec, options)];
  const trainable = existsSync(join(dir, 'manifest.json')) ? manifestTrainable(join(dir, 'manifest.json')) : undefined;
  return files.map((graph) => {
    const summary = summaryFromOnnxFile(join(dir, graph), options);
    return { label: `${spec} ${graph}`, kind: 'artifact' as const, graph, summary: trainable ? withTrainable(summary, trainable) : summary };
  });
}

/** The graph files a split artifact's pipeline.json names, or undefined when the folder is not one. */
function splitGraphFiles(dir: string): string[] | undefined {
  const file = join(dir, 'pipeline.json');
  if (!existsSync(file)) return undefined;
  refuseNonRegularFile(file, "the split artifact's pipeline.json");
  let graphs: unknown;
  try {
    graphs = (JSON.parse(readFileSync(file, 'utf8')) as { graphs?: unknown })?.graphs;
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const entries = typeof graphs === 'object' && graphs !== null ? Object.values(graphs as Record<string, { file?: unknown }>) : [];
  const files = entries.map((g) => g?.file);
  if (files.length === 0 || !files.every((f): f is string => typeof f === 'string' && f.endsWith('.onnx') && !f.includes('/'))) {
    throw new UserError(`${file}: 'graphs' must name each graph's .onnx file in the folder`);
  }
  return files;
}

/**
 * The pairs `vlmc diff` compares: the one graph of each side, or a split artifact's graphs matched
 * by file name. A split artifact against a single graph is refused (compare one of its .onnx files).
 */
export function pairGraphs(a: OperandGraph[], b: OperandGraph[], labels: [string, string]): [OperandGraph, OperandGraph][] {
  const split = (x: OperandGraph[]) => x.some((g) => g.graph !== undefined);
  if (split(a) !== split(b)) {
    const [s, other] = split(a) ? labels : [labels[1], labels[0]];
    throw new UserError(`${s} is a split artifact (vision, embedding, decoder) and ${other} is not; compare two split artifacts, or one of its .onnx files with ${other}`);
  }
  if (!split(a)) return [[a[0]!, b[0]!]];
  const names = [...new Set([...a, ...b].map((g) => g.graph!))];
  return names.map((name) => {
    const left = a.find((g) => g.graph === name);
    const right = b.find((g) => g.graph === name);
    if (!left || !right) throw new UserError(`${left ? labels[1] : labels[0]} has no ${name}; split artifacts compare graph by graph`);
    return [left, right];
  });
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
  const model = join(dir, 'model.onnx');
  if (!existsSync(model)) throw new UserError(`${dir}: not an artifact folder (no model.onnx)`);
  const summary = summaryFromOnnxFile(model, options);
  const manifest = join(dir, 'manifest.json');
  return existsSync(manifest) ? withTrainable(summary, manifestTrainable(manifest)) : summary;
}

/** `parameters[].name` / `parameters[].trainable` from a manifest; entries without a boolean are skipped. */
export function manifestTrainable(file: string): Map<string, boolean> {
  let json: unknown;
  refuseNonRegularFile(file, 'the artifact manifest');
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new UserError(`${file}: not a vlmc manifest (must hold a JSON object; got ${json === null ? 'null' : Array.isArray(json) ? 'an array' : typeof json})`);
  const params = (json as { parameters?: unknown }).parameters;
  if (params === undefined) return new Map();
  if (!Array.isArray(params)) throw new UserError(`${file}: 'parameters' must be a list`);
  const out = new Map<string, boolean>();
  for (const p of params as { name?: unknown; trainable?: unknown }[]) {
    if (typeof p?.name === 'string' && typeof p.trainable === 'boolean') out.set(p.name, p.trainable);
  }
  return out;
}
