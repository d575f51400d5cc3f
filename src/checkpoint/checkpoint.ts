/**
 * A Hugging Face-style checkpoint folder: `config.json` plus weights in either a sharded set
 * described by `model.safetensors.index.json` or a single `model.safetensors`.
 *
 * Opening validates the whole layout up front (index paths stay inside the folder, every indexed
 * key is in its shard, no key lives in two shards), so a later bind step can trust `entry(key)`.
 */
import { createHash } from 'node:crypto';
import { lstat, readFile, readlink, stat } from 'node:fs/promises';
import * as nodePath from 'node:path';
import { CheckpointError } from '../errors.ts';
import { firstDuplicateKey } from './json-duplicates.ts';
import { DEFAULT_CHUNK_BYTES, SafetensorsFile, errorText, type ChunkOptions, type TensorEntry } from './safetensors.ts';

export const CONFIG_FILE = 'config.json';
export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

export class Checkpoint {
  private closed = false;

  private constructor(
    /** Absolute path of the checkpoint folder. */
    readonly dir: string,
    /** Parsed `config.json`. */
    readonly config: Readonly<Record<string, unknown>>,
    /** sha256 (hex) of the raw `config.json` bytes. */
    readonly configHash: string,
    /** The safetensors files, in the order they were opened. */
    readonly files: readonly SafetensorsFile[],
    private readonly fileOf: ReadonlyMap<string, SafetensorsFile>,
  ) {}

  static async open(dir: string): Promise<Checkpoint> {
    const root = nodePath.resolve(dir);
    await requireDirectory(root);
    const { config, configHash } = await readConfig(root);
    const files = (await isFile(nodePath.join(root, INDEX_FILE)))
      ? await openSharded(root)
      : (await isFile(nodePath.join(root, SINGLE_FILE)))
        ? [await SafetensorsFile.open(nodePath.join(root, SINGLE_FILE))]
        : missingWeights(root);
    const fileOf = new Map<string, SafetensorsFile>();
    for (const file of files) for (const key of file.entries.keys()) fileOf.set(key, file);
    return new Checkpoint(root, config, configHash, files, fileOf);
  }

  /** A bare safetensors file as a checkpoint without config (e.g. a saved projector). */
  static async openFile(file: string): Promise<Checkpoint> {
    const abs = nodePath.resolve(file);
    if (!(await isFile(abs))) throw new CheckpointError(`${file}: safetensors file not found`);
    const st = await SafetensorsFile.open(abs);
    const fileOf = new Map<string, SafetensorsFile>([...st.entries.keys()].map((k) => [k, st]));
    return new Checkpoint(nodePath.dirname(abs), {}, '', [st], fileOf);
  }

  /** All tensor keys, sorted. */
  keys(): string[] {
    return [...this.fileOf.keys()].sort();
  }

  has(key: string): boolean {
    return this.fileOf.has(key);
  }

  entry(key: string): TensorEntry {
    return this.fileFor(key).entry(key);
  }

  readAsFloat32(key: string): Promise<Float32Array> {
    const file = this.fileFor(key);
    return file.readAsFloat32(file.entry(key));
  }

  readAll(key: string): Promise<Uint8Array> {
    const file = this.fileFor(key);
    return file.readAll(file.entry(key));
  }

  chunks(key: string, chunkBytes = DEFAULT_CHUNK_BYTES, options?: ChunkOptions): AsyncGenerator<Uint8Array> {
    const file = this.fileFor(key);
    return file.chunks(file.entry(key), chunkBytes, options);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await closeAll(this.files);
  }

  private fileFor(key: string): SafetensorsFile {
    const file = this.fileOf.get(key);
    if (!file) throw new CheckpointError(`${this.dir}: no tensor "${key}" in checkpoint (${this.fileOf.size} tensors)`);
    return file;
  }
}

// ---------------------------------------------------------------------------------------------
// config.json

async function readConfig(root: string): Promise<{ config: Record<string, unknown>; configHash: string }> {
  const path = nodePath.join(root, CONFIG_FILE);
  if (!(await isFile(path))) throw new CheckpointError(`${path}: missing; a checkpoint folder needs ${CONFIG_FILE}`);
  const bytes = await readBytes(path);
  const config = parseJsonObject(bytes, path);
  return { config, configHash: createHash('sha256').update(bytes).digest('hex') };
}

// ---------------------------------------------------------------------------------------------
// Sharded checkpoints

async function openSharded(root: string): Promise<SafetensorsFile[]> {
  const indexPath = nodePath.join(root, INDEX_FILE);
  const weightMap = parseWeightMap(parseJsonObject(await readBytes(indexPath), indexPath), indexPath);
  const keysByShard = groupKeysByShard(weightMap);
  for (const [shard, keys] of keysByShard) await checkShardPath(root, shard, keys[0]!, indexPath);

  const opened: SafetensorsFile[] = [];
  try {
    for (const shard of keysByShard.keys()) opened.push(await SafetensorsFile.open(nodePath.join(root, shard)));
    checkShardContents(opened, [...keysByShard.keys()], weightMap, indexPath);
    return opened;
  } catch (err) {
    await closeAll(opened);
    throw err;
  }
}

function parseWeightMap(index: Record<string, unknown>, indexPath: string): Map<string, string> {
  const raw = index['weight_map'];
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CheckpointError(`${indexPath}: "weight_map" must be an object mapping tensor keys to shard file names`);
  }
  const weightMap = new Map<string, string>();
  for (const [key, shard] of Object.entries(raw)) {
    if (typeof shard !== 'string' || shard === '') {
      throw new CheckpointError(`${indexPath}: weight_map "${key}" must be a shard file name, got ${JSON.stringify(shard)}`);
    }
    weightMap.set(key, withoutDotSegments(shard));
  }
  return weightMap;
}

/**
 * `./model-00002-of-00002.safetensors` and `model-00002-of-00002.safetensors` name one file; `.`
 * and empty segments are dropped so both spellings map to one shard. `..` stays (and is refused).
 */
function withoutDotSegments(shard: string): string {
  if (nodePath.isAbsolute(shard) || nodePath.win32.isAbsolute(shard)) return shard;
  const kept = shard.split(/[\\/]/).filter((s) => s !== '.' && s !== '');
  return kept.length > 0 ? kept.join('/') : shard;
}

/** Shard name -> keys the index puts there, in first-seen order. */
function groupKeysByShard(weightMap: ReadonlyMap<string, string>): Map<string, string[]> {
  const byShard = new Map<string, string[]>();
  for (const [key, shard] of weightMap) {
    const keys = byShard.get(shard);
    if (keys) keys.push(key);
    else byShard.set(shard, [key]);
  }
  return byShard;
}

/** An index is untrusted input: its shard names must not reach files outside the folder. */
async function checkShardPath(root: string, shard: string, someKey: string, indexPath: string): Promise<void> {
  const where = `${indexPath}: shard "${shard}" (for tensor "${someKey}")`;
  if (nodePath.isAbsolute(shard) || nodePath.win32.isAbsolute(shard)) {
    throw new CheckpointError(`${where} is an absolute path; shard names must be relative to the checkpoint folder`);
  }
  if (shard.split(/[\\/]/).includes('..')) {
    throw new CheckpointError(`${where} contains a ".." segment; shards must stay inside the checkpoint folder`);
  }
  const full = nodePath.resolve(root, shard);
  if (!isInside(root, full)) throw new CheckpointError(`${where} resolves outside the checkpoint folder`);
  // A symlink may point anywhere (the Hugging Face hub cache links every file into ../../blobs);
  // what matters is that the index names a path inside the folder and it resolves to a regular file.
  if (!(await isFile(full))) throw new CheckpointError(`${where} is missing or not a regular file: ${full}`);
}

function checkShardContents(
  files: readonly SafetensorsFile[],
  shards: readonly string[],
  weightMap: ReadonlyMap<string, string>,
  indexPath: string,
): void {
  const holders = new Map<string, string[]>();
  files.forEach((file, i) => {
    for (const key of file.entries.keys()) {
      const list = holders.get(key);
      if (list) list.push(shards[i]!);
      else holders.set(key, [shards[i]!]);
    }
  });
  for (const [key, inShards] of holders) {
    if (inShards.length > 1) {
      const names = inShards.map((s) => `"${s}"`).join(' and ');
      throw new CheckpointError(`${indexPath}: tensor "${key}" is a duplicate key across shards: it appears in ${names}`);
    }
    if (!weightMap.has(key)) {
      throw new CheckpointError(`${indexPath}: tensor "${key}" is in shard "${inShards[0]}" but not listed in weight_map`);
    }
  }
  for (const [key, shard] of weightMap) {
    const found = holders.get(key)?.[0];
    if (found === undefined) {
      throw new CheckpointError(`${indexPath}: tensor "${key}" is mapped to shard "${shard}" but that shard does not contain it`);
    }
    if (found !== shard) {
      throw new CheckpointError(`${indexPath}: tensor "${key}" is mapped to shard "${shard}" but is in shard "${found}"`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

function missingWeights(root: string): never {
  throw new CheckpointError(
    `${root}: no weights found; looked for ${INDEX_FILE} (sharded) and ${SINGLE_FILE} (single file)`,
  );
}

async function requireDirectory(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (!info) throw new CheckpointError(`${dir}: checkpoint folder does not exist`);
  if (!info.isDirectory()) throw new CheckpointError(`${dir}: checkpoint path is not a folder`);
}

function parseJsonObject(bytes: Uint8Array, path: string): Record<string, unknown> {
  let parsed: unknown;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    parsed = JSON.parse(text);
  } catch (err) {
    throw new CheckpointError(`${path}: not valid JSON (${errorText(err)})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    const got = parsed === null ? 'null' : Array.isArray(parsed) ? 'an array' : typeof parsed;
    throw new CheckpointError(`${path}: must contain a JSON object (got ${got})`);
  }
  const duplicate = firstDuplicateKey(text);
  if (duplicate !== undefined) throw new CheckpointError(`${path}: the key "${duplicate}" appears twice`);
  return parsed as Record<string, unknown>;
}

async function readBytes(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new CheckpointError(`${path}: cannot read (${errorText(err)})`);
  }
}

/**
 * Whether `path` is a regular file (symbolic links followed). Nothing there is false; anything else
 * there (a folder, a FIFO, a link resolving nowhere) is an error naming it, never "missing".
 */
async function isFile(path: string): Promise<boolean> {
  const info = await stat(path).catch(() => undefined);
  if (info?.isFile()) return true;
  const link = await lstat(path).catch(() => undefined);
  if (!info && !link) return false;
  if (!info) throw new CheckpointError(`${path}: a symbolic link to ${await readlink(path).catch(() => '?')}, which does not exist`);
  throw new CheckpointError(`${path}: is ${info.isDirectory() ? 'a folder' : info.isFIFO() ? 'a FIFO' : 'a socket or device'}, not a regular file`);
}

function isInside(root: string, candidate: string): boolean {
  const rel = nodePath.relative(root, candidate);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${nodePath.sep}`) && !nodePath.isAbsolute(rel);
}

async function closeAll(files: readonly SafetensorsFile[]): Promise<void> {
  await Promise.all(files.map((f) => f.close()));
}
