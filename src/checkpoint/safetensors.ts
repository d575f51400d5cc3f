/**
 * Safetensors reading (https://huggingface.co/docs/safetensors: 8-byte little-endian header length,
 * a JSON header, then a data section addressed by per-tensor offsets); writing is in
 * safetensors-write.ts.
 *
 * `open` reads only the header and validates it strictly, so later reads can trust every entry;
 * tensor data is streamed through a FileHandle in element-aligned chunks because checkpoints run
 * to many GB and must never sit whole in the JS heap.
 */
import { open as openFile, stat, type FileHandle } from 'node:fs/promises';
import { CheckpointError } from '../errors.ts';
import { elementCount } from '../ir/dims.ts';
import { firstDuplicateKey } from './json-duplicates.ts';
import {
  ST_DTYPES,
  alignChunkBytes,
  assertLittleEndian,
  bf16ToF32,
  f16ToF32,
  isStDType,
  stDTypeSize,
  type StDType,
} from '../tensor/convert.ts';

export interface TensorEntry {
  readonly key: string;
  readonly dtype: StDType;
  readonly shape: readonly number[];
  /** Path of the safetensors file holding the tensor. */
  readonly file: string;
  /** Absolute byte offset of the first element in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

export interface ChunkOptions {
  /**
   * Yield the same buffer every time (each chunk is then valid only until the next one is
   * requested). Saves an allocation per chunk for consumers that write or convert immediately.
   * With one buffer there is no read-ahead; see `buffers`.
   */
  reuseBuffer?: boolean;
  /**
   * Read into this pair of buffers in turn, the next chunk being read while the caller works on
   * the current one. Each chunk is valid only until the next one is requested (as with
   * `reuseBuffer`, which this implies). Passing the same set for tensor after tensor keeps reusing
   * the same memory; one stream at a time per set.
   */
  buffers?: ChunkBuffers;
}

/** The two read buffers a stream given `ChunkOptions.buffers` reads into in turn. */
export class ChunkBuffers {
  private readonly pair: Uint8Array[] = [];
  private readonly allocate: (bytes: number) => Uint8Array;

  /**
   * `shared`: allocate in SharedArrayBuffers, so worker threads can read chunks in place.
   * `allocate`: where buffers come from instead (e.g. `ConvertArena.alloc`, to convert in place).
   */
  constructor(options: { shared?: boolean; allocate?: (bytes: number) => Uint8Array } = {}) {
    this.allocate = options.allocate ?? (options.shared ? (n) => new Uint8Array(new SharedArrayBuffer(n)) : (n) => new Uint8Array(n));
  }

  /** The first `length` bytes of buffer `slot` (0 or 1), which grows when too small. */
  view(slot: 0 | 1, length: number): Uint8Array {
    const have = this.pair[slot];
    if (have && have.byteLength >= length) return have.subarray(0, length);
    return (this.pair[slot] = this.allocate(length)).subarray(0, length);
  }
}

export const DEFAULT_CHUNK_BYTES = 16 * 1024 * 1024;
/** Same cap the reference implementation uses; a larger header is corrupt or hostile. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export const METADATA_KEY = '__metadata__';
const ENTRY_FIELDS = ['dtype', 'shape', 'data_offsets'] as const;

export class SafetensorsFile {
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly size: number,
    readonly headerLength: number,
    readonly entries: ReadonlyMap<string, TensorEntry>,
    readonly metadata: Readonly<Record<string, string>>,
  ) {}

  /** Opens `path` and validates its header; tensor data is not read. */
  static async open(path: string): Promise<SafetensorsFile> {
    // Checked before opening: opening a FIFO for reading would wait for a writer forever.
    const info = await stat(path).catch((err: unknown) => {
      throw new CheckpointError(`${path}: cannot open (${errorText(err)})`);
    });
    if (!info.isFile()) throw new CheckpointError(`${path}: not a regular file (${info.isDirectory() ? 'a directory' : 'a FIFO, socket or device'}); a safetensors file is expected`);
    let handle: FileHandle;
    try {
      handle = await openFile(path, 'r');
    } catch (err) {
      throw new CheckpointError(`${path}: cannot open (${errorText(err)})`);
    }
    try {
      const { size } = await handle.stat();
      const headerLength = await readHeaderLength(handle, path, size);
      const headerBytes = new Uint8Array(headerLength);
      await readExactly(handle, headerBytes, 8, path, 'header');
      const header = parseHeaderJson(headerBytes, path);
      const dataStart = 8 + headerLength;
      const metadata = parseMetadata(header[METADATA_KEY], path);
      const entries = parseEntries(header, path, dataStart, size - dataStart);
      return new SafetensorsFile(path, handle, size, headerLength, entries, metadata);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** Tensor keys, sorted. */
  keys(): string[] {
    return [...this.entries.keys()].sort();
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  entry(key: string): TensorEntry {
    const found = this.entries.get(key);
    if (!found) throw new CheckpointError(`${this.path}: no tensor "${key}"`);
    return found;
  }

  /**
   * Streams a tensor's bytes in chunks holding whole elements (at most `chunkBytes` each). Unless
   * one reused buffer is asked for, the next chunk is already being read while the caller works on
   * the current one.
   */
  async *chunks(entry: TensorEntry, chunkBytes = DEFAULT_CHUNK_BYTES, options: ChunkOptions = {}): AsyncGenerator<Uint8Array> {
    this.checkOwned(entry);
    const step = alignChunkBytes(chunkBytes, entry.dtype);
    if (options.reuseBuffer && !options.buffers) {
      yield* this.chunksInOneBuffer(entry, step);
      return;
    }
    yield* this.chunksReadAhead(entry, step, options.buffers ? alternating(options.buffers) : freshBuffer);
  }

  /** Every chunk in the same buffer, so chunk i + 1 can only be read once it is requested. */
  private async *chunksInOneBuffer(entry: TensorEntry, step: number): AsyncGenerator<Uint8Array> {
    const buffer = new Uint8Array(Math.min(step, entry.byteLength));
    const inBuffer = (_index: number, length: number) => buffer.subarray(0, length);
    for (let i = 0; i * step < entry.byteLength; i++) yield await this.readChunk(entry, i, step, inBuffer);
  }

  /** Chunk i + 1 is read while the caller holds chunk i, so `bufferFor` must not hand out one buffer twice in a row. */
  private async *chunksReadAhead(entry: TensorEntry, step: number, bufferFor: (index: number, length: number) => Uint8Array): AsyncGenerator<Uint8Array> {
    const count = Math.ceil(entry.byteLength / step);
    let next = count > 0 ? this.readChunk(entry, 0, step, bufferFor) : undefined;
    try {
      for (let i = 0; i < count; i++) {
        const chunk = await next!;
        next = i + 1 < count ? this.readChunk(entry, i + 1, step, bufferFor) : undefined;
        yield chunk;
      }
    } finally {
      // A consumer that stops early must not leave a read running into a buffer or a closing file.
      await next?.catch(() => {});
    }
  }

  /** Starts reading chunk `index` of `entry`; the promise is pre-handled so a failure waits for its `await`. */
  private readChunk(entry: TensorEntry, index: number, step: number, bufferFor: (index: number, length: number) => Uint8Array): Promise<Uint8Array> {
    const begin = index * step;
    const chunk = bufferFor(index, Math.min(step, entry.byteLength - begin));
    const read = readExactly(this.handle, chunk, entry.offset + begin, this.path, `tensor "${entry.key}"`).then(() => chunk);
    read.catch(() => {});
    return read;
  }

  /** Reads a whole tensor into one fresh (element-aligned) buffer; meant for small tensors. */
  async readAll(entry: TensorEntry): Promise<Uint8Array> {
    this.checkOwned(entry);
    const bytes = new Uint8Array(entry.byteLength);
    await readExactly(this.handle, bytes, entry.offset, this.path, `tensor "${entry.key}"`);
    return bytes;
  }

  /** Reads an F32/F16/BF16 tensor as float32 values; other dtypes are a CheckpointError. */
  async readAsFloat32(entry: TensorEntry): Promise<Float32Array> {
    this.checkOwned(entry);
    assertLittleEndian();
    if (entry.dtype === 'F32') {
      const bytes = await this.readAll(entry);
      return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    }
    if (entry.dtype !== 'F16' && entry.dtype !== 'BF16') {
      throw new CheckpointError(
        `${this.path}: tensor "${entry.key}" is ${entry.dtype}; only F32, F16 and BF16 can be read as float32`,
      );
    }
    // Convert chunk by chunk straight into the result, so the 16-bit copy never exists whole.
    const widen = entry.dtype === 'F16' ? f16ToF32 : bf16ToF32;
    const out = new Float32Array(entry.byteLength / 2);
    let written = 0;
    for await (const chunk of this.chunks(entry, DEFAULT_CHUNK_BYTES, { reuseBuffer: true })) {
      const halves = new Uint16Array(chunk.buffer, chunk.byteOffset, chunk.byteLength / 2);
      widen(halves, out.subarray(written, written + halves.length));
      written += halves.length;
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }

  /** Entries carry absolute offsets; using one from another file would read garbage silently. */
  private checkOwned(entry: TensorEntry): void {
    if (this.entries.get(entry.key) !== entry) {
      throw new Error(`tensor entry "${entry.key}" (${entry.file}) does not belong to ${this.path}`);
    }
    if (this.closed) throw new Error(`${this.path} is closed`);
  }
}

// ---------------------------------------------------------------------------------------------
// Header parsing

async function readHeaderLength(handle: FileHandle, path: string, size: number): Promise<number> {
  if (size < 8) {
    throw new CheckpointError(`${path}: file is ${size} bytes, too short to hold the 8-byte header length`);
  }
  const prefix = new Uint8Array(8);
  await readExactly(handle, prefix, 0, path, 'header length');
  const length = new DataView(prefix.buffer).getBigUint64(0, true);
  if (length === 0n) throw new CheckpointError(`${path}: header length is 0`);
  if (length > BigInt(MAX_HEADER_BYTES)) {
    throw new CheckpointError(`${path}: header length ${length} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const n = Number(length);
  if (8 + n > size) {
    throw new CheckpointError(`${path}: header length ${n} runs past the end of the file (${size} bytes)`);
  }
  return n;
}

function parseHeaderJson(bytes: Uint8Array, path: string): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new CheckpointError(`${path}: header is not valid UTF-8`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new CheckpointError(`${path}: header is not valid JSON (${errorText(err)})`);
  }
  if (!isPlainObject(parsed)) throw new CheckpointError(`${path}: header must be a JSON object, got ${describeJson(parsed)}`);
  const duplicate = firstDuplicateKey(text);
  if (duplicate !== undefined) throw new CheckpointError(`${path}: header has the key "${duplicate}" twice (duplicate tensor keys are not allowed)`);
  return parsed;
}

function parseMetadata(raw: unknown, path: string): Record<string, string> {
  if (raw === undefined) return {};
  if (!isPlainObject(raw)) throw new CheckpointError(`${path}: ${METADATA_KEY} must be an object, got ${describeJson(raw)}`);
  for (const [key, value] of Object.entries(raw)) {
    if (typeof value !== 'string') {
      throw new CheckpointError(`${path}: ${METADATA_KEY} "${key}" must be a string, got ${describeJson(value)}`);
    }
  }
  return raw as Record<string, string>;
}

function parseEntries(
  header: Record<string, unknown>,
  path: string,
  dataStart: number,
  dataLength: number,
): Map<string, TensorEntry> {
  const entries = new Map<string, TensorEntry>();
  const ranges: { key: string; begin: number; end: number }[] = [];
  for (const [key, raw] of Object.entries(header)) {
    if (key === METADATA_KEY) continue;
    const where = `${path}: tensor "${key}"`;
    const { dtype, shape, begin, end } = parseEntryFields(raw, where);
    if (end > dataLength) {
      throw new CheckpointError(
        `${where}: data_offsets [${begin}, ${end}] run past the data section, which holds ${dataLength} bytes`,
      );
    }
    const needed = elementCount(shape) * stDTypeSize(dtype);
    if (end - begin !== needed) {
      throw new CheckpointError(
        `${where}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but shape [${shape.join(',')}] x ${dtype} needs ${needed}`,
      );
    }
    entries.set(key, { key, dtype, shape, file: path, offset: dataStart + begin, byteLength: needed });
    ranges.push({ key, begin, end });
  }
  checkContiguous(ranges, path, dataLength);
  return entries;
}
function parseEntryFields(raw: unknown, where: string): { dtype: StDType; shape: number[]; begin: number; end: number } {
  if (!isPlainObject(raw)) throw new CheckpointError(`${where}: entry must be an object, got ${describeJson(raw)}`);
  for (const field of ENTRY_FIELDS) {
    if (!Object.hasOwn(raw, field)) throw new CheckpointError(`${where}: missing field "${field}"`);
  }
  for (const field of Object.keys(raw)) {
    if (!(ENTRY_FIELDS as readonly string[]).includes(field)) {
      throw new CheckpointError(`${where}: unexpected field "${field}" (expected exactly ${ENTRY_FIELDS.join(', ')})`);
    }
  }
  const { dtype, shape, data_offsets: offsets } = raw;
  if (typeof dtype !== 'string' || !isStDType(dtype)) {
    throw new CheckpointError(`${where}: unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(ST_DTYPES).join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every(isNonNegativeSafeInteger)) {
    throw new CheckpointError(`${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeSafeInteger) || offsets[0] > offsets[1]) {
    throw new CheckpointError(
      `${where}: data_offsets must be [begin, end] with integers 0 <= begin <= end, got ${JSON.stringify(offsets)}`,
    );
  }
  return { dtype, shape, begin: offsets[0], end: offsets[1] };
}

/**
 * As the reference library (safetensors `Metadata::validate`) requires: sorted by offsets, the
 * tensors tile the data section exactly, from byte 0 to its end, with no gap and no overlap. A
 * header length that is a few bytes short (cutting only padding) leaves the data section longer
 * than the tensors cover, so it is refused here instead of every tensor being read shifted.
 */
function checkContiguous(ranges: { key: string; begin: number; end: number }[], path: string, dataLength: number): void {
  const sorted = [...ranges].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  let prev: { key: string; begin: number; end: number } | undefined;
  for (const cur of sorted) {
    if (cur.begin < expected && prev) {
      throw new CheckpointError(
        `${path}: tensor "${prev.key}" data_offsets [${prev.begin}, ${prev.end}] overlap tensor "${cur.key}" data_offsets [${cur.begin}, ${cur.end}]`,
      );
    }
    if (cur.begin !== expected) {
      throw new CheckpointError(
        `${path}: tensor "${cur.key}" data_offsets [${cur.begin}, ${cur.end}] leave a gap: the data must be contiguous and the previous tensor ends at byte ${expected}`,
      );
    }
    expected = cur.end;
    prev = cur;
  }
  if (expected !== dataLength) {
    throw new CheckpointError(
      `${path}: the tensors cover ${expected} bytes of data but the data section after the header holds ${dataLength} (is the header length at bytes 0-7 wrong, or the file padded or truncated?)`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

function freshBuffer(_index: number, length: number): Uint8Array {
  return new Uint8Array(length);
}

/**
 * Chunk i goes to buffer i % 2: the chunk read ahead never overwrites the one the caller holds, and
 * a reused chunk stays valid until the next one is requested.
 */
function alternating(buffers: ChunkBuffers): (index: number, length: number) => Uint8Array {
  return (index, length) => buffers.view(index % 2 === 0 ? 0 : 1, length);
}

async function readExactly(handle: FileHandle, into: Uint8Array, position: number, path: string, what: string): Promise<void> {
  let filled = 0;
  while (filled < into.byteLength) {
    const { bytesRead } = await handle.read(into, filled, into.byteLength - filled, position + filled);
    if (bytesRead === 0) {
      throw new CheckpointError(`${path}: file ended while reading ${what} (was it truncated after opening?)`);
    }
    filled += bytesRead;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isNonNegativeSafeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function describeJson(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
