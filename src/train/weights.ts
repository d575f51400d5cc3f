/** Reading bound parameters back out of an artifact's model.onnx.data. */
import { open } from 'node:fs/promises';
import * as nodePath from 'node:path';
import { UserError } from '../errors.ts';
import { DATA_FILE, type Manifest, type ManifestParameter } from '../artifact/format.ts';
import type { HostTensor } from '../runtime/session.ts';
import { bf16ToF32, f16ToF32 } from '../tensor/convert.ts';

/** A parameter's bound value as float32. */
export async function readBound(artifact: string, p: ManifestParameter): Promise<Float32Array> {
  const bytes = await readRange(nodePath.join(artifact, DATA_FILE), p.offset, p.length);
  if (p.dtype === 'float32') return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
  return p.dtype === 'float16' ? f16ToF32(halves) : bf16ToF32(halves);
}

export async function readRange(file: string, offset: number, length: number): Promise<Uint8Array> {
  const fh = await open(file, 'r');
  try {
    const buf = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) throw new UserError(`${file}: shorter than the manifest says`);
      done += bytesRead;
    }
    return buf;
  } finally {
    await fh.close();
  }
}

/** Feeds for the named trainable parameters of train.onnx: their bound weights, in the stored dtype's float32 value. */
export async function boundTrainableWeights(artifact: string, manifest: Manifest, names: string[]): Promise<Record<string, HostTensor>> {
  const trainable = new Set(manifest.train?.trainable.map((t) => t.name) ?? []);
  const byName = new Map(manifest.parameters.map((p) => [p.name, p]));
  const out: Record<string, HostTensor> = {};
  for (const name of names) {
    const p = byName.get(name);
    if (!p || !trainable.has(name)) continue;
    out[name] = { dtype: 'float32', shape: p.shape, data: await readBound(artifact, p) };
  }
  return out;
}
