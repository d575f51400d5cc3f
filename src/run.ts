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
import { checkDataAgainstManifest, checkDeclaredInputs, checkFiniteFloats, checkImageTokenCount, checkInputValues } from './runtime/check-inputs.ts';
import { loadOrt, openSession, run, type ExecutionProvider, type HostTensor } from './runtime/session.ts';
import { providerList } from './runtime/providers.ts';
import { readInputs, writeOutputs } from './runtime/tensor-files.ts';

/** `vlmc run` on a split artifact: vision, embedding, then one decoder prefill with full logits. */
async function runSplitArtifact(artifactDir: string, manifest: Manifest, inputsFile: string, outFile: string, graph: string, ep: ExecutionProvider): Promise<Record<string, HostTensor>> {
  if (graph !== 'model') throw new UserError(`--graph ${graph}: ${artifactDir} is a split artifact (vision, embedding, decoder); build with --train, without --split, for training graphs`);
  const inputs = await readInputs(inputsFile, manifest.inputs.map((i) => i.name), (declared) => checkDeclaredInputs(inputsFile, manifest, declared));
  checkInputValues(inputsFile, manifest, inputs.input_ids?.data as BigInt64Array | undefined, inputs.image_flags?.data as BigInt64Array | undefined);
  checkImageTokenCount(manifest, inputs, inputsFile);
  checkFiniteFloats(inputsFile, inputs);
  // Loaded on demand, as below: a plain `vlmc run` does not pay for the split pipeline (it loads the zoo) or the training weights.
  const { runSplit } = await import('./generate/session.ts');
  const outputs = await runSplit(artifactDir, inputs, { ep });
  await writeOutputs(outFile, outputs);
  return outputs;
}

/** `vlmc run`: artifact + inputs file -> outputs file, on the execution provider `ep`. */
export async function runArtifact(artifactDir: string, inputsFile: string, outFile: string, graph = 'model', ep: ExecutionProvider = 'cpu'): Promise<Record<string, HostTensor>> {
  checkOutputPath(outFile, { kind: 'result', content: 'outputs', flag: '--out', inputs: [artifactDir, inputsFile] });
  const manifest = readManifest(artifactDir);
  if (isSplitArtifact(artifactDir)) return runSplitArtifact(artifactDir, manifest, inputsFile, outFile, graph, ep);
  const dataFile = nodePath.join(artifactDir, DATA_FILE);
  if (existsSync(dataFile)) checkDataAgainstManifest(dataFile, statSync(dataFile).size, manifest);
  checkExternalReferences(nodePath.join(artifactDir, MODEL_FILE));
  // train.onnx also reads labels and, where given, trainable parameters; optimizer.onnx only its own inputs.
  const modelInputs = graph === 'optimizer';
  const extra = graph === 'train' ? ['labels', ...(manifest.train?.trainable.map((t) => t.name) ?? [])] : [];
  const inputs = modelInputs
    ? await readInputs(inputsFile)
    : await readInputs(inputsFile, [...manifest.inputs.map((i) => i.name), ...extra], (declared) => checkDeclaredInputs(inputsFile, manifest, declared));
  if (!modelInputs) {
    checkFiniteFloats(inputsFile, inputs);
    checkInputValues(inputsFile, manifest, inputs.input_ids?.data as BigInt64Array | undefined, inputs.image_flags?.data as BigInt64Array | undefined);
    checkImageTokenCount(manifest, inputs, inputsFile);
  }
  const session = await openSession(artifactDir, providerList(await loadOrt(), ep), graph);
  try {
    if (graph === 'train') {
      // Trainable parameters not in the inputs file take their bound weights.
      const { boundTrainableWeights } = await import('./train/weights.ts');
      Object.assign(inputs, await boundTrainableWeights(artifactDir, manifest, session.inputNames.filter((n) => !(n in inputs))));
    }
    const outputs = await run(session, inputs);
    await writeOutputs(outFile, outputs);
    return outputs;
  } finally {
    await session.release();
  }
}
