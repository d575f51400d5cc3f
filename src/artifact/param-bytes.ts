/**
 * Where one bound parameter's bytes come from, in the stored dtype, chunk by chunk: a checkpoint
 * tensor (converted on the way, or passed through in the reader's own buffer), several concatenated,
 * a LoRA merge, an MXFP4 pair dequantised, or initial values. The writer (write.ts) streams them.
 */
import { DTYPES, type ParamDType } from '../ir/dtype.ts';
import { elementCount } from '../ir/dims.ts';
import type { BoundParam } from '../bind/plan.ts';
import { initialValues } from '../bind/init.ts';
import { convertChunk, stDTypeSize, type ConvertArena, type FloatStDType } from '../tensor/convert.ts';
import type { ChunkBuffers } from '../checkpoint/safetensors.ts';
import { mergedLoraChunks, type LoraMergeInputs } from '../bind/lora-merge.ts';
import type { LoraMergeOrigin, PackedOrigin } from '../bind/source.ts';
import { dequantizeMxfp4Expert, MXFP4_BLOCK } from '../quant/mxfp4.ts';

/**
 * Bytes read per chunk while binding. Small enough that a chunk stays in cache from read through
 * conversion, hashing and write (bench/bind: 1 MiB beat 4 and 16 MiB clearly), large enough that
 * per-chunk overhead is negligible.
 */
const BIND_CHUNK_BYTES = 1024 * 1024;

const ST_OF: Record<ParamDType, FloatStDType> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };

/** Reused across all parameters of one artifact, so streaming allocates only while buffers grow. */
export interface StreamBuffers {
  read: ChunkBuffers;
  /** Conversion outputs, taken in turn (the writer's ring: a buffer is reused once its chunk is written). */
  converted: { take(bytes: number): Uint8Array };
  /** Where both of the above allocate, and what converts between them. */
  arena: ConvertArena;
}

export interface ParamChunk {
  bytes: Uint8Array;
  /** The checkpoint reader's own buffer, valid only until the next chunk is requested. */
  borrowed: boolean;
}

export async function* paramChunks(bound: BoundParam, seed: number, dtype: ParamDType, buffers: StreamBuffers): AsyncGenerator<ParamChunk> {
  const target = ST_OF[dtype];
  const { origin, param } = bound;
  if (origin.kind === 'init') {
    // A packed parameter takes its parts' values, each drawn from its own stream as when unpacked.
    for (const part of param.packs ?? [{ name: param.sourceName ?? param.name, shape: param.shape, init: param.init }]) {
      const values = initialValues(part.init, elementCount(part.shape), seed, part.name);
      yield { bytes: convertChunk(new Uint8Array(values.buffer), 'F32', target), borrowed: false };
    }
    return;
  }
  if (origin.kind === 'lora-merge') {
    for await (const bytes of mergedLoraChunks(loraMergeInputs(origin), target, BIND_CHUNK_BYTES)) yield { bytes, borrowed: false };
    return;
  }
  if (origin.kind === 'packed') {
    for await (const values of dequantizedChunks(origin)) yield { bytes: convertChunk(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), 'F32', target), borrowed: false };
    return;
  }
  const ckpt = origin.source.checkpoint;
  // Concatenation along axis 0 of row-major tensors is their bytes one after another.
  for (const key of origin.kind === 'concat' ? origin.keys : [origin.key]) {
    const src = ckpt.entry(key).dtype as FloatStDType;
    for await (const chunk of ckpt.chunks(key, BIND_CHUNK_BYTES, { reuseBuffer: true, buffers: buffers.read })) {
      if (src === target) {
        yield { bytes: chunk, borrowed: true };
        continue;
      }
      const outBytes = (chunk.byteLength / stDTypeSize(src)) * DTYPES[dtype].bytes;
      yield { bytes: buffers.arena.convert(chunk, src, target, buffers.converted.take(outBytes)), borrowed: false };
    }
  }
}

/** An MXFP4 pair dequantised one expert at a time (one expert of GPT-OSS-120B: 66 MB as fp32). */
async function* dequantizedChunks(origin: PackedOrigin): AsyncGenerator<Float32Array> {
  const ckpt = origin.source.checkpoint;
  const [experts, rows, groups] = ckpt.entry(origin.packed.blocks).shape as [number, number, number, number];
  const scales = await ckpt.readAll(origin.packed.scales);
  const perExpert = rows * groups * (MXFP4_BLOCK / 2);
  let e = 0;
  for await (const chunk of ckpt.chunks(origin.packed.blocks, perExpert)) {
    // Chunks come in the requested size, so each is one expert's blocks.
    if (chunk.byteLength !== perExpert) throw new Error(`${origin.packed.blocks}: a chunk of ${chunk.byteLength} bytes, not one expert's ${perExpert}`);
    yield dequantizeMxfp4Expert(chunk, scales.subarray(e * rows * groups, (e + 1) * rows * groups), rows, groups);
    e++;
  }
  if (e !== experts) throw new Error(`${origin.packed.blocks}: read ${e} of ${experts} experts`);
}

function loraMergeInputs(m: LoraMergeOrigin): LoraMergeInputs {
  const base = m.base;
  return {
    base: { checkpoint: base.source.checkpoint, keys: base.kind === 'concat' ? base.keys : [base.key] },
    a: { checkpoint: m.a.source.checkpoint, key: m.a.key },
    b: { checkpoint: m.b.source.checkpoint, key: m.b.key },
    scaling: m.scaling,
  };
}
