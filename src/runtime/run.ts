/**
 * Running an artifact with onnxruntime-node (CPU here; the CUDA provider where installed):
 * safetensors in, safetensors out.
 */
import * as nodePath from 'node:path';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { makeFolders } from '../artifact/atomic.ts';
import type ort from 'onnxruntime-node';
import { UserError } from '../errors.ts';
import { SafetensorsFile } from '../checkpoint/safetensors.ts';
import { writeSafetensors, type TensorToWrite } from '../checkpoint/safetensors-write.ts';
import { DATA_FILE, MANIFEST_FILE, MODEL_FILE } from '../artifact/write.ts';
import { peekManifest, storesQuantisedWeights, type Manifest } from '../artifact/manifest.ts';
import { checkDataAgainstManifest, checkDeclaredInputs, checkFiniteFloats, checkInputValues, type DeclaredTensor } from './check-inputs.ts';
import { checkExternalReferences } from '../review/onnx.ts';
import { checkOutputPath, resultMetadata } from '../artifact/output-path.ts';
import { explainFs, refuseNonRegularFile } from '../artifact/fs-errors.ts';

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
  refuseNonRegularFile(file, 'the artifact manifest');
  let m: Partial<Manifest> | null;
  try {
    m = JSON.parse(readFileSync(file, 'utf8')) as Partial<Manifest> | null;
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (!m || typeof m !== 'object' || !Array.isArray(m.inputs) || !Array.isArray(m.outputs) || typeof m.metadata !== 'object' || m.metadata === null) {
    throw new UserError(`${file}: not a vlmc manifest (inputs, outputs and metadata are missing)`);
  }
  return m as Manifest;
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
  // Parameters past select_layer are unused initializers by design; keep ORT quiet about them.
  try {
    // No weight prepacking: ORT's repacked copy of every weight cost seconds and a second copy in
    // memory at session creation; unpacked, the weights stay mapped from the data file.
    // Quantised weights (MatMulNBits) keep it: their kernel needs the repacked blocks to be fast.
    const prepack = storesQuantisedWeights(manifest);
    return await InferenceSession.create(model, { executionProviders: providers, logSeverityLevel: 3, ...(prepack ? {} : { extra: { session: { disable_prepacking: '1' } } }) });
  } catch (e) {
    const missing = /Could not find an implementation for (\S+)/.exec((e as Error).message);
    if (missing) {
      // A --target gpu artifact may use kernels only other execution providers have (bf16 on CPU).
      const meta = manifest?.metadata ?? {};
      const built = meta['vlmc.target'] ? ` (built with --target ${meta['vlmc.target']}${meta['vlmc.compute_dtype'] ? `, computing in ${meta['vlmc.compute_dtype']}` : ''})` : '';
      throw new UserError(`${artifactDir}: execution provider ${providers.join(', ')} has no kernel for ${missing[1]}${built}; run it on an execution provider that has one (CUDA)`);
    }
    // The file decoded and its external data checked out, so a model onnxruntime cannot load is a damaged input.
    throw new UserError(`${model}: onnxruntime cannot load the model (${(e as Error).message.split('\n')[0]})`);
  }
}

/** A structure-only artifact (built without weights or `--init random`) holds no values to run. */
export function refuseStructureOnly(artifactDir: string, manifest: Partial<Manifest> | undefined): void {
  if (manifest?.build?.structure_only === true) {
    throw new UserError(`${artifactDir}: a structure-only artifact (built without weights), it has no values to run; rebuild it with --weights <dir>, --vision <dir> --llm <dir>, or --init random`);
  }
}

/** A session over an in-memory model (graphs without external data, e.g. an optimizer step). */
export async function openSessionFromBytes(model: Uint8Array, providers: string[] = ['cpu']): Promise<ort.InferenceSession> {
  const { InferenceSession } = await loadOrt();
  return InferenceSession.create(model, { executionProviders: providers, logSeverityLevel: 3 });
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

/** Reads the tensors of `file` (only those named in `names` when given; extra tensors are ignored). */
export async function readInputs(file: string, names?: readonly string[], check?: (declared: ReadonlyMap<string, DeclaredTensor>) => void): Promise<Record<string, HostTensor>> {
  const st = await SafetensorsFile.open(file);
  try {
    check?.(st.entries);
    const out: Record<string, HostTensor> = {};
    for (const key of names ? names.filter((n) => st.has(n)) : st.keys()) {
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
  await explainFs(file, async () => {
    await makeFolders(nodePath.dirname(nodePath.resolve(file)));
    await writeSafetensors(file, tensors, resultMetadata('outputs'));
  });
}

/**
 * A graph without image_flags (transformers' InternVL) uses every tile, so the `<IMG_CONTEXT>`
 * tokens must number tiles x tokens per tile exactly, as transformers requires; otherwise the splice
 * would silently drop or repeat image features.
 */
export function checkImageTokenCount(manifest: Manifest, inputs: Record<string, HostTensor>, where: string): void {
  if (manifest.inputs.some((i) => i.name === 'image_flags')) return;
  const id = Number(manifest.metadata['vlmc.img_context_token_id']);
  const perTile = Number(manifest.metadata['vlmc.tokens_per_tile']);
  const ids = inputs['input_ids'];
  const pixels = inputs['pixel_values'];
  if (!ids || !pixels || !Number.isFinite(perTile) || manifest.metadata['vlmc.img_context_token_id'] === '') return;
  const want = BigInt(id);
  let count = 0;
  for (const v of ids.data as BigInt64Array) if (v === want) count++;
  const tiles = pixels.shape[0] ?? 0;
  if (count !== tiles * perTile) {
    throw new UserError(`${where}: input_ids hold ${count} <IMG_CONTEXT> tokens (id ${id}), but pixel_values has ${tiles} tile${tiles === 1 ? '' : 's'} x ${perTile} tokens = ${tiles * perTile}; this graph uses every tile (no image_flags)`);
  }
}

/** `vlmc run` on a split artifact: vision, embedding, then one decoder prefill with full logits. */
async function runSplitArtifact(artifactDir: string, manifest: Manifest, inputsFile: string, outFile: string, graph: string, adapters: readonly string[]): Promise<Record<string, HostTensor>> {
  if (graph !== 'model') throw new UserError(`--graph ${graph}: ${artifactDir} is a split artifact (vision, embedding, decoder); build with --train, without --split, for training graphs`);
  const inputs = await readInputs(inputsFile, manifest.inputs.map((i) => i.name), (declared) => checkDeclaredInputs(inputsFile, manifest, declared));
  checkInputValues(inputsFile, manifest, inputs.input_ids?.data as BigInt64Array | undefined, inputs.image_flags?.data as BigInt64Array | undefined);
  checkImageTokenCount(manifest, inputs, inputsFile);
  checkFiniteFloats(inputsFile, inputs);
  const { runSplit } = await import('../generate/session.ts');
  const outputs = await runSplit(artifactDir, inputs, { adapters });
  await writeOutputs(outFile, outputs);
  return outputs;
}

/**
 * `vlmc run`: artifact + inputs file -> outputs file. `adapters`: PEFT adapter folders fed to an
 * artifact built with --lora-inputs (src/runtime/adapters.ts).
 */
export async function runArtifact(artifactDir: string, inputsFile: string, outFile: string, graph = 'model', adapters: readonly string[] = []): Promise<Record<string, HostTensor>> {
  checkOutputPath(outFile, { kind: 'result', content: 'outputs', flag: '--out', inputs: [artifactDir, inputsFile, ...adapters] });
  const { adapterFeeds, dataInputs } = await import('./adapters.ts');
  const full = readManifest(artifactDir);
  // Adapter inputs come from --adapter folders, not from the inputs file.
  const manifest = { ...full, inputs: dataInputs(full.inputs) };
  const { isSplitArtifact } = await import('../generate/pipeline.ts');
  if (isSplitArtifact(artifactDir)) return runSplitArtifact(artifactDir, manifest, inputsFile, outFile, graph, adapters);
  const dataFile = nodePath.join(artifactDir, DATA_FILE);
  if (existsSync(dataFile)) checkDataAgainstManifest(dataFile, statSync(dataFile).size, manifest);
  checkExternalReferences(nodePath.join(artifactDir, MODEL_FILE));
  // train.onnx also reads labels and, where given, trainable parameters; optimizer.onnx only its own inputs.
  const modelInputs = graph === 'optimizer';
  const dropout = manifest.train?.lora_dropout ?? [];
  const extra = graph === 'train' ? ['labels', ...(manifest.train?.trainable.map((t) => t.name) ?? []), ...dropout.map((d) => d.input)] : [];
  const inputs = modelInputs
    ? await readInputs(inputsFile)
    : await readInputs(inputsFile, [...manifest.inputs.map((i) => i.name), ...extra], (declared) => checkDeclaredInputs(inputsFile, manifest, declared));
  if (!modelInputs) {
    checkFiniteFloats(inputsFile, inputs);
    checkInputValues(inputsFile, manifest, inputs.input_ids?.data as BigInt64Array | undefined, inputs.image_flags?.data as BigInt64Array | undefined);
    checkImageTokenCount(manifest, inputs, inputsFile);
  }
  const session = await openSession(artifactDir, ['cpu'], graph);
  try {
    if (graph === 'train') {
      // Trainable parameters not in the inputs file take their bound weights.
      const { boundTrainableWeights } = await import('../train/weights.ts');
      Object.assign(inputs, await boundTrainableWeights(artifactDir, manifest, session.inputNames.filter((n) => !(n in inputs))));
      // LoRA dropout off unless the inputs file sets it: the eval gradients, the same every run.
      for (const d of dropout) inputs[d.input] ??= { dtype: 'float32', shape: [], data: Float32Array.of(0) };
    }
    if (graph === 'model') Object.assign(inputs, await adapterFeeds(full.inputs, adapters, artifactDir));
    else if (adapters.length > 0) throw new UserError(`--adapter feeds model.onnx; --graph ${graph} takes none`);
    const outputs = await run(session, inputs);
    await writeOutputs(outFile, outputs);
    return outputs;
  } finally {
    await session.release();
  }
}
