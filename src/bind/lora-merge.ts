/**
 * Merging LoRA into a base weight while it streams: W' = W + scaling * B @ A, as PEFT's merge and
 * InternVL's tools/merge_lora.py compute it. Each row of B @ A is computed once, in float64, when
 * the stream reaches that row; W' is rounded once to float32 (then to the stored dtype, if that is
 * half). So a float32 merge is W + scaling * B A exact up to that one rounding (and the float64
 * summation order of the r products), whatever the chunk boundaries.
 */
import type { Checkpoint } from '../checkpoint/checkpoint.ts';
import { convertChunk, type FloatStDType } from '../tensor/convert.ts';

/** W's elements in row-major order, merged with scaling * B @ A as they arrive. */
export class LoraMerger {
  private done = 0;
  private row = -1;
  private readonly delta: Float64Array;

  constructor(
    /** lora_A [r, in], row-major. */
    private readonly a: Float32Array,
    /** lora_B [out, r], row-major. */
    private readonly b: Float32Array,
    private readonly r: number,
    private readonly inFeatures: number,
    private readonly scaling: number,
  ) {
    this.delta = new Float64Array(inFeatures);
  }

  /** Merges the next elements of W in place. */
  push(w: Float32Array): void {
    let i = 0;
    while (i < w.length) {
      const row = Math.floor(this.done / this.inFeatures);
      const col = this.done - row * this.inFeatures;
      if (row !== this.row) this.computeRow(row);
      const n = Math.min(w.length - i, this.inFeatures - col);
      const d = this.delta;
      for (let j = 0; j < n; j++) w[i + j] = w[i + j]! + d[col + j]!;
      i += n;
      this.done += n;
    }
  }

  /** delta = scaling * B[row, :] @ A, in float64. */
  private computeRow(row: number): void {
    const { a, b, r, inFeatures, delta } = this;
    delta.fill(0);
    for (let k = 0; k < r; k++) {
      const bk = b[row * r + k]!;
      if (bk === 0) continue;
      const base = k * inFeatures;
      for (let c = 0; c < inFeatures; c++) delta[c]! += bk * a[base + c]!;
    }
    if (this.scaling !== 1) for (let c = 0; c < inFeatures; c++) delta[c]! *= this.scaling;
    this.row = row;
  }
}

/** Where a merged weight's three tensors are. */
export interface LoraMergeInputs {
  base: { checkpoint: Checkpoint; keys: string[] };
  a: { checkpoint: Checkpoint; key: string };
  b: { checkpoint: Checkpoint; key: string };
  scaling: number;
}

/**
 * The merged weight's bytes in `target`, chunk by chunk (each a fresh buffer). The base is read in
 * `chunkBytes` chunks, so memory stays bounded whatever its size; lora_A and lora_B are read whole
 * (r rows or columns).
 */
export async function* mergedLoraChunks(m: LoraMergeInputs, target: FloatStDType, chunkBytes: number): AsyncGenerator<Uint8Array> {
  const aEntry = m.a.checkpoint.entry(m.a.key);
  const [r, inFeatures] = aEntry.shape as [number, number];
  const merger = new LoraMerger(await m.a.checkpoint.readAsFloat32(m.a.key), await m.b.checkpoint.readAsFloat32(m.b.key), r, inFeatures, m.scaling);
  for (const key of m.base.keys) {
    const src = m.base.checkpoint.entry(key).dtype as FloatStDType;
    for await (const chunk of m.base.checkpoint.chunks(key, chunkBytes)) {
      // A copy in float32: the reader's chunk is not ours to change.
      const f32 = src === 'F32' ? new Float32Array(chunk.slice().buffer) : new Float32Array(convertChunk(chunk, src, 'F32').buffer);
      merger.push(f32);
      yield convertChunk(new Uint8Array(f32.buffer), 'F32', target);
    }
  }
}
