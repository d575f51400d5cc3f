/**
 * External-data references of an .onnx file, checked in one place for every command that reads
 * one (`vlmc diff`, `vlmc run`): a model file can point anywhere, so a location must be relative,
 * free of `..`, inside the model's folder (after resolving symbolic links) and a regular file, and
 * each tensor's byte range must lie inside it and match its dtype and shape.
 */
import { closeSync, existsSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { UserError } from '../errors.ts';
import { elementCount } from '../ir/dims.ts';

/** One external tensor as its TensorProto describes it. */
export interface ExternalRef {
  name: string;
  dtype: string;
  dims: number[];
  /** Bytes per element; 0 when unknown (the length is then not checked). */
  elementBytes: number;
  /** The `external_data` key/value pairs (location, offset, length, ...). */
  entries: [string, string][];
}

export interface DataRange {
  path: string;
  offset: number;
  length: number;
}

const CHUNK = 16 << 20;

/** External data files of one model: validates references, hashes byte ranges. */
export class ExternalData {
  private readonly dir: string;
  private readonly files = new Map<string, { path: string; size: number }>();
  private readonly fds = new Map<string, number>();

  constructor(private readonly model: string) {
    this.dir = dirname(resolve(model));
  }

  /** The checked byte range of an external tensor; a UserError naming model, tensor and problem otherwise. */
  range(t: ExternalRef): DataRange {
    const fail = (problem: string): never => {
      throw new UserError(`${this.model}: initializer '${t.name}': ${problem}`);
    };
    const kv = new Map(t.entries);
    const location = kv.get('location');
    if (!location) return fail('external data has no location');
    const file = this.file(location, fail);
    const offset = parseCount(kv.get('offset') ?? '0') ?? fail(`external data offset '${kv.get('offset')}' is not a non-negative integer`);
    const length = kv.has('length') ? (parseCount(kv.get('length')!) ?? fail(`external data length '${kv.get('length')}' is not a non-negative integer`)) : file.size - offset;
    if (offset > file.size || length < 0 || offset + length > file.size) {
      fail(`external data bytes ${offset}..${offset + length} lie outside '${location}' (${file.size} bytes)`);
    }
    const expected = elementCount(t.dims) * t.elementBytes;
    if (t.elementBytes > 0 && length !== expected) {
      fail(`external data length ${length} does not match ${t.dtype}[${t.dims.join(',')}] (${expected} bytes)`);
    }
    return { path: file.path, offset, length };
  }

  private file(location: string, fail: (problem: string) => never): { path: string; size: number } {
    const cached = this.files.get(location);
    if (cached) return cached;
    if (isAbsolute(location) || /^[a-zA-Z]:/.test(location) || location.startsWith('\\')) {
      fail(`external data location '${location}' is absolute; it must be relative to the model's folder`);
    }
    if (location.split(/[\\/]/).includes('..')) fail(`external data location '${location}' contains '..'; it must stay inside the model's folder`);
    const path = resolve(this.dir, location);
    if (!inside(this.dir, path)) fail(`external data location '${location}' resolves outside the model's folder`);
    if (!existsSync(path)) fail(`external data file '${location}' does not exist`);
    if (!inside(realpathSync(this.dir), realpathSync(path))) fail(`external data location '${location}' resolves outside the model's folder through a symbolic link`);
    const stat = statSync(path);
    if (!stat.isFile()) fail(`external data location '${location}' is not a regular file`);
    const entry = { path, size: stat.size };
    this.files.set(location, entry);
    return entry;
  }

  hash(range: DataRange): string {
    let fd = this.fds.get(range.path);
    if (fd === undefined) this.fds.set(range.path, (fd = openSync(range.path, 'r')));
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(range.length, 1)));
    for (let done = 0; done < range.length; ) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, range.length - done), range.offset + done);
      if (n <= 0) throw new UserError(`${this.model}: external data file '${range.path}' ended early`);
      h.update(buf.subarray(0, n));
      done += n;
    }
    return h.digest('hex');
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

function parseCount(text: string): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

function inside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel);
}
