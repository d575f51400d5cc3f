/**
 * The benchmarks' request: one 448 tile and PROMPT_TOKENS prompt tokens around its image block
 * (64 + 258 = 322 tokens on the InternVL2-1B shape), seeded, written as a `vlmc inputs` file.
 */
import type { InternVLChatModel } from '../src/models/internvl.ts';
import { writeSafetensors } from '../src/checkpoint/safetensors-write.ts';

export const PROMPT_TOKENS = 64;

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

/** Writes pixel_values, input_ids, image_flags and attention_mask to `file`; returns the sequence length. */
export async function writeInputs(model: InternVLChatModel, file: string): Promise<number> {
  const r = seeded(7);
  const size = model.options.imageSize;
  const pixels = Float32Array.from({ length: 3 * size * size }, () => r() * 4 - 2);
  const ctx = model.options.imgContextTokenId!;
  const text = () => BigInt(1000 + Math.floor(r() * 100_000));
  const before = 8;
  const ids = [
    ...Array.from({ length: before }, text),
    BigInt(ctx - 2), // <img>
    ...Array.from({ length: model.tokensPerTile }, () => BigInt(ctx)),
    BigInt(ctx - 1), // </img>
    ...Array.from({ length: PROMPT_TOKENS - before }, text),
  ];
  const bytes = (a: Float32Array | BigInt64Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  await writeSafetensors(file, [
    { name: 'pixel_values', dtype: 'F32', shape: [1, 3, size, size], data: bytes(pixels) },
    { name: 'input_ids', dtype: 'I64', shape: [1, ids.length], data: bytes(BigInt64Array.from(ids)) },
    { name: 'image_flags', dtype: 'I64', shape: [1], data: bytes(BigInt64Array.of(1n)) },
    { name: 'attention_mask', dtype: 'I64', shape: [1, ids.length], data: bytes(new BigInt64Array(ids.length).fill(1n)) },
  ]);
  return ids.length;
}
