/**
 * The default run (`npm start`): make a tiny random-weight InternVL checkpoint under out/ (no
 * download), build graphs/internvl-tiny.ts from it, run one forward with onnxruntime-node and report
 * the I/O signature, parameter counts and a logits checksum.
 */
import { createHash } from 'node:crypto';
import * as nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSafetensors } from './checkpoint/safetensors-write.ts';
import { writeFile } from 'node:fs/promises';
import { writeFileAtomic, withTempSibling } from './fs/atomic.ts';
import { checkOutputPath, CHECKPOINT_MARK } from './fs/output-path.ts';
import { assignPaths, collectParams } from './dsl/module.ts';
import { initialValues } from './bind/init.ts';
import { elementCount } from './ir/dims.ts';
import { InternVLChatModel } from './models/internvl.ts';
import { internvlConfigJson } from './models/to-config.ts';
import { loadGraphFile } from './graph-file.ts';
import { build } from './build.ts';
import { openSession, run, type HostTensor } from './runtime/session.ts';
import { UserError } from './errors.ts';

export const DEFAULT_GRAPH = nodePath.join(nodePath.dirname(fileURLToPath(import.meta.url)), '..', 'graphs', 'internvl-tiny.ts');

/** A unified (Path A) checkpoint with the model's declared init, as released checkpoints lay it out. */
export async function writeRandomCheckpoint(model: InternVLChatModel, dir: string, seed: number): Promise<void> {
  assignPaths(model);
  const tensors = collectParams(model).map((p) => {
    const values = initialValues(p.init, elementCount(p.shape), seed, p.name);
    return { name: p.name, dtype: 'F32' as const, shape: p.shape, data: new Uint8Array(values.buffer) };
  });
  checkOutputPath(dir, { kind: 'checkpoint' });
  await withTempSibling(dir, async (tmp) => {
    await writeFile(nodePath.join(tmp, CHECKPOINT_MARK), 'a random checkpoint written by vlmc demo\n');
    await writeSafetensors(nodePath.join(tmp, 'model.safetensors'), tensors);
    await writeFileAtomic(nodePath.join(tmp, 'config.json'), `${JSON.stringify(internvlConfigJson(model), null, 2)}\n`);
    const ctx = model.options.imgContextTokenId;
    if (ctx !== undefined) await writeFileAtomic(nodePath.join(tmp, 'added_tokens.json'), `${JSON.stringify({ '<IMG_CONTEXT>': ctx }, null, 2)}\n`);
  });
}

/** Deterministic demo inputs: `tiles` tiles, one prompt with an image span per tile. */
export function demoInputs(model: InternVLChatModel, tiles: number): Record<string, HostTensor> {
  const s = model.options.imageSize;
  const pixels = initialValues({ kind: 'uniform', bound: 1 }, tiles * 3 * s * s, 7, 'pixel_values');
  const ctx = model.options.imgContextTokenId!;
  const ids = [1, 5, 9, ...Array<number>(model.tokensPerTile * tiles).fill(ctx), 11, 12, 13, 14];
  return {
    pixel_values: { dtype: 'float32', shape: [tiles, 3, s, s], data: pixels },
    input_ids: { dtype: 'int64', shape: [1, ids.length], data: BigInt64Array.from(ids, BigInt) },
    image_flags: { dtype: 'int64', shape: [tiles], data: new BigInt64Array(tiles).fill(1n) },
  };
}

export interface DemoReport {
  lines: string[];
  logitsSha256: string;
}

export async function demo(outRoot = 'out', graphFile = DEFAULT_GRAPH): Promise<DemoReport> {
  const model = await loadGraphFile(graphFile);
  if (!(model instanceof InternVLChatModel)) throw new UserError(`${graphFile}: the demo needs an InternVL model`);
  const checkpoint = nodePath.join(outRoot, 'internvl-tiny-checkpoint');
  const artifact = nodePath.join(outRoot, 'internvl-tiny');
  await writeRandomCheckpoint(model, checkpoint, 0);
  const { manifest } = await build({ graph: graphFile, weights: checkpoint, out: artifact });
  const session = await openSession(artifact);
  const outputs = await run(session, demoInputs(model, 2));
  await session.release();
  const logits = outputs.logits!.data as Float32Array;
  const sum = logits.reduce((a, b) => a + b, 0);
  const sha = createHash('sha256').update(new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength)).digest('hex');
  const sig = (io: { name: string; dtype: string; shape: (number | string)[] }) => `  ${io.name.padEnd(13)} ${io.dtype}[${io.shape.join(', ')}]`;
  const lines = [
    `checkpoint  ${checkpoint} (random weights, seed 0)`,
    `artifact    ${artifact}`,
    'inputs',
    ...manifest.inputs.map(sig),
    'outputs',
    ...manifest.outputs.map(sig),
    `parameters  ${manifest.counts.total.toLocaleString('en-US')} total, ${manifest.counts.trainable.toLocaleString('en-US')} trainable (${manifest.parameters.length} tensors)`,
    `logits      [${outputs.logits!.shape.join(', ')}] sum ${sum.toFixed(6)} sha256 ${sha.slice(0, 16)}`,
  ];
  return { lines, logitsSha256: sha };
}
