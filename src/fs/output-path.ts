/**
 * Where a command may write. Every writing command checks its output path here before it does any
 * work, so a mistyped `--out` can never cost a user their files:
 *
 * - a missing path is fine (missing parent folders are created);
 * - an existing path must be an earlier vlmc output of the same kind: an artifact folder holding
 *   only artifact files and a vlmc manifest, a result file vlmc wrote (safetensors whose
 *   `__metadata__` names vlmc and the same content), a lock file, an HTML page of the same kind
 *   (`vlmc view`, `vlmc diff --format html`), or (with `--force`) a graph file;
 * - anything else (a user's folder, a plain file, a link, a checkout) is refused, naming what is
 *   there; and the output may not be, lie inside, or contain any input (compared by real path, so
 *   symbolic links cannot hide it).
 */
import { existsSync, lstatSync, readdirSync, realpathSync, statSync, openSync, readSync, closeSync } from 'node:fs';
import type { Stats } from 'node:fs';
import * as nodePath from 'node:path';
import { UserError } from '../errors.ts';
import { ARTIFACT_FILES, isVlmcManifest, MANIFEST_FILE } from '../artifact/format.ts';

/** The kinds of output vlmc writes; each may only replace its own kind. */
export type OutputKind = 'artifact' | 'result' | 'graph' | 'lock' | 'checkpoint' | 'view' | 'diff';

export interface OutputCheck {
  kind: OutputKind;
  /** The flag or argument that named the path, for messages (`--out`). */
  flag?: string;
  /** What the command reads (files or folders); the output may not be one, lie inside one, or contain one. */
  inputs?: readonly (string | undefined)[];
  /** `result`: the content a replaced result file must hold (its `__metadata__.vlmc`), e.g. `outputs`. */
  content?: string;
  /** `graph`: replace an existing graph file (`vlmc init --force`). */
  force?: boolean;
}

/** The key in a safetensors `__metadata__` that marks a file vlmc wrote; its value names the content. */
export const RESULT_METADATA_KEY = 'vlmc';

/** `__metadata__` for a result file vlmc writes, so a later run may replace it. */
export function resultMetadata(content: string): Record<string, string> {
  return { [RESULT_METADATA_KEY]: content };
}

/** The file (inside the folder) that marks a random checkpoint vlmc wrote (`vlmc demo`). */
export const CHECKPOINT_MARK = '.vlmc-checkpoint';

/** How every lock file vlmc writes begins, whatever its version. */
const LOCK_MARK = '# vlmc graph lock';

/** How the HTML pages vlmc writes begin: `vlmc view` and `vlmc diff --format html`, each replacing only its own. */
export const PAGE_MARKS = { view: '<!DOCTYPE html>\n<!-- vlmc view', diff: '<!DOCTYPE html>\n<!-- vlmc diff' } as const;

/** Throws a `UserError` unless `path` may be written as `check.kind`; touches nothing. */
export function checkOutputPath(path: string, check: OutputCheck): void {
  const label = check.flag ? `${check.flag} ${path}` : path;
  if (path.trim() === '') throw new UserError(`${check.flag ?? 'output path'}: empty path`);
  checkAgainstInputs(path, label, check);
  const problem = existingProblem(nodePath.resolve(path), check);
  if (problem) throw new UserError(`${label}: ${problem}`);
  const parent = parentProblem(nodePath.resolve(path));
  if (parent) throw new UserError(`${label}: ${parent}`);
}

/** Why the existing thing at `abs` may not be replaced, or undefined when it may (or nothing is there). */
function existingProblem(abs: string, check: OutputCheck): string | undefined {
  const st = lstatOrUndefined(abs);
  if (!st) return undefined;
  if (st.isSymbolicLink()) return `is a symbolic link; vlmc replaces only what it wrote itself, so give the real path or a new one`;
  switch (check.kind) {
    case 'artifact':
    case 'checkpoint':
      return st.isDirectory() ? folderProblem(abs, check.kind) : `${describe(abs, st)} where an ${check.kind === 'artifact' ? 'artifact folder' : 'checkpoint folder'} would go; give a new path`;
    case 'result':
      return st.isFile() ? resultProblem(abs, check.content) : `${describe(abs, st)} where a result file would go; give a new path`;
    case 'lock':
      return st.isFile() && readHead(abs, LOCK_MARK.length) === LOCK_MARK ? undefined : `${describe(abs, st)}, not a vlmc lock file; move it away first`;
    case 'view':
    case 'diff':
      return st.isFile() && readHead(abs, PAGE_MARKS[check.kind].length) === PAGE_MARKS[check.kind] ? undefined : `${describe(abs, st)}, not a page \`vlmc ${check.kind}\` wrote; give a new path`;
    case 'graph':
      if (!st.isFile()) return `${describe(abs, st)} where a graph file would go; give a new path`;
      return check.force ? undefined : 'exists; pass --force to overwrite it';
  }
}

function folderProblem(abs: string, kind: 'artifact' | 'checkpoint'): string | undefined {
  const entries = readdirSync(abs).sort();
  if (entries.length === 0) return undefined;
  if (kind === 'checkpoint') {
    return entries.includes(CHECKPOINT_MARK) ? undefined : `is a folder vlmc did not write (it holds ${listSome(entries)}); give a new path`;
  }
  const manifest = nodePath.join(abs, MANIFEST_FILE);
  if (!entries.includes(MANIFEST_FILE) || !isVlmcManifest(manifest)) {
    return `is a folder that is not a vlmc artifact (it holds ${listSome(entries)}); give a new path or an earlier artifact folder`;
  }
  const foreign = entries.filter((e) => !ARTIFACT_FILES.includes(e));
  if (foreign.length > 0) return `is a vlmc artifact that also holds other files (${listSome(foreign)}); move them away first, vlmc would delete them`;
  return undefined;
}

function resultProblem(abs: string, content: string | undefined): string | undefined {
  const metadata = safetensorsMetadata(abs);
  const mark = metadata?.[RESULT_METADATA_KEY];
  if (mark === undefined) return 'is a file vlmc did not write (no vlmc mark in a safetensors header); give a new path';
  if (content !== undefined && mark !== content) return `is a vlmc ${mark} file, not ${content}; give a new path`;
  return undefined;
}

/** The `__metadata__` of a safetensors file, read from its header only; undefined when it is not one. */
function safetensorsMetadata(file: string): Record<string, unknown> | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const prefix = Buffer.alloc(8);
    if (readSync(fd, prefix, 0, 8, 0) !== 8) return undefined;
    const length = prefix.readBigUInt64LE(0);
    if (length === 0n || length > 100n * 1024n * 1024n) return undefined;
    const header = Buffer.alloc(Number(length));
    if (readSync(fd, header, 0, header.length, 8) !== header.length) return undefined;
    const json = JSON.parse(header.toString('utf8')) as Record<string, unknown> | null;
    const meta = json?.['__metadata__'];
    return typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The first existing ancestor must be a folder: creating the rest of the path must be possible. */
function parentProblem(abs: string): string | undefined {
  let dir = nodePath.dirname(abs);
  while (!existsSync(dir) && nodePath.dirname(dir) !== dir) dir = nodePath.dirname(dir);
  const st = statOrUndefined(dir);
  if (st && !st.isDirectory()) return `${dir} is a file, not a folder, so nothing can be written under it`;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Outputs and inputs apart

/** Refuses an output that is an input, lies inside an input folder, or contains an input (by real path). */
export function checkAgainstInputs(path: string, label: string, check: Pick<OutputCheck, 'inputs'>): void {
  const out = realish(path);
  for (const input of check.inputs ?? []) {
    if (input === undefined || input === '') continue;
    const real = realish(input);
    const isDir = statOrUndefined(input)?.isDirectory() === true;
    if (out === real) throw new UserError(`${label}: is the input ${input}; write the output somewhere else`);
    if (isDir && isInside(out, real)) throw new UserError(`${label}: lies inside the input folder ${input}; write the output somewhere else`);
    if (isInside(real, out)) throw new UserError(`${label}: contains the input ${input}, which writing there would destroy; write the output somewhere else`);
  }
}

/** The real path of `p`: symbolic links resolved in the longest existing prefix, the rest appended. */
export function realish(p: string): string {
  const abs = nodePath.resolve(p);
  const rest: string[] = [];
  let head = abs;
  for (;;) {
    try {
      return nodePath.join(realpathSync(head), ...rest.reverse());
    } catch {
      const parent = nodePath.dirname(head);
      if (parent === head) return abs;
      rest.push(nodePath.basename(head));
      head = parent;
    }
  }
}

/** Whether `child` lies strictly inside folder `parent` (both absolute, normalised). */
export function isInside(child: string, parent: string): boolean {
  const rel = nodePath.relative(parent, child);
  return rel !== '' && !rel.startsWith('..') && !nodePath.isAbsolute(rel);
}

// ---------------------------------------------------------------------------------------------

function lstatOrUndefined(p: string) {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

function statOrUndefined(p: string) {
  try {
    return statSync(p);
  } catch {
    return undefined;
  }
}

function describe(abs: string, st: Stats): string {
  if (st.isDirectory()) return `is a folder (it holds ${listSome(readdirSync(abs).sort()) || 'nothing'})`;
  if (st.isFile()) return 'is a file';
  return 'is a special file (a device, FIFO or socket)';
}

function readHead(file: string, n: number): string {
  try {
    const fd = openSync(file, 'r');
    try {
      const buf = Buffer.alloc(n);
      const got = readSync(fd, buf, 0, n, 0);
      return buf.subarray(0, got).toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

function listSome(names: readonly string[]): string {
  const shown = names.slice(0, 5).join(', ');
  return names.length > 5 ? `${shown} and ${names.length - 5} more` : shown;
}
