/**
 * Graph lock files (`graphs/x.graph.lock` next to `graphs/x.ts`): the summary as line-oriented
 * text, one fact per line in canonical order, so a pull request's lock diff shows exactly the facts
 * that changed and unrelated edits do not move lines. Same graph, same bytes.
 */
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../fs/atomic.ts';
import { checkOutputPath } from '../fs/output-path.ts';
import { refuseNonRegularFile } from '../fs/errors.ts';
import { UserError } from '../errors.ts';
import { loadGraphSummary } from './operand.ts';
import type { GraphSummary, IoEntry, ModuleEntry, ParamEntry } from './types.ts';

export const LOCK_HEADER = '# vlmc graph lock v1';

export function lockText(s: GraphSummary): string {
  const sections: [string, string[]][] = [
    ['graph', [`name ${token(s.name)}`]],
    ['opset', Object.entries(s.opset).map(([d, v]) => `${d} ${v}`)],
    ['metadata', Object.entries(s.metadata).map(([k, v]) => `${token(k)} ${JSON.stringify(v)}`)],
    // Inputs and outputs keep their declared order: position is part of the signature.
    ['io', [...s.inputs.map((v) => ioLine('input', v)), ...s.outputs.map((v) => ioLine('output', v))]],
    ['params', s.params.map(paramLine)],
    ['modules', s.modules.map(moduleLine)],
    ['ops', Object.entries(s.ops).flatMap(([m, hist]) => Object.entries(hist).map(([op, n]) => `${moduleLabel(m)} ${op} ${n}`))],
    ['structure-hash', [s.structureHash]],
  ];
  const body = sections.map(([name, lines]) => [`[${name}]`, ...lines].join('\n')).join('\n\n');
  return `${LOCK_HEADER}\n# One fact per line, in canonical order. Regenerate with \`vlmc lock\`; compare graphs with \`vlmc diff\`.\n\n${body}\n`;
}

export const moduleLabel = (path: string): string => (path === '' ? '(root)' : path);

const formatShape = (shape: readonly (number | string)[]): string => `[${shape.join(',')}]`;

/** A name as one token: quoted only when it would not read back as one. */
const token = (s: string): string => (s === '' || /[\s"]/.test(s) ? JSON.stringify(s) : s);

const ioLine = (kind: string, v: IoEntry): string => `${kind} ${token(v.name)} ${v.dtype} ${formatShape(v.shape)}`;

function paramLine(p: ParamEntry): string {
  const facts = [token(p.name), p.dtype, formatShape(p.shape)];
  if (p.trainable !== undefined) facts.push(p.trainable ? 'trainable' : 'frozen');
  if (!p.used) facts.push('unused');
  if (p.sha256) facts.push(`sha256=${p.sha256}`);
  return facts.join(' ');
}

function moduleLine(m: ModuleEntry): string {
  const facts = [moduleLabel(m.path), `tensors=${m.tensors}`, `params=${m.params}`];
  if (m.trainable !== undefined) facts.push(`trainable=${m.trainable}`);
  return facts.join(' ');
}

/** `graphs/x.ts` -> `graphs/x.graph.lock`. */
export function lockPathFor(graphFile: string): string {
  return graphFile.replace(/\.(m?ts|m?js)$/, '') + '.graph.lock';
}

/** Compiles the graph file and writes its lock; `changed` is false when the lock was already current. */
export async function writeLock(graphFile: string): Promise<{ path: string; changed: boolean }> {
  const path = lockPathFor(graphFile);
  checkOutputPath(path, { kind: 'lock', inputs: [graphFile] });
  const text = lockText(await loadGraphSummary(graphFile));
  const changed = !existsSync(path) || readFileSync(path, 'utf8') !== text;
  if (changed) await writeFileAtomic(path, text);
  return { path, changed };
}

/** Lock paths that are missing, and those whose content differs from the graph's current lock text. */
export async function checkLocks(graphFiles: readonly string[]): Promise<{ stale: string[]; missing: string[] }> {
  const stale: string[] = [];
  const missing: string[] = [];
  for (const graphFile of graphFiles) {
    // A mistyped graph path is bad input (exit 2), not a lock to write (exit 1).
    if (!existsSync(graphFile)) throw new UserError(`${graphFile}: graph file not found`);
    const path = lockPathFor(graphFile);
    refuseNonRegularFile(path, 'a vlmc lock file');
    if (!existsSync(path)) {
      missing.push(path);
      continue;
    }
    if (readFileSync(path, 'utf8') !== lockText(await loadGraphSummary(graphFile))) stale.push(path);
  }
  return { stale, missing };
}
