/**
 * Outputs appear atomically: an artifact is written into a temporary sibling folder and renamed
 * into place when complete, so an interrupted build leaves any earlier artifact intact.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import * as nodePath from 'node:path';

export async function withTempSibling<T>(target: string, fill: (tmpDir: string) => Promise<T>): Promise<T> {
  const abs = nodePath.resolve(target);
  await mkdir(nodePath.dirname(abs), { recursive: true });
  const tmp = `${abs}.tmp-${process.pid}-${Date.now().toString(36)}`;
  await mkdir(tmp, { recursive: true });
  try {
    const result = await fill(tmp);
    await replaceDir(tmp, abs);
    return result;
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
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
  await rename(tmp, target);
  if (moved) await rm(old, { recursive: true, force: true });
}

/** Write one file atomically (temp sibling + rename). */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const abs = nodePath.resolve(path);
  await mkdir(nodePath.dirname(abs), { recursive: true });
  const tmp = `${abs}.tmp-${process.pid}-${Date.now().toString(36)}`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, abs);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
