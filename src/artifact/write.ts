/**
 * Checkpoint -> artifact: streams every parameter into `model.onnx.data` (bounded chunks, converted
 * to the stored dtype on the way, aligned offsets, sha256 per tensor), then writes `model.onnx`
 * and `manifest.json`, all inside a temporary folder that is renamed into place at the end.
 */
import { createHash } from 'node:crypto';
import { open, writeFile, type FileHandle } from 'node:fs/promises';
import * as nodePath from 'node:path';
import type { ParamDType } from '../ir/dtype.ts';
import type { Graph } from '../ir/graph.ts';
import type { BindPlan, BoundParam } from '../bind/plan.ts';
import { initialValues } from '../bind/init.ts';
import { convertChunk, type FloatStDType } from '../tensor/convert.ts';
import { DEFAULT_CHUNK_BYTES } from '../checkpoint/safetensors.ts';
import { buildModelProto, encodeModel, type ExternalWeights } from '../onnx/emit.ts';
import { withTempSibling } from './atomic.ts';
import { MANIFEST_FORMAT, manifestJson, type Manifest, type ManifestParameter } from './manifest.ts';
import { VLMC_VERSION } from '../version.ts';

export const MODEL_FILE = 'model.onnx';
export const DATA_FILE = 'model.onnx.data';
export const MANIFEST_FILE = 'manifest.json';

const ST_OF: Record<ParamDType, FloatStDType> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };
const BYTES: Record<ParamDType, number> = { float32: 4, float16: 2, bfloat16: 2 };

export interface WriteOptions {
  dtype: ParamDType;
  /** Called as bytes are written: (written, total). */
  onProgress?: (written: number, total: number) => void;
}

/** Large tensors start on a page boundary so runtimes can map them; small ones on 64 bytes. */
function alignment(length: number): number {
  return length >= 65536 ? 4096 : 64;
}

export async function writeArtifact(outDir: string, graph: Graph, plan: BindPlan, options: WriteOptions): Promise<Manifest> {
  return withTempSibling(outDir, async (tmp) => {
    const entries: ExternalWeights['entries'] = new Map();
    const total = plan.params.reduce((n, b) => n + elementCount(b.param.shape) * BYTES[options.dtype], 0);
    const params: ManifestParameter[] = [];
    const data = await open(nodePath.join(tmp, DATA_FILE), 'w');
    try {
      let offset = 0;
      let written = 0;
      for (const bound of plan.params) {
        const length = elementCount(bound.param.shape) * BYTES[options.dtype];
        offset = Math.ceil(offset / alignment(length)) * alignment(length);
        const sha256 = await writeParam(data, offset, bound, plan.seed, options.dtype, (n) => {
          written += n;
          options.onProgress?.(written, total);
        });
        entries.set(bound.param.name, { offset, length, dtype: options.dtype });
        params.push(manifestParam(bound, options.dtype, sha256, offset, length, plan.seed));
        offset += length;
      }
    } finally {
      await data.close();
    }
    const proto = buildModelProto(graph, { location: DATA_FILE, entries }, { producerVersion: VLMC_VERSION });
    await writeFile(nodePath.join(tmp, MODEL_FILE), encodeModel(proto));
    const manifest = buildManifest(graph, plan, options.dtype, params);
    await writeFile(nodePath.join(tmp, MANIFEST_FILE), manifestJson(manifest));
    return manifest;
  });
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Streams one parameter's bytes to `offset`; returns their sha256. */
async function writeParam(file: FileHandle, offset: number, bound: BoundParam, seed: number, dtype: ParamDType, progress: (n: number) => void): Promise<string> {
  const hash = createHash('sha256');
  let pos = offset;
  for await (const chunk of paramChunks(bound, seed, dtype)) {
    hash.update(chunk);
    await writeFully(file, chunk, pos);
    pos += chunk.byteLength;
    progress(chunk.byteLength);
  }
  return hash.digest('hex');
}

async function* paramChunks(bound: BoundParam, seed: number, dtype: ParamDType): AsyncGenerator<Uint8Array> {
  const target = ST_OF[dtype];
  const { origin, param } = bound;
  if (origin.kind === 'init') {
    const values = initialValues(param.init, elementCount(param.shape), seed, param.name);
    yield convertChunk(new Uint8Array(values.buffer), 'F32', target);
    return;
  }
  const ckpt = origin.source.checkpoint;
  const src = ckpt.entry(origin.key).dtype as FloatStDType;
  let scratch: Uint8Array | undefined;
  for await (const chunk of ckpt.chunks(origin.key, DEFAULT_CHUNK_BYTES, { reuseBuffer: true })) {
    const outBytes = (chunk.byteLength / BYTES[stToParam(src)]) * BYTES[dtype];
    if (src !== target && (!scratch || scratch.byteLength < outBytes)) scratch = new Uint8Array(outBytes);
    yield src === target ? chunk : convertChunk(chunk, src, target, scratch!.subarray(0, outBytes));
  }
}

function stToParam(st: FloatStDType): ParamDType {
  return st === 'F32' ? 'float32' : st === 'F16' ? 'float16' : 'bfloat16';
}

async function writeFully(file: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await file.write(bytes, done, bytes.byteLength - done, position + done);
    done += bytesWritten;
  }
}

function manifestParam(bound: BoundParam, dtype: ParamDType, sha256: string, offset: number, length: number, seed: number): ManifestParameter {
  const { param, origin } = bound;
  const source =
    origin.kind === 'init'
      ? { init: param.init.kind, seed }
      : {
          role: origin.source.role,
          file: nodePath.relative(origin.source.checkpoint.dir, origin.source.checkpoint.entry(origin.key).file),
          key: origin.key,
          dtype: origin.source.checkpoint.entry(origin.key).dtype,
        };
  return { name: param.name, key: param.name, shape: [...param.shape], dtype, trainable: param.trainable, source, sha256, offset, length };
}

function buildManifest(graph: Graph, plan: BindPlan, dtype: ParamDType, parameters: ManifestParameter[]): Manifest {
  const count = (ps: ManifestParameter[]) => ps.reduce((n, p) => n + elementCount(p.shape), 0);
  return {
    format: MANIFEST_FORMAT,
    model: graph.name,
    vlmc_version: VLMC_VERSION,
    build: {
      path: plan.path,
      seed: plan.seed,
      dtype,
      opset: graph.opset,
      sources: plan.sources.map((s) => ({
        role: s.role,
        config_sha256: s.checkpoint.configHash,
        files: s.checkpoint.files.map((f) => nodePath.relative(s.checkpoint.dir, f.path)).sort(),
      })),
    },
    inputs: graph.inputs.map((v) => ({ name: v.name!, dtype: v.dtype, shape: [...v.shape] })),
    outputs: graph.outputs.map((v) => ({ name: v.name!, dtype: v.dtype, shape: [...v.shape] })),
    metadata: graph.metadata,
    counts: { total: count(parameters), trainable: count(parameters.filter((p) => p.trainable)) },
    parameters,
  };
}
