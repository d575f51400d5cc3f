/**
 * Every ONNX Runtime session vlmc creates is made here: an artifact's graphs for `vlmc run` and
 * `vlmc train`, the in-memory optimizer step, and a split artifact's vision / embedding / decoder
 * graphs for `vlmc generate`. So the session options, and the weight-prepacking choice in
 * particular, live in one place. Host tensors (the plain arrays the rest of vlmc passes around)
 * go in and come out of `run`.
 */
import * as nodePath from 'node:path';
import { existsSync } from 'node:fs';
import type ort from 'onnxruntime-node';
import { UserError } from '../errors.ts';
import { MODEL_FILE, peekManifest, storesQuantisedWeights, type Manifest } from '../artifact/format.ts';
import { refuseNonRegularFile } from '../fs/errors.ts';
import { providerFailure, providerList, runOnDevice, sessionOptionsFor, type ExecutionProvider } from './providers.ts';

export interface HostTensor {
  dtype: 'float32' | 'int64';
  shape: number[];
  data: Float32Array | BigInt64Array;
}

export type { ExecutionProvider } from './providers.ts';

export interface SessionOptions {
  /**
   * Execution provider (providers.ts): `cuda` where its libraries are installed, `webgpu` where
   * Vulkan has a device (a split decoder's KV cache then stays on the device between steps).
   */
  ep?: ExecutionProvider;
  /**
   * Let ORT repack weights for its GEMM kernels at session creation: `true` for every graph,
   * `false` for none. By default: a single graph only when its weights are quantised (see
   * `prepacksWeights`); a split artifact's decoder always and its other graphs never. A decode
   * step streams every decoder weight once per token, and the packed layout streams faster than
   * the M = 1 kernel over unpacked weights (MatMulNBits dequantises on every call without it);
   * the vision graph (always float) runs once per image, and its packed copy would cost seconds
   * at session creation and a second copy of its weights (docs/performance.md, "vlmc and mobius
   * side by side").
   */
  prepackWeights?: boolean;
  /** PEFT adapter folders fed to an artifact built with --lora-inputs (src/runtime/adapters.ts). */
  adapters?: readonly string[];
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

/**
 * The weight-prepacking policy. Off by default: ORT's repacked copy of every weight costs seconds
 * and a second copy in memory at session creation, while the unpacked weights stay mapped from
 * the data file (docs/performance.md, Inference). Quantised weights (MatMulNBits) keep it: their
 * kernel needs the repacked blocks to be fast (0.94 s instead of 0.03 s a decode step on the 1B
 * shape). `requested` is the caller's explicit choice (`SessionOptions.prepackWeights`).
 */
function prepacksWeights(manifest: Partial<Manifest> | undefined, requested?: boolean): boolean {
  return requested ?? storesQuantisedWeights(manifest);
}

/**
 * @param graph which of the artifact's graphs: `model` (model.onnx), `train` (train.onnx, from
 *   `vlmc build --train`), `optimizer` (optimizer.onnx).
 */
export async function openSession(artifactDir: string, providers: string[] = ['cpu'], graph = 'model'): Promise<ort.InferenceSession> {
  const file = graph === 'model' ? MODEL_FILE : `${graph}.onnx`;
  const model = nodePath.join(artifactDir, file);
  if (!existsSync(nodePath.join(artifactDir, MODEL_FILE))) throw new UserError(`${artifactDir}: not a vlmc artifact (no ${MODEL_FILE})`);
  if (!existsSync(model)) throw new UserError(`${artifactDir}: has no ${file}${graph === 'train' || graph === 'optimizer' ? ' (build it with vlmc build --train)' : ''}`);
  refuseNonRegularFile(model, 'the ONNX model');
  const manifest = peekManifest(artifactDir);
  refuseStructureOnly(artifactDir, manifest);
  const { InferenceSession } = await loadOrt();
  try {
    return await InferenceSession.create(model, sessionOptionsFor(providers, { prepackWeights: prepacksWeights(manifest), model }));
  } catch (e) {
    const failure = providerFailure(providers, e) ?? noKernelFailure(artifactDir, providers, e, manifest);
    if (failure) throw failure;
    // The file decoded and its external data checked out, so a model onnxruntime cannot load is a damaged input.
    throw new UserError(`${model}: onnxruntime cannot load the model (${(e as Error).message.split('\n')[0]})`);
  }
}

/**
 * A session-creation failure because no provider in `providers` has a kernel for one of the graph's
 * nodes (a --target gpu artifact may use kernels only other providers have: bf16 on the CPU or on
 * WebGPU), as a UserError naming the op; undefined for any other failure.
 */
function noKernelFailure(artifactDir: string, providers: readonly string[], err: unknown, manifest: Partial<Manifest> | undefined): UserError | undefined {
  const message = (err as Error)?.message ?? '';
  // The CPU alone says so; with another provider first, ORT fails when it places the node.
  const op = /Could not find an implementation for (\S+)/.exec(message)?.[1] ?? /Provider type for (\S+) node with name '[^']*' is not set/.exec(message)?.[1];
  if (!op) return undefined;
  const meta = manifest?.metadata ?? {};
  const built = meta['vlmc.target'] ? ` (built with --target ${meta['vlmc.target']}${meta['vlmc.compute_dtype'] ? `, computing in ${meta['vlmc.compute_dtype']}` : ''})` : '';
  return new UserError(`${artifactDir}: execution provider ${providers.join(', ')} has no kernel for ${op}${built}; run it on an execution provider that has one (CUDA)`);
}

/**
 * The sessions of a split artifact's graphs (`files`: graph -> file in `dir`), created one at a
 * time: together they would only compete for the same cores and disk. `deviceOutputs`: outputs of
 * a graph to leave on the device where the provider has one (the decoder's KV cache). `hot`: the
 * graph run once per token (the decoder); it alone prepacks its weights by default
 * (`SessionOptions.prepackWeights`) and keeps its pool threads spinning between runs.
 */
export async function openSplitSessions<K extends string>(
  dir: string,
  files: Record<K, string>,
  o: SessionOptions = {},
  deviceOutputs: Partial<Record<K, readonly string[]>> = {},
  hot?: NoInfer<K>,
): Promise<{ runtime: typeof ort; sessions: Record<K, ort.InferenceSession> }> {
  const manifest = peekManifest(dir);
  refuseStructureOnly(dir, manifest);
  const runtime = await loadOrt();
  const providers = providerList(runtime, o.ep ?? 'cpu');
  const sessions: Partial<Record<K, ort.InferenceSession>> = {};
  try {
    for (const [graph, file] of Object.entries(files) as [K, string][]) {
      const model = nodePath.join(dir, file);
      const prepackWeights = hot === undefined ? prepacksWeights(manifest, o.prepackWeights) : (o.prepackWeights ?? graph === hot);
      const spin = hot === undefined || graph === hot;
      sessions[graph] = await runtime.InferenceSession.create(model, sessionOptionsFor(providers, { prepackWeights, spin, model, deviceOutputs: deviceOutputs[graph] }));
    }
  } catch (err) {
    for (const s of Object.values(sessions) as ort.InferenceSession[]) await s.release();
    // An execution provider that is listed but cannot run here fails inside ORT.
    const failure = providerFailure(providers, err) ?? noKernelFailure(dir, providers, err, manifest);
    if (failure) throw failure;
    if (o.ep && o.ep !== 'cpu') throw new UserError(`--ep ${o.ep}: onnxruntime-node could not use it (${(err as Error).message.split('\n')[0]}); install its ${o.ep} provider libraries or use --ep cpu`);
    // Its files were checked (src/generate/split-files.ts), so a graph onnxruntime cannot load is damaged, as for a single graph.
    const failed = (Object.keys(files) as K[]).find((g) => !sessions[g]) ?? (Object.keys(files)[0] as K);
    throw new UserError(`${nodePath.join(dir, files[failed])}: onnxruntime cannot load the model (${(err as Error).message.split('\n')[0]}); the artifact is damaged, rebuild it`);
  }
  return { runtime, sessions: sessions as Record<K, ort.InferenceSession> };
}

/** A session over an in-memory model (graphs without external data, e.g. an optimizer step): nothing is mapped from a file, so ORT keeps its prepacking. */
export async function openSessionFromBytes(model: Uint8Array, providers: string[] = ['cpu']): Promise<ort.InferenceSession> {
  const { InferenceSession } = await loadOrt();
  try {
    return await InferenceSession.create(model, sessionOptionsFor(providers, { prepackWeights: true }));
  } catch (e) {
    throw providerFailure(providers, e) ?? e;
  }
}

/** A structure-only artifact (built without weights or `--init random`) holds no values to run. */
export function refuseStructureOnly(artifactDir: string, manifest: Partial<Manifest> | undefined): void {
  if (manifest?.build?.structure_only === true) {
    throw new UserError(`${artifactDir}: a structure-only artifact (built without weights), it has no values to run; rebuild it with --weights <dir>, --vision <dir> --llm <dir>, or --init random`);
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
  const results = await runOnDevice(session, feeds);
  const out: Record<string, HostTensor> = {};
  for (const name of session.outputNames) out[name] = toHost(results[name]!);
  return out;
}

/** InternVL's own code takes image_flags as [tiles, 1] and squeezes it; accept that layout too. */
function feedShape(name: string, shape: number[]): number[] {
  return name === 'image_flags' && shape.length === 2 && shape[1] === 1 ? [shape[0]!] : shape;
}

/** A host tensor's copy of an ORT tensor. */
export function toHost(t: ort.Tensor): HostTensor {
  return { dtype: t.type as HostTensor['dtype'], shape: [...t.dims], data: t.data as Float32Array | BigInt64Array };
}
