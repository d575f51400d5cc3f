/**
 * What `vlmc diff A B` may compare: a graph file (`graphs/x.ts`), a graph file at a git revision
 * (`HEAD~1:graphs/x.ts`), an artifact folder (`model.onnx` + `manifest.json`), or any `.onnx` file.
 * Each resolves to a `GraphSummary`.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, join, relative, resolve } from 'node:path';
import { compile, type CompileOptions } from '../compile.ts';
import { UserError } from '../errors.ts';
import { loadGraphFile } from '../graph-file.ts';
import { withTrainable } from './assemble.ts';
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
  if (git) return { label: spec, kind: 'git', summary: await summaryAtRevision(git[1]!, git[2]!, cwd) };
  throw new UserError(`${spec}: no such file or folder (expected a graph file, an .onnx file, an artifact folder or REV:path)`);
}

/**
 * Imports a graph file (graph-file.ts), compiles it and summarises the graph. Structure-only by
 * default: a lock or a diff must not need the tokenizer that supplies the <IMG_CONTEXT> id.
 */
export async function loadGraphSummary(file: string, options: CompileOptions = {}): Promise<GraphSummary> {
  return summaryFromGraph(compile(await loadGraphFile(file), { structureOnly: true, ...options }));
}

/**
 * `git show REV:path` into a temporary file next to the working-tree path, so the old version's
 * relative and `vlmc` imports resolve (against the working tree: only the graph file itself is read
 * at REV); the file is removed afterwards, also when loading or compiling fails.
 */
async function summaryAtRevision(rev: string, path: string, cwd: string): Promise<GraphSummary> {
  const label = `${rev}:${path}`;
  if (rev.startsWith('-')) throw new UserError(`${label}: '${rev}' is not a git revision`);
  if (!GRAPH_EXTENSIONS.has(extname(path))) throw new UserError(`${label}: only graph files (.ts) can be read from a git revision`);
  const top = runGit(['rev-parse', '--show-toplevel'], cwd, label).trim();
  // git reads `REV:path` relative to the repository root unless it starts with ./ or ../
  const repoPath = /^\.\.?\//.test(path) ? relative(top, resolve(cwd, path)) : path;
  if (repoPath.startsWith('..') || isAbsolute(repoPath)) throw new UserError(`${label}: the path lies outside the git repository`);
  const source = runGit(['show', `${rev}:${repoPath}`], top, label);
  const target = resolve(top, repoPath);
  if (!existsSync(dirname(target))) throw new UserError(`${label}: folder ${dirname(repoPath)} does not exist in the working tree, so the old file's imports cannot resolve`);
  const ext = extname(target);
  // Hidden, and .mts/.mjs rather than .ts/.js, so tools listing `graphs/*.ts` meanwhile never see it.
  const tempExt = ext === '.ts' || ext === '.mts' ? '.mts' : '.mjs';
  const temp = join(dirname(target), `.${basename(target, ext)}.vlmc-rev-${randomBytes(6).toString('hex')}${tempExt}`);
  writeFileSync(temp, source);
  try {
    return await loadGraphSummary(temp);
  } finally {
    rmSync(temp, { force: true });
  }
}

function runGit(args: string[], cwd: string, label: string): string {
  try {
    return execFileSync('git', args, { cwd, encoding: 'utf8', maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const stderr = String((e as { stderr?: unknown }).stderr ?? '').trim();
    throw new UserError(`${label}: git ${args[0]} failed${stderr ? `: ${stderr}` : ` (${(e as Error).message})`}`);
  }
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
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const params = (json as { parameters?: unknown } | null)?.parameters;
  if (params === undefined) return new Map();
  if (!Array.isArray(params)) throw new UserError(`${file}: 'parameters' must be a list`);
  const out = new Map<string, boolean>();
  for (const p of params as { name?: unknown; trainable?: unknown }[]) {
    if (typeof p?.name === 'string' && typeof p.trainable === 'boolean') out.set(p.name, p.trainable);
  }
  return out;
}
