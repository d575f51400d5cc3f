/**
 * Prepares the transformers cross-check (test/device/check.py, run where PyTorch and transformers
 * are installed, e.g. the GPU machine): for each LLM variant, a random-weight InternVL checkpoint,
 * its vlmc artifact, the LLM's weights and config.json in Hugging Face's standalone layout, and
 * text-only inputs. transformers' own Qwen2 / Llama / Phi-3 code then recomputes the logits.
 *
 *   npx tsx test/device/prepare.ts out/device
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { internvl, internViT, llama, phi3, qwen2, type CausalLM } from '../../src/index.ts';
import { writeRandomCheckpoint } from '../../src/demo.ts';
import { build } from '../../src/build.ts';
import { llmConfigJson } from '../../src/models/to-config.ts';
import { Checkpoint } from '../../src/checkpoint/checkpoint.ts';
import { writeSafetensors } from '../../src/checkpoint/safetensors-write.ts';
import { initialValues } from '../../src/bind/init.ts';

const base = { hidden: 64, heads: 4, kvHeads: 2, layers: 2, intermediate: 128, vocab: 200, rmsNormEps: 1e-6, maxPositions: 64 };
const longFactors = (n: number, scale: number) => Array.from({ length: n }, (_, i) => 1 + (scale * i) / n);

const variants: Record<string, () => CausalLM> = {
  'qwen2-tied': () => qwen2({ ...base, ropeTheta: 1e6, tieEmbeddings: true }),
  'llama3-scaled': () =>
    llama({ ...base, heads: 4, kvHeads: 1, ropeTheta: 500000, tieEmbeddings: false, ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64 } }),
  'llama-dynamic-long': () => llama({ ...base, maxPositions: 8, ropeTheta: 10000, tieEmbeddings: false, ropeScaling: { type: 'dynamic', factor: 2 } }),
  'phi3-longrope-long': () =>
    phi3({ ...base, kvHeads: 4, maxPositions: 256, ropeTheta: 10000, tieEmbeddings: false, padTokenId: 0, ropeScaling: { type: 'longrope', shortFactor: longFactors(8, 0.5), longFactor: longFactors(8, 4), originalMaxPositions: 16 } }),
  'phi3-partial-rotary': () => phi3({ ...base, kvHeads: 2, ropeTheta: 10000, tieEmbeddings: false, padTokenId: 0, partialRotaryFactor: 0.75 }),
  'phi3-longrope-short': () =>
    phi3({ ...base, kvHeads: 4, maxPositions: 256, ropeTheta: 10000, tieEmbeddings: false, padTokenId: 0, ropeScaling: { type: 'longrope', shortFactor: longFactors(8, 0.5), longFactor: longFactors(8, 4), originalMaxPositions: 128 } }),
};

async function prepare(root: string, name: string, llm: () => CausalLM): Promise<void> {
  const dir = path.join(root, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const vision = () => internViT({ hidden: 32, heads: 4, layers: 1, intermediate: 64, imageSize: 28, patchSize: 14, norm: 'layer_norm', qkvBias: true, qkNorm: false, eps: 1e-6 });
  const model = internvl({ vision: vision(), llm: llm(), imgContextTokenId: 199 });
  await writeRandomCheckpoint(model, path.join(dir, 'checkpoint'), 11);
  await build({ weights: path.join(dir, 'checkpoint'), out: path.join(dir, 'artifact') });
  await writeStandaloneLLM(path.join(dir, 'checkpoint'), dir);
  writeFileSync(path.join(dir, 'llm_config.json'), JSON.stringify(llmConfigJson(model.language_model), null, 2));
  const seq = 24;
  const ids = initialValues({ kind: 'uniform', bound: 1 }, 2 * seq, 5, name).map((u) => Math.floor((u + 1) * 0.5 * 190));
  await writeSafetensors(path.join(dir, 'inputs.safetensors'), [
    { name: 'pixel_values', dtype: 'F32', shape: [1, 3, 28, 28], data: new Uint8Array(new Float32Array(3 * 28 * 28).buffer) },
    { name: 'input_ids', dtype: 'I64', shape: [2, seq], data: new Uint8Array(BigInt64Array.from(ids, (v) => BigInt(v)).buffer) },
    { name: 'image_flags', dtype: 'I64', shape: [1], data: new Uint8Array(new BigInt64Array(1).buffer) },
  ]);
}

/** The LLM part of a unified checkpoint under its standalone keys (no `language_model.` prefix). */
async function writeStandaloneLLM(checkpointDir: string, outDir: string): Promise<void> {
  const ckpt = await Checkpoint.open(checkpointDir);
  const tensors = [];
  for (const key of ckpt.keys().filter((k) => k.startsWith('language_model.'))) {
    const e = ckpt.entry(key);
    tensors.push({ name: key.slice('language_model.'.length), dtype: e.dtype, shape: [...e.shape], data: await ckpt.readAll(key) });
  }
  await ckpt.close();
  await writeSafetensors(path.join(outDir, 'llm.safetensors'), tensors);
}

const root = process.argv[2] ?? 'out/device';
for (const [name, llm] of Object.entries(variants)) {
  await prepare(root, name, llm);
  console.log(`prepared ${path.join(root, name)}`);
}
