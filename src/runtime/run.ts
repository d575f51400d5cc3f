/**
 * Running an artifact with onnxruntime-node (CPU here; the CUDA provider where installed):
 * safetensors in, safetensors out.
 */
import * as nodePath from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import type ort from 'onnxruntime-node';
import { UserError } from '../errors.ts';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../checkpoint/safetensors.ts';
import { MANIFEST_FILE, MODEL_FILE } from '../artifact/write.ts';
import type { Manifest } from '../artifact/manifest.ts';

export interface HostTensor {
  dtype: 'float32' | 'int64';
  shape: number[];
  data: Float32Array | BigInt64Array;
}

let ortModule: Promise<typeof ort> | undefined;

/**
 * onnxruntime-node, loaded on first use: loading it takes a few hundred ms, and everything that
 * imports the library (graph files import 'vlmc') would pay for it.
 */
export function loadOrt(): Promise<typeof ort> {
  // Its CommonJS exports arrive as `default` or, through tsx's interop, as named exports only.
  return (ortModule ??= import('onnxruntime-node').then((m) => (m.default ?? m) as typeof ort));
}

export function readManifest(artifactDir: string): Manifest {
  const file = nodePath.join(artifactDir, MANIFEST_FILE);
  if (!existsSync(file)) throw new UserError(`${artifactDir}: not a vlmc artifact (no ${MANIFEST_FILE})`);
  return JSON.parse(readFileSync(file, 'utf8')) as Manifest;
}

export async function openSession(artifactDir: string, providers: string[] = ['cpu']): Promise<ort.InferenceSession> {
  const model = nodePath.join(artifactDir, MODEL_FILE);
  if (!existsSync(model)) throw new UserError(`${artifactDir}: not a vlmc artifact (no ${MODEL_FILE})`);
  const { InferenceSession } = await loadOrt();
  // Parameters past select_layer are unused initializers by design; keep ORT quiet about them.
  try {
    return await InferenceSession.create(model, { executionProviders: providers, logSeverityLevel: 3 });
  } catch (e) {
    const missing = /Could not find an implementation for (\S+)/.exec((e as Error).message);
    if (!missing) throw e;
    // A --target gpu artifact may use kernels only other execution providers have (bf16 on CPU).
    const meta = existsSync(nodePath.join(artifactDir, MANIFEST_FILE)) ? readManifest(artifactDir).metadata : {};
    const built = meta['vlmc.target'] ? ` (built with --target ${meta['vlmc.target']}${meta['vlmc.compute_dtype'] ? `, computing in ${meta['vlmc.compute_dtype']}` : ''})` : '';
    throw new UserError(`${artifactDir}: execution provider ${providers.join(', ')} has no kernel for ${missing[1]}${built}; run it on an execution provider that has one (CUDA)`);
  }
}

/** One forward pass; returns every graph output. */
export async function run(session: ort.InferenceSession, inputs: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
  const { Tensor } = await loadOrt();
  const feeds: Record<string, ort.Tensor> = {};
  for (const name of session.inputNames) {
    const t = inputs[name];
    if (!t) throw new UserError(`missing input '${name}' (the graph takes ${session.inputNames.join(', ')})`);
    feeds[name] = new Tensor(t.dtype, t.data, feedShape(name, t.shape));
  }
  const results = await session.run(feeds);
  const out: Record<string, HostTensor> = {};
  for (const name of session.outputNames) {
    const r = results[name]!;
    out[name] = { dtype: r.type as HostTensor['dtype'], shape: [...r.dims], data: r.data as Float32Array | BigInt64Array };
  }
  return out;
}

/** InternVL's own code takes image_flags as [tiles, 1] and squeezes it; accept that layout too. */
function feedShape(name: string, shape: number[]): number[] {
  return name === 'image_flags' && shape.length === 2 && shape[1] === 1 ? [shape[0]!] : shape;
}

export async function readInputs(file: string): Promise<Record<string, HostTensor>> {
  const st = await SafetensorsFile.open(file);
  try {
    const out: Record<string, HostTensor> = {};
    for (const key of st.keys()) {
      const e = st.entry(key);
      const bytes = await st.readAll(e);
      if (e.dtype === 'I64') out[key] = { dtype: 'int64', shape: [...e.shape], data: new BigInt64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8) };
      else if (e.dtype === 'F32' || e.dtype === 'F16' || e.dtype === 'BF16') out[key] = { dtype: 'float32', shape: [...e.shape], data: await st.readAsFloat32(e) };
      else if (e.dtype === 'I32') out[key] = { dtype: 'int64', shape: [...e.shape], data: BigInt64Array.from(new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), (v) => BigInt(v)) };
      else throw new UserError(`${file}: input '${key}' has dtype ${e.dtype}; inputs must be F32 or I64`);
    }
    return out;
  } finally {
    await st.close();
  }
}

export async function writeOutputs(file: string, outputs: Record<string, HostTensor>): Promise<void> {
  const tensors: TensorToWrite[] = Object.entries(outputs).map(([name, t]) => ({
    name,
    dtype: t.dtype === 'int64' ? 'I64' : 'F32',
    shape: t.shape,
    data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
  }));
  await writeSafetensors(file, tensors);
}

/** `vlmc run`: artifact + inputs file -> outputs file. */
export async function runArtifact(artifactDir: string, inputsFile: string, outFile: string): Promise<Record<string, HostTensor>> {
  const { isSplitArtifact } = await import('../generate/pipeline.ts');
  if (isSplitArtifact(artifactDir)) {
    const { runSplit } = await import('../generate/session.ts');
    const outputs = await runSplit(artifactDir, await readInputs(inputsFile));
    await writeOutputs(outFile, outputs);
    return outputs;
  }
  const session = await openSession(artifactDir);
  try {
    const outputs = await run(session, await readInputs(inputsFile));
    await writeOutputs(outFile, outputs);
    return outputs;
  } finally {
    await session.release();
  }
}
