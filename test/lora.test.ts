/**
 * LoRA against ../shared/fixtures/lora (every case folder there, so new cases are checked as they
 * arrive): the three checkpoint forms (InternVL's save with LoRA unmerged, merge_lora.py's merged
 * checkpoint, the base plus PEFT adapters on Path A and Path B) give the expected logits and
 * vit_embeds, merged at bind and kept separate; the LoRA training graph gives the expected loss
 * and gradients for exactly the adapters (and mlp1 with --unfreeze mlp1); `vlmc export
 * --merge-lora` writes the merged checkpoint's weights; `vlmc train --preset lora` lowers the loss
 * and saves a checkpoint in InternVL's layout, key for key, that builds again. In process, on the
 * tiny fixture models.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { FIXTURES, ROOT, maxAbsError, relativeL2, tempDir, removeDir, vlmcInProcess } from './helpers.ts';
import { charTokenizer, specialsFor } from './char-tokenizer.ts';
import { build, type BuildOptions } from '../src/build.ts';
import { openSession, run, type HostTensor } from '../src/runtime/session.ts';
import { readInputs } from '../src/runtime/tensor-files.ts';
import { runArtifact } from '../src/run.ts';
import { boundTrainableWeights } from '../src/train/weights.ts';
import { train } from '../src/train/loop.ts';
import { exportMergedLora } from '../src/export/merge-lora.ts';
import { SafetensorsFile } from '../src/checkpoint/safetensors.ts';
import type { Manifest } from '../src/artifact/format.ts';
import { UserError } from '../src/errors.ts';
import { diffSummaries, loadGraphSummary, lockText, renderText } from '../src/review/index.ts';
import { createHash } from 'node:crypto';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

const LORA = path.join(FIXTURES, 'lora');
const CASES = readdirSync(LORA).filter((d) => existsSync(path.join(LORA, d, 'case.json'))).sort();
const IMAGE = path.join(FIXTURES, 'preprocess/images/png_rgb_47x31.png');
const ROOT_GRAPHS = path.join(ROOT, 'graphs');

interface Tolerance {
  atol: number;
  rtol: number;
}

/** The largest |got - want| - (atol + rtol |want|): at most 0 when within tolerance. */
function excess(got: ArrayLike<number>, want: ArrayLike<number>, tol: Tolerance): number {
  expect(got.length).toBe(want.length);
  let worst = -Infinity;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) - (tol.atol + tol.rtol * Math.abs(want[i]!)));
  return worst;
}

async function tensors(file: string): Promise<Record<string, Float32Array>> {
  const st = await SafetensorsFile.open(file);
  try {
    const out: Record<string, Float32Array> = {};
    for (const k of st.keys()) out[k] = await st.readAsFloat32(st.entry(k));
    return out;
  } finally {
    await st.close();
  }
}

/** Builds and runs one graph of the artifact on the case's inputs (trainable weights fed from the artifact; LoRA dropout at `dropout`). */
async function buildAndRun(options: BuildOptions, inputsFile: string, graph: 'model' | 'train', dropout = 0): Promise<{ manifest: Manifest; outputs: Record<string, HostTensor> }> {
  const { manifest } = await build(options);
  return { manifest, outputs: await runGraph(options.out, manifest, inputsFile, graph, dropout) };
}

async function runGraph(out: string, manifest: Manifest, inputsFile: string, graph: 'model' | 'train', dropout = 0): Promise<Record<string, HostTensor>> {
  const session = await openSession(out, ['cpu'], graph);
  try {
    const inputs = await readInputs(inputsFile, session.inputNames);
    Object.assign(inputs, await boundTrainableWeights(out, manifest, session.inputNames.filter((n) => !(n in inputs))));
    for (const d of manifest.train?.lora_dropout ?? []) inputs[d.input] ??= { dtype: 'float32', shape: [], data: Float32Array.of(dropout) };
    return await run(session, inputs);
  } finally {
    await session.release();
  }
}

describe.each(CASES)('LoRA case %s', (name) => {
  const fx = path.join(LORA, name);
  const spec = JSON.parse(readFileSync(path.join(fx, 'case.json'), 'utf8'));
  const base = path.join(FIXTURES, spec.base_case);
  const adapters = ['adapter', 'vision-adapter'].map((d) => path.join(fx, d)).filter((d) => existsSync(d));
  const parts = Object.values(spec.lora) as { r: number; num_wrapped_modules: number; config_field: string }[];
  const wrapped = parts.reduce((n, p) => n + p.num_wrapped_modules, 0);
  let work: string;
  let expected: Record<string, Float32Array>;
  beforeAll(async () => {
    work = tempDir('vlmc-lora-');
    expected = await tensors(path.join(fx, 'expected.safetensors'));
  });
  afterAll(() => removeDir(work));

  const forms: [string, Omit<BuildOptions, 'out'>, 'merged' | 'kept' | 'plain'][] = [
    ['merged-unified', { weights: path.join(fx, 'merged-unified') }, 'plain'],
    ['lora-unified, merged at bind', { weights: path.join(fx, 'lora-unified') }, 'merged'],
    ['lora-unified, kept separate (--keep-lora)', { weights: path.join(fx, 'lora-unified'), keepLora: true }, 'kept'],
    ['base + adapters (Path A), merged at bind', { weights: path.join(fx, 'base-unified'), adapters }, 'merged'],
    ['base + adapters (Path A), kept separate', { weights: path.join(fx, 'base-unified'), adapters, keepLora: true }, 'kept'],
    ['base + adapters (Path B), merged at bind', { vision: path.join(base, 'vision'), llm: path.join(base, 'llm'), projector: path.join(base, 'mlp1.safetensors'), adapters }, 'merged'],
  ];

  it.each(forms)('%s: logits and vit_embeds as expected', async (label, options, how) => {
    const { manifest, outputs } = await buildAndRun({ ...options, out: path.join(work, label.replace(/\W+/g, '-')) }, path.join(fx, 'inputs.safetensors'), 'model');
    for (const key of ['logits', 'vit_embeds']) {
      expect(excess(outputs[key]!.data as Float32Array, expected[key]!, spec.recommended_tolerance[key]), key).toBeLessThanOrEqual(0);
    }
    const merges = manifest.parameters.filter((p) => 'role' in p.source && p.source.lora);
    const adaptersKept = manifest.parameters.filter((p) => /\.lora_[AB]\.weight$/.test(p.name));
    expect(merges.length).toBe(how === 'merged' ? wrapped : 0);
    expect(adaptersKept.length).toBe(how === 'kept' ? 2 * wrapped : 0);
    if (how === 'kept') {
      expect(adaptersKept.filter((q) => q.name.endsWith('lora_A.weight')).every((q) => parts.some((p) => p.r === q.shape[0]))).toBe(true);
      expect(Object.keys(manifest.metadata).filter((k) => k.startsWith('vlmc.lora.')).length).toBe(parts.length);
    }
  });

  it.each([
    ['--preset lora', [] as string[], spec.trainable.lora_only.keys as string[]],
    ['--preset lora --unfreeze mlp1', ['mlp1'], [...spec.trainable.lora_only.keys, ...spec.trainable.lora_and_mlp1.keys] as string[]],
  ])('training graph with %s: loss and exactly the trainable gradients', async (label, unfreeze, keys) => {
    const options: BuildOptions = { weights: path.join(fx, 'lora-unified'), keepLora: true, train: true, preset: 'lora', unfreeze, out: path.join(work, `train-${unfreeze.length}`) };
    const { manifest, outputs } = await buildAndRun(options, path.join(fx, 'inputs.safetensors'), 'train');
    expect(excess(outputs.loss!.data as Float32Array, expected.loss!, spec.recommended_tolerance.loss), 'loss').toBeLessThanOrEqual(0);
    const keyOf = new Map(manifest.parameters.map((p) => [p.name, p.key as string]));
    const trainable = manifest.train!.trainable;
    expect(trainable.map((t) => keyOf.get(t.name)).sort()).toEqual([...keys].sort());
    // Frozen parameters get no gradient output.
    expect(Object.keys(outputs).filter((k) => k !== 'loss').sort()).toEqual(trainable.map((t) => t.grad).sort());
    const want = await tensors(path.join(fx, 'gradients.safetensors'));
    const bound = spec.recommended_tolerance.grads.max_abs_err_over_max_abs_ref;
    for (const t of trainable) {
      const key = keyOf.get(t.name)!;
      expect(relativeL2(outputs[t.grad]!.data as Float32Array, want[key]!), `${key} relative L2`).toBeLessThanOrEqual(1e-4);
      const g = outputs[t.grad]!.data as Float32Array;
      const ref = want[key]!;
      const maxRef = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(g.reduce((m, v, i) => Math.max(m, Math.abs(v - ref[i]!)), 0) / maxRef, `${key} max abs error / max abs reference`).toBeLessThanOrEqual(bound);
    }
  });

  it.each<[string, Omit<BuildOptions, 'out' | 'weights'>, number]>([
    ['kept, --opset 24', { keepLora: true, opset: 24 }, 1e-4],
    ['kept, --target gpu --dtype fp16', { keepLora: true, target: 'gpu', dtype: 'fp16' }, 0.05],
    ['kept, --target gpu --quant int8: the base packed, the adapters float', { keepLora: true, target: 'gpu', quant: { bits: 8, blockSize: 32, symmetric: true } }, 0.5],
    ['merged, --target gpu --quant int8 --quant-zero-points: the merged weight packed', { target: 'gpu', quant: { bits: 8, blockSize: 32, symmetric: false } }, 0.5],
  ])('combines: %s (logits within the dtype\'s tolerance, docs/cli.md)', async (label, options, tolerance) => {
    const { manifest, outputs } = await buildAndRun({ ...options, weights: path.join(fx, 'lora-unified'), out: path.join(work, label.replace(/\W+/g, '-')) }, path.join(fx, 'inputs.safetensors'), 'model');
    expect(maxAbsError(outputs.logits!.data as Float32Array, expected.logits!)).toBeLessThanOrEqual(tolerance);
    if (options.quant) {
      const adaptersQuantised = manifest.parameters.filter((p) => /\.lora_[AB]\.weight$/.test(p.name) && p.quant);
      expect(adaptersQuantised).toEqual([]);
      expect(manifest.parameters.filter((p) => p.quant).length).toBeGreaterThanOrEqual(wrapped);
      if (!options.keepLora) expect(manifest.parameters.filter((p) => p.quant && 'role' in p.source && p.source.lora).length).toBe(wrapped);
    }
  });

  it('train.onnx applies LoRA dropout at the ratio fed (vlmc train: the declared 0.05), with seeded masks', async () => {
    const options: BuildOptions = { weights: path.join(fx, 'lora-unified'), keepLora: true, train: true, preset: 'lora', out: path.join(work, 'train-dropout') };
    const first = await buildAndRun(options, path.join(fx, 'inputs.safetensors'), 'train', 0.5);
    expect(first.manifest.train!.lora_dropout).toEqual(parts.map((p) => ({ input: `lora_dropout.${Object.keys(spec.lora).find((m) => spec.lora[m] === p)}`, ratio: 0.05 })));
    const loss = (first.outputs.loss!.data as Float32Array)[0]!;
    expect(Math.abs(loss - expected.loss![0]!)).toBeGreaterThan(1e-3);
    // A fresh session draws the same masks: the seeds are the graph's.
    const again = await runGraph(options.out, first.manifest, path.join(fx, 'inputs.safetensors'), 'train', 0.5);
    expect((again.loss!.data as Float32Array)[0]).toBe(loss);
  });

  it.each([false, true])('adapters fed at run time (--lora-inputs, split %s): the adapters give the expected logits, none the base\'s', async (split) => {
    const out = path.join(work, `lora-inputs-${split}`);
    await build({ weights: path.join(fx, 'base-unified'), useLlmLora: spec.lora.language_model?.r, useBackboneLora: spec.lora.vision_model?.r, loraInputs: true, split, out });
    const baseLogits = (await tensors(path.join(base, 'expected.safetensors'))).logits!;
    for (const [fed, want] of [[adapters, expected.logits!], [[], baseLogits]] as const) {
      const outputs = await runArtifact(out, path.join(fx, 'inputs.safetensors'), path.join(work, `lora-inputs-${split}-${fed.length}.safetensors`), 'model', 'cpu', fed);
      expect(excess(outputs.logits!.data as Float32Array, want, spec.recommended_tolerance.logits), `${fed.length} adapters`).toBeLessThanOrEqual(0);
    }
  });

  it('vlmc export --merge-lora writes the merged checkpoint (every element as merged in float64 and rounded once)', async () => {
    const out = path.join(work, 'export-merged');
    const r = await exportMergedLora({ checkpoint: path.join(fx, 'lora-unified'), out });
    expect(r.merged).toBe(wrapped);
    const got = await tensors(path.join(out, 'model.safetensors'));
    const want = await tensors(path.join(fx, 'merged-unified/model.safetensors'));
    expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
    let differing = 0;
    for (const [k, w] of Object.entries(want)) for (let i = 0; i < w.length; i++) if (got[k]![i] !== w[i]) differing++;
    expect(differing).toBe(0);
    const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'));
    for (const p of parts) expect(config[p.config_field]).toBe(0);
  });
});

describe.each(CASES)('vlmc train --preset lora on %s', (name) => {
  const fx = path.join(LORA, name);
  const spec = JSON.parse(readFileSync(path.join(fx, 'case.json'), 'utf8'));
  let work: string;
  beforeAll(() => {
    work = tempDir('vlmc-lora-train-');
  });
  afterAll(() => removeDir(work));

  it('starts a LoRA on the base, lowers the loss, and saves InternVL\'s layout key for key, which builds again', async () => {
    // The base checkpoint with a tokenizer (the fixtures ship none) and two samples.
    const ckpt = path.join(work, 'base');
    cpSync(path.join(fx, 'base-unified'), ckpt, { recursive: true });
    const added = JSON.parse(readFileSync(path.join(ckpt, 'added_tokens.json'), 'utf8')) as Record<string, number>;
    const config = JSON.parse(readFileSync(path.join(ckpt, 'config.json'), 'utf8'));
    writeFileSync(path.join(ckpt, 'tokenizer.json'), JSON.stringify(charTokenizer(specialsFor(config.template, added, config.llm_config.vocab_size))));
    cpSync(IMAGE, path.join(work, 'cat.png'));
    const data = path.join(work, 'data.jsonl');
    writeFileSync(data, [
      { image: 'cat.png', conversations: [{ from: 'human', value: '<image>\nwhat is it?' }, { from: 'gpt', value: 'a cat.' }] },
      { image: 'cat.png', conversations: [{ from: 'human', value: 'colour?' }, { from: 'gpt', value: 'red' }] },
    ].map((l) => JSON.stringify(l)).join('\n') + '\n');

    const ranks = { useLlmLora: spec.lora.language_model?.r, useBackboneLora: spec.lora.vision_model?.r };
    const artifact = path.join(work, 'artifact');
    await build({ weights: ckpt, ...ranks, train: true, preset: 'lora', seed: 1, out: artifact });
    const result = await train({ artifact, data, steps: 4, lr: 1e-2, out: path.join(work, 'run') });
    expect(result.losses[3]!).toBeLessThan(result.losses[0]!);

    const saved = await SafetensorsFile.open(path.join(result.checkpoint, 'model.safetensors'));
    const official = await SafetensorsFile.open(path.join(fx, 'lora-unified/model.safetensors'));
    try {
      expect(saved.keys()).toEqual(official.keys());
      for (const k of official.keys()) expect(saved.entry(k).shape, k).toEqual(official.entry(k).shape);
    } finally {
      await saved.close();
      await official.close();
    }
    const savedConfig = JSON.parse(readFileSync(path.join(result.checkpoint, 'config.json'), 'utf8'));
    const want = JSON.parse(readFileSync(path.join(fx, 'lora-unified/config.json'), 'utf8'));
    for (const field of ['use_llm_lora', 'use_backbone_lora']) expect(savedConfig[field]).toBe(want[field]);
    expect(savedConfig.llm_config.tie_word_embeddings).toBe(want.llm_config.tie_word_embeddings);

    // It builds again: merged at bind, or kept to train on (the trained adapters as saved).
    const merged = await build({ weights: result.checkpoint, out: path.join(work, 'rebuilt-merged') });
    expect(merged.manifest.parameters.filter((p) => 'role' in p.source && p.source.lora).length).toBeGreaterThan(0);
    const kept = await build({ weights: result.checkpoint, keepLora: true, out: path.join(work, 'rebuilt-kept') });
    const adapters = kept.manifest.parameters.filter((p) => /\.lora_[AB]\.weight$/.test(p.name));
    expect(adapters.length).toBe(saved.keys().filter((k) => /\.lora_[AB]\./.test(k)).length);
    const reopened = await SafetensorsFile.open(path.join(result.checkpoint, 'model.safetensors'));
    try {
      for (const p of adapters) expect(p.sha256, p.name).toBe(sha256(await reopened.readAll(reopened.entry(p.key as string))));
      // Trained: lora_B left its zero init.
      const b = await reopened.readAsFloat32(reopened.entry(adapters.find((p) => p.name.endsWith('lora_B.weight'))!.key as string));
      expect(b.some((v) => v !== 0)).toBe(true);
    } finally {
      await reopened.close();
    }
  });
});

describe('LoRA refusals: one message naming the flag, the file or the tensor, nothing written', () => {
  const fx = path.join(LORA, CASES[0]!);
  let work: string;
  beforeAll(() => {
    work = tempDir('vlmc-lora-bad-');
  });
  afterAll(() => removeDir(work));

  /** A copy of one of the case's folders with a file changed. */
  function copyWith(from: string, name: string, file: string, change: (json: Record<string, unknown>) => void): string {
    const dir = path.join(work, name);
    cpSync(path.join(fx, from), dir, { recursive: true });
    const json = JSON.parse(readFileSync(path.join(dir, file), 'utf8'));
    change(json);
    writeFileSync(path.join(dir, file), JSON.stringify(json));
    return dir;
  }

  it.each<[string, () => Omit<BuildOptions, 'out'>, RegExp]>([
    ['--preset lora without LoRA', () => ({ weights: path.join(fx, 'base-unified'), train: true, preset: 'lora' }), /^--preset lora: no LoRA is declared, so there are no adapters to train; add --use-llm-lora R/],
    ['--keep-lora without LoRA', () => ({ weights: path.join(fx, 'base-unified'), keepLora: true }), /^--keep-lora: there is no LoRA to keep/],
    ['a rank flag against the checkpoint\'s LoRA', () => ({ weights: path.join(fx, 'lora-unified'), useLlmLora: 8 }), /^--use-llm-lora 8: .*lora-unified holds language_model LoRA of rank 4; give --use-llm-lora 4 \(or --keep-lora\)/],
    ['a negative rank', () => ({ weights: path.join(fx, 'base-unified'), useLlmLora: -1 }), /--use-llm-lora -1: llm rank must be a whole number from 0 to 65536/],
    ['an adapter without weights', () => ({ graph: path.join(ROOT_GRAPHS, 'internvl-tiny.ts'), adapters: [path.join(fx, 'adapter')] }), /^--adapter applies a LoRA adapter onto base weights/],
    ['a folder that is no adapter', () => ({ weights: path.join(fx, 'base-unified'), adapters: [path.join(fx, 'base-unified')] }), /^--adapter .*base-unified: no adapter_config\.json/],
    ['a DoRA adapter', () => ({ weights: path.join(fx, 'base-unified'), adapters: [copyWith('adapter', 'dora', 'adapter_config.json', (c) => (c.use_dora = true))] }), /adapter_config\.json: use_dora is true \(DoRA\); vlmc applies plain LoRA adapters/],
    ['an adapter whose r disagrees with its tensors', () => ({ weights: path.join(fx, 'base-unified'), adapters: [copyWith('adapter', 'r8', 'adapter_config.json', (c) => (c.r = 8))] }), /lora_A\.weight has rank 4, but adapter_config\.json says r 8/],
    ['an adapter for a part the checkpoint already adapts', () => ({ weights: path.join(fx, 'lora-unified'), adapters: [path.join(fx, 'adapter')] }), /already holds LoRA for language_model; give one adapter per part/],
    ['a config that says LoRA over plain keys', () => ({ weights: copyWith('merged-unified', 'says-lora', 'config.json', (c) => (c.use_llm_lora = 4)) }), /config\.json: use_llm_lora is 4, but the checkpoint has no language_model\.base_model\.model\.\* keys/],
    ['--lora-inputs with --train', () => ({ weights: path.join(fx, 'base-unified'), useLlmLora: 4, loraInputs: true, train: true }), /^--lora-inputs with --train: adapters fed at run time are not parameters to train/],
    ['--lora-inputs without LoRA', () => ({ weights: path.join(fx, 'base-unified'), loraInputs: true }), /^--lora-inputs: no LoRA is declared/],
    ['--lora-inputs onto a LoRA checkpoint', () => ({ weights: path.join(fx, 'lora-unified'), useLlmLora: 4, loraInputs: true }), /^--lora-inputs: .*lora-unified holds language_model LoRA, which is merged at bind or kept/],
  ])('%s', async (_, options, message) => {
    const out = path.join(work, 'out');
    const error = await build({ ...options(), out }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message.split('\n')).toHaveLength(1);
    expect(existsSync(out)).toBe(false);
  });

  it('a lora() target that names no Linear is refused at its graph file line', async () => {
    const graph = path.join(work, 'bad-target.ts');
    writeFileSync(graph, `import { internvl, internViT, qwen2, lora } from 'vlmc';
export default internvl({
  vision: internViT({ hidden: 32, heads: 4, layers: 1, intermediate: 64, imageSize: 28, patchSize: 14, norm: 'layer_norm', qkvBias: true, qkNorm: false, eps: 1e-6 }),
  llm: qwen2({ hidden: 48, heads: 4, kvHeads: 2, layers: 1, intermediate: 96, vocab: 160, rmsNormEps: 1e-6, ropeTheta: 10000, maxPositions: 64, tieEmbeddings: true }),
  imgContextTokenId: 153,
  lora: lora({ llm: 2, targets: { llm: ['self_attn.q_proj', 'self_attn.qkv_proj'] } }),
});
`);
    const error = await build({ graph, out: path.join(work, 'out') }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect((error as Error).message).toMatch(/bad-target\.ts:6:9: lora\(\): LoRA target 'self_attn\.qkv_proj' matches no Linear under language_model$/);
  });

  it('vlmc run --adapter on an artifact without adapter inputs says how to apply it', async () => {
    const out = path.join(work, 'plain');
    await build({ weights: path.join(fx, 'base-unified'), out });
    const error = await runArtifact(out, path.join(fx, 'inputs.safetensors'), path.join(work, 'plain.safetensors'), 'model', 'cpu', [path.join(fx, 'adapter')]).then(() => undefined, (e: unknown) => e);
    expect((error as Error).message).toMatch(/^--adapter: .*plain takes no adapters at run time \(it was built without --lora-inputs\); merge an adapter into an artifact with vlmc build --adapter DIR$/);
  });

  it('vlmc export takes exactly one of --layout hf and --merge-lora (exit 2)', async () => {
    const r = await vlmcInProcess(['export', path.join(fx, 'lora-unified'), '--layout', 'hf', '--merge-lora', '--out', path.join(work, 'x')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('vlmc: vlmc export: give either --layout hf or --merge-lora\n');
  });
});

describe('lora() in a graph file', () => {
  let work: string;
  beforeAll(() => {
    work = tempDir('vlmc-lora-dsl-');
  });
  afterAll(() => removeDir(work));

  const graphWith = (name: string, extra: string): string => {
    const file = path.join(work, `${name}.ts`);
    writeFileSync(file, `import { internvl, internViT, internlm2, lora, preset } from 'vlmc';
export default internvl({
  name: 'lora-dsl',
  vision: internViT({ hidden: 32, heads: 4, layers: 1, intermediate: 64, imageSize: 28, patchSize: 14, norm: 'layer_norm', qkvBias: true, qkNorm: false, eps: 1e-6 }),
  llm: internlm2({ hidden: 48, heads: 4, kvHeads: 2, layers: 1, intermediate: 96, vocab: 160, rmsNormEps: 1e-6, ropeTheta: 10000, maxPositions: 64, tieEmbeddings: false }),
  imgContextTokenId: 153,
  ${extra}
});
`);
    return file;
  };

  it('wraps the family\'s targets on both towers, trains only the adapters, and shows rank, alpha and targets in the lock and the diff', async () => {
    const plain = await loadGraphSummary(graphWith('plain', ''));
    const withLora = await loadGraphSummary(graphWith('with-lora', "lora: lora({ vision: 2, llm: 4 }), train: preset('stage2'),"));
    const adapters = withLora.params.filter((p) => /\.lora_[AB]\.weight$/.test(p.name));
    // ViT: attn.qkv, attn.proj, mlp.fc1, mlp.fc2; InternLM2: attention.wqkv, attention.wo, feed_forward.w1 / w2 / w3.
    expect([...new Set(adapters.map((p) => p.name.replace(/\.lora_[AB]\.weight$/, '')))].sort()).toEqual([
      'vision_model.encoder.layers.0.attn.qkv', 'vision_model.encoder.layers.0.attn.proj', 'vision_model.encoder.layers.0.mlp.fc1', 'vision_model.encoder.layers.0.mlp.fc2',
      'language_model.model.layers.0.attention.wqkv', 'language_model.model.layers.0.attention.wo', 'language_model.model.layers.0.feed_forward.w1', 'language_model.model.layers.0.feed_forward.w3', 'language_model.model.layers.0.feed_forward.w2',
    ].sort());
    const wqkv = withLora.params.find((p) => p.name === 'language_model.model.layers.0.attention.wqkv.lora_B.weight')!;
    expect(wqkv.shape).toEqual([(4 + 2 * 2) * 12, 4]);
    // PEFT: only the adapters of a wrapped part train; the projector still trains (stage2), the bases do not.
    expect(withLora.params.filter((p) => p.trainable).map((p) => p.name).every((n) => /\.lora_[AB]\.weight$/.test(n) || n.startsWith('mlp1.'))).toBe(true);
    expect(adapters.every((p) => p.trainable)).toBe(true);
    expect(withLora.metadata['vlmc.lora.language_model']).toBe('r=4 alpha=8 scaling=2 dropout=0.05 targets=attention.wqkv,attention.wo,feed_forward.w1,feed_forward.w2,feed_forward.w3');
    expect(withLora.metadata['vlmc.lora.vision_model']).toBe('r=2 alpha=4 scaling=2 dropout=0.05 targets=attn.qkv,attn.proj,mlp.fc1,mlp.fc2');
    const lock = lockText(withLora);
    expect(lock).toContain('vlmc.lora.language_model "r=4 alpha=8');
    const d = diffSummaries(plain, withLora);
    expect(d.metadata.map((c) => c.key).sort()).toEqual(['vlmc.lora.language_model', 'vlmc.lora.vision_model']);
    expect(renderText(d)).toContain('vlmc.lora.language_model: (none) -> "r=4 alpha=8');
  });
});
