/**
 * File-system failures as input problems: a read-only output, a missing parent, a folder where a
 * file belongs, a name too long... are the user's to fix, so they exit 2 with the path and what is
 * wrong in words, never as a raw `ENOENT`/`EISDIR`/`EROFS` or an internal error.
 */
import { statSync, type Stats } from 'node:fs';
import { UserError } from '../errors.ts';

const DESCRIPTIONS: Record<string, string> = {
  ENOENT: 'does not exist',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'is a folder where a file belongs',
  EEXIST: 'already exists',
  ENOTEMPTY: 'is a folder that is not empty',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'is on a read-only file system',
  ENAMETOOLONG: 'the name is too long for the file system',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'the file is too large for the file system',
  ELOOP: 'too many levels of symbolic links',
  EXDEV: 'cannot be moved across file systems',
  EBUSY: 'is busy (in use by another process)',
  EMLINK: 'too many links',
};

interface ErrnoLike {
  code?: unknown;
  path?: unknown;
  dest?: unknown;
  syscall?: unknown;
}

/** The errno code of a Node file-system error that is the environment's, not a bug; else undefined. */
export function fileSystemErrorCode(e: unknown): string | undefined {
  const code = (e as ErrnoLike | null)?.code;
  return typeof code === 'string' && code in DESCRIPTIONS && typeof (e as ErrnoLike).syscall === 'string' ? code : undefined;
}

/**
 * A `UserError` naming the path and the problem for a file-system error, or undefined when `e` is
 * not one. `path` overrides the path Node recorded (which may be an internal temporary name).
 */
export function fileSystemUserError(e: unknown, path?: string): UserError | undefined {
  const code = fileSystemErrorCode(e);
  if (!code) return undefined;
  const err = e as ErrnoLike;
  const where = path ?? (typeof err.path === 'string' ? err.path : undefined) ?? '(unknown path)';
  return new UserError(`${where}: ${DESCRIPTIONS[code]} (${code}${typeof err.syscall === 'string' ? ` on ${err.syscall}` : ''})`);
}

/** Runs `f`; a file-system error becomes a `UserError` naming `path`. */
export async function explainFs<T>(path: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw fileSystemUserError(e, path) ?? e;
  }
}

/**
 * Refuses a path that exists but is not a regular file (a FIFO, socket, device or folder), before
 * anyone opens it: opening a FIFO for reading waits for a writer forever. A missing path is left
 * to the caller, whose own message says what was expected there.
 */
export function refuseNonRegularFile(path: string, what: string): void {
  let info: Stats;
  try {
    info = statSync(path);
  } catch {
    return;
  }
  if (info.isFile()) return;
  const kind = info.isDirectory() ? 'a folder' : info.isFIFO() ? 'a FIFO' : 'a socket or device';
  throw new UserError(`${path}: is ${kind}, not a regular file; ${what} is expected there`);
}
