/**
 * Outputs appear atomically: an artifact is written into a temporary sibling folder and renamed
 * into place when complete, so an interrupted build leaves any earlier artifact intact.
 *
 * Temporary folders carry a mark file, are removed on SIGINT/SIGTERM, and ones left by a process
 * that died (SIGKILL, power loss) are removed by the next write to the same target: only marked
 * ones, of processes that no longer run.
 */
import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import * as nodePath from 'node:path';
import { explainFs, fileSystemUserError } from './errors.ts';
import { isArtifactFolder } from '../artifact/format.ts';
import { CHECKPOINT_MARK } from './output-path.ts';

/** Inside a temporary folder while vlmc fills it; removed just before the folder is renamed into place. */
export const TEMP_MARK = '.vlmc-temp';

export async function withTempSibling<T>(target: string, fill: (tmpDir: string) => Promise<T>): Promise<T> {
  const abs = nodePath.resolve(target);
  await explainFs(nodePath.dirname(abs), () => makeFolders(nodePath.dirname(abs)));
  removeStaleSiblings(abs);
  const tmp = `${abs}.tmp-${process.pid}-${Date.now().toString(36)}`;
  await explainFs(target, () => mkdir(tmp));
  const release = cleanupOnSignal(tmp);
  try {
    await writeFile(nodePath.join(tmp, TEMP_MARK), `${process.pid}\n`);
    const result = await fill(tmp);
    await rm(nodePath.join(tmp, TEMP_MARK), { force: true });
    await explainFs(target, () => replaceDir(tmp, abs));
    return result;
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw writeError(e, target);
  } finally {
    release();
  }
}

/**
 * `mkdir -p`, one level at a time. Node's `mkdir(..., { recursive: true })` never returns where
 * mkdir fails with ENOENT under an existing parent (procfs, sysfs: `--out /proc/x/y`).
 */
export async function makeFolders(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let d = nodePath.resolve(dir); !existsSync(d) && nodePath.dirname(d) !== d; d = nodePath.dirname(d)) missing.unshift(d);
  for (const d of missing) {
    await mkdir(d).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
  }
}

/** A file-system error while writing that names no path (a write to an open file) is about the output. */
function writeError(e: unknown, target: string): unknown {
  if ((e as { path?: unknown } | null)?.path !== undefined) return e;
  return fileSystemUserError(e, target) ?? e;
}

/** Swap `tmp` into `target`; the old target is removed only after the new one is in place. */
async function replaceDir(tmp: string, target: string): Promise<void> {
  const old = `${target}.old-${process.pid}-${Date.now().toString(36)}`;
  let moved = false;
  try {
    await rename(target, old);
    moved = true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  try {
    await rename(tmp, target);
  } catch (e) {
    if (moved) await rename(old, target);
    throw e;
  }
  if (moved) await rm(old, { recursive: true, force: true });
}

/** Write one file atomically (temp sibling + rename). */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const abs = nodePath.resolve(path);
  await explainFs(nodePath.dirname(abs), () => makeFolders(nodePath.dirname(abs)));
  const tmp = `${abs}.tmp-${process.pid}-${Date.now().toString(36)}`;
  const release = cleanupOnSignal(tmp);
  try {
    await explainFs(path, async () => {
      await writeFile(tmp, data);
      await rename(tmp, abs);
    });
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  } finally {
    release();
  }
}

// ---------------------------------------------------------------------------------------------
// Leftovers of interrupted writes

const SIBLING = /^\.(tmp|old)-(\d+)-[0-9a-z]+$/;

/**
 * Removes `<target>.tmp-<pid>-*` folders that carry vlmc's mark and whose process is gone. An
 * `<target>.old-<pid>-*` artifact (or demo checkpoint) of a dead process is the previous one caught mid-swap: it
 * goes back into place when the target is missing, else it is removed.
 */
export function removeStaleSiblings(target: string): void {
  const abs = nodePath.resolve(target);
  const dir = nodePath.dirname(abs);
  const base = nodePath.basename(abs);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names.sort()) {
    if (!name.startsWith(base)) continue;
    const m = SIBLING.exec(name.slice(base.length));
    if (!m || processAlive(Number(m[2]))) continue;
    const path = nodePath.join(dir, name);
    try {
      if (m[1] === 'tmp' && existsSync(nodePath.join(path, TEMP_MARK))) rmSync(path, { recursive: true, force: true });
      else if (m[1] === 'old' && (isArtifactFolder(path) || existsSync(nodePath.join(path, CHECKPOINT_MARK)))) {
        if (existsSync(abs)) rmSync(path, { recursive: true, force: true });
        else renameSync(path, abs);
      }
    } catch {
      // Someone else's problem to clear up (permissions); the new write does not depend on it.
    }
  }
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it runs, as another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// ---------------------------------------------------------------------------------------------
// Interrupts

const pending = new Set<string>();
const SIGNALS = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const;

function onSignal(signal: keyof typeof SIGNALS): void {
  for (const p of pending) rmSync(p, { recursive: true, force: true });
  pending.clear();
  // Alone, this handler stands in for the default action (exit); a host program with handlers of its own decides itself.
  if (process.listenerCount(signal) <= 1) process.exit(128 + SIGNALS[signal]);
}

/** Removes `path` if the process is interrupted before the returned function is called. */
function cleanupOnSignal(path: string): () => void {
  if (pending.size === 0) for (const s of Object.keys(SIGNALS) as (keyof typeof SIGNALS)[]) process.on(s, onSignal);
  pending.add(path);
  return () => {
    pending.delete(path);
    if (pending.size === 0) for (const s of Object.keys(SIGNALS) as (keyof typeof SIGNALS)[]) process.off(s, onSignal);
  };
}
