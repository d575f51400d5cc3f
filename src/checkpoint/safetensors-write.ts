/**
 * Safetensors writing: spec-conformant files with deterministic bytes (the reader is
 * safetensors.ts, which checks what this writes by the same rules).
 */
import { open as openFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { elementCount } from '../ir/dims.ts';
import { isStDType, stDTypeSize, type StDType } from '../tensor/convert.ts';
import { METADATA_KEY, isNonNegativeSafeInteger } from './safetensors.ts';

export interface TensorToWrite {
  name: string;
  dtype: StDType;
  shape: readonly number[];
  data: Uint8Array;
}

/**
 * Writes a spec-conformant safetensors file with deterministic bytes: keys sorted, tensors laid
 * out in key order, header padded with spaces so the data section starts 8-byte aligned. Written
 * to a temporary sibling and renamed, so readers never see a partial file.
 */
export async function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  const { sorted } = layout(tensors, metadata);
  await writeSafetensorsStreamed(path, sorted.map((t) => ({ ...t, chunks: async function* () { yield t.data; } })), metadata);
}

/** The bytes `writeSafetensors` would write, in memory (for small files written through writeFileAtomic). */
export function encodeSafetensors(tensors: readonly TensorToWrite[], metadata?: Readonly<Record<string, string>>): Uint8Array {
  const { sorted, header } = layout(tensors, metadata);
  const out = new Uint8Array(8 + header.byteLength + sorted.reduce((n, t) => n + t.data.byteLength, 0));
  new DataView(out.buffer).setBigUint64(0, BigInt(header.byteLength), true);
  out.set(header, 8);
  let at = 8 + header.byteLength;
  for (const t of sorted) {
    out.set(t.data, at);
    at += t.data.byteLength;
  }
  return out;
}

/** Tensors in key order, checked, and the padded header that describes them. */
function layout(tensors: readonly TensorToWrite[], metadata: Readonly<Record<string, string>> | undefined): { sorted: TensorToWrite[]; header: Uint8Array } {
  const sorted = [...tensors].sort((a, b) => compareStrings(a.name, b.name));
  checkTensorsToWrite(sorted);
  return { sorted, header: encodeHeader(sorted.map((t) => ({ ...t, byteLength: t.data.byteLength })), metadata) };
}

function checkTensorsToWrite(tensors: readonly TensorToWrite[]): void {
  for (let i = 0; i < tensors.length; i++) {
    const { name, dtype, shape, data } = tensors[i]!;
    if (name === METADATA_KEY) throw new Error(`tensor name "${METADATA_KEY}" is reserved`);
    if (i > 0 && tensors[i - 1]!.name === name) throw new Error(`duplicate tensor name "${name}"`);
    if (!isStDType(dtype)) throw new Error(`tensor "${name}": unknown dtype "${dtype}"`);
    if (shape.some((d) => !isNonNegativeSafeInteger(d))) throw new Error(`tensor "${name}": invalid shape [${shape.join(',')}]`);
    const needed = elementCount(shape) * stDTypeSize(dtype);
    if (data.byteLength !== needed) {
      throw new Error(`tensor "${name}": ${data.byteLength} bytes given but shape [${shape.join(',')}] x ${dtype} needs ${needed}`);
    }
  }
}

/** A tensor written from chunks as they come (a merged weight), so no tensor need be held whole. */
export interface StreamedTensor {
  name: string;
  dtype: StDType;
  shape: readonly number[];
  /** The tensor's bytes in order; together exactly shape x dtype size. */
  chunks(): AsyncIterable<Uint8Array>;
}

/**
 * writeSafetensors for tensors streamed chunk by chunk: the same deterministic layout (keys sorted,
 * header padded), written to a temporary sibling and renamed. Memory stays one chunk deep.
 */
export async function writeSafetensorsStreamed(path: string, tensors: readonly StreamedTensor[], metadata?: Readonly<Record<string, string>>): Promise<void> {
  const sorted = [...tensors].sort((a, b) => compareStrings(a.name, b.name));
  const sized = sorted.map((t) => ({ ...t, byteLength: elementCount(t.shape) * stDTypeSize(t.dtype) }));
  const header = encodeHeader(sized, metadata);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(header.byteLength), true);
  const tempPath = `${path}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  const handle = await openFile(tempPath, 'wx');
  try {
    await writeExactly(handle, prefix, 0);
    await writeExactly(handle, header, 8);
    let position = 8 + header.byteLength;
    for (const t of sized) {
      const start = position;
      for await (const chunk of t.chunks()) {
        await writeExactly(handle, chunk, position);
        position += chunk.byteLength;
      }
      if (position - start !== t.byteLength) throw new Error(`tensor "${t.name}": ${position - start} bytes streamed but shape [${t.shape.join(',')}] x ${t.dtype} needs ${t.byteLength}`);
    }
    await handle.datasync();
    await handle.close();
    await rename(tempPath, path);
  } catch (err) {
    await handle.close().catch(() => {});
    await unlink(tempPath).catch(() => {});
    throw err;
  }
}

/** Header JSON built by hand: JSON.stringify would hoist integer-like keys out of sorted order. */
function encodeHeader(sorted: readonly { name: string; dtype: StDType; shape: readonly number[]; byteLength: number }[], metadata?: Readonly<Record<string, string>>): Uint8Array {
  const members: string[] = [];
  if (metadata && Object.keys(metadata).length > 0) {
    const pairs = Object.keys(metadata)
      .sort(compareStrings)
      .map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`);
    members.push(`${JSON.stringify(METADATA_KEY)}:{${pairs.join(',')}}`);
  }
  let offset = 0;
  for (const t of sorted) {
    const end = offset + t.byteLength;
    const entry = `{"dtype":${JSON.stringify(t.dtype)},"shape":${JSON.stringify(t.shape)},"data_offsets":[${offset},${end}]}`;
    members.push(`${JSON.stringify(t.name)}:${entry}`);
    offset = end;
  }
  const json = new TextEncoder().encode(`{${members.join(',')}}`);
  const padded = new Uint8Array(Math.ceil(json.byteLength / 8) * 8).fill(0x20);
  padded.set(json);
  return padded;
}

async function writeExactly(handle: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let written = 0;
  while (written < data.byteLength) {
    const { bytesWritten } = await handle.write(data, written, data.byteLength - written, position + written);
    written += bytesWritten;
  }
}

/** Code-unit order, spelled out so sorting never depends on locale. */
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
