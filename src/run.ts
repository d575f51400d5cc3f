/**
 * `vlmc run`: an artifact (single graph, training graphs, or split) and an inputs file -> an
 * outputs file, every input checked against the manifest before onnxruntime sees it. A command:
 * it sits above the runtime, the split artifact's session (src/generate) and the training
 * weights (src/train) it dispatches to.
 */
import * as nodePath from 'node:path';
import { existsSync, statSync } from 'node:fs';
import { UserError } from './errors.ts';
import { DATA_FILE, MODEL_FILE, isSplitArtifact, readManifest, type Manifest } from './artifact/format.ts';
import { checkOutputPath } from './fs/output-path.ts';
import { checkExternalReferences } from './onnx/read.ts';
import { checkDataAgainstManifest, checkDeclaredInputs, checkForwardInputs, forwardInputNames } from './runtime/check-inputs.ts';
import { loadOrt, openSession, run, type ExecutionProvider, type HostTensor } from './runtime/session.ts';
import { providerList } from './runtime/providers.ts';
import { readInputs, writeOutputs } from './runtime/tensor-files.ts';
import { adapterFeeds, dataInputs } from './runtime/adapters.ts';

/** Graphs built before vlmc's ViT took zero tiles fail inside onnxruntime on a text-only request without a blank tile. */
function zeroTilesError(artifactDir: string, inputsFile: string, inputs: Record<string, HostTensor>, e: unknown): unknown {
  if (inputs['pixel_values']?.shape[0] !== 0) return e;
  return new UserError(`${inputsFile}: input 'pixel_values' has no tiles, which ${artifactDir} cannot run (built by an earlier vlmc: ${(e as Error).message.split('\n')[0]}); rebuild it, or give one blank tile with image_flags 0`);
}

/** `vlmc run` on a split artifact: vision, embedding, then one decoder prefill with full logits. */
async function runSplitArtifact(artifactDir: string, manifest: Manifest, inputsFile: string, outFile: string, graph: string, ep: ExecutionProvider, adapters: readonly string[]): Promise<Record<string, HostTensor>> {
  if (graph !== 'model') throw new UserError(`--graph ${graph}: ${artifactDir} is a split artifact (vision, embedding, decoder); build with --train, without --split, for training graphs`);
  const read = await readInputs(inputsFile, forwardInputNames(manifest), (declared) => checkDeclaredInputs(inputsFile, manifest, declared));
  const inputs = checkForwardInputs(inputsFile, manifest, read);
  // Loaded on demand, as below: a plain `vlmc run` does not pay for the split pipeline (it loads the zoo) or the training weights.
  const { runSplit } = await import('./generate/session.ts');
  const outputs = await runSplit(artifactDir, inputs, { ep, adapters });
  await writeOutputs(outFile, outputs);
  return outputs;
}

/**
 * `vlmc run`: artifact + inputs file -> outputs file, on the execution provider `ep`. `adapters`:
 * PEFT adapter folders fed to an artifact built with --lora-inputs (src/runtime/adapters.ts).
 */
export async function runArtifact(artifactDir: string, inputsFile: string, outFile: string, graph = 'model', ep: ExecutionProvider = 'cpu', adapters: readonly string[] = []): Promise<Record<string, HostTensor>> {
  checkOutputPath(outFile, { kind: 'result', content: 'outputs', flag: '--out', inputs: [artifactDir, inputsFile, ...adapters] });
  const full = readManifest(artifactDir);
  // Adapter inputs come from --adapter folders, not from the inputs file.
  const manifest = { ...full, inputs: dataInputs(full.inputs) };
  if (isSplitArtifact(artifactDir)) return runSplitArtifact(artifactDir, manifest, inputsFile, outFile, graph, ep, adapters);
  const dataFile = nodePath.join(artifactDir, DATA_FILE);
  if (existsSync(dataFile)) checkDataAgainstManifest(dataFile, statSync(dataFile).size, manifest);
  checkExternalReferences(nodePath.join(artifactDir, MODEL_FILE));
  // train.onnx also reads labels and, where given, trainable parameters; optimizer.onnx only its own inputs.
  const modelInputs = graph === 'optimizer';
  const dropout = manifest.train?.lora_dropout ?? [];
  const extra = graph === 'train' ? ['labels', ...(manifest.train?.trainable.map((t) => t.name) ?? []), ...dropout.map((d) => d.input)] : [];
  const inputs = modelInputs
    ? await readInputs(inputsFile)
    : checkForwardInputs(inputsFile, manifest, await readInputs(inputsFile, [...forwardInputNames(manifest), ...extra], (declared) => checkDeclaredInputs(inputsFile, manifest, declared)));
  const session = await openSession(artifactDir, providerList(await loadOrt(), ep), graph);
  try {
    if (graph === 'train') {
      // Trainable parameters not in the inputs file take their bound weights.
      const { boundTrainableWeights } = await import('./train/weights.ts');
      Object.assign(inputs, await boundTrainableWeights(artifactDir, manifest, session.inputNames.filter((n) => !(n in inputs))));
      // LoRA dropout off unless the inputs file sets it: the eval gradients, the same every run.
      for (const d of dropout) inputs[d.input] ??= { dtype: 'float32', shape: [], data: Float32Array.of(0) };
    }
    if (graph === 'model') Object.assign(inputs, await adapterFeeds(full.inputs, adapters, artifactDir));
    else if (adapters.length > 0) throw new UserError(`--adapter feeds model.onnx; --graph ${graph} takes none`);
    const outputs = await run(session, inputs).catch((e: unknown) => {
      throw zeroTilesError(artifactDir, inputsFile, inputs, e);
    });
    await writeOutputs(outFile, outputs);
    return outputs;
  } finally {
    await session.release();
  }
}
