/**
 * The LLM-family fixtures (../shared/fixtures/families, made by transformers 5.17 in float64): each
 * case in both checkpoint layouts, through the single graph (portable and --target gpu), the split
 * artifact's KV-cache generation (portable and fused) and the training graph.
 *
 * phi3-sliding: the window on every layer, crossed in the prompt and in generation. The HF-native
 * layout is transformers' Phi-3 (W keys); the original layout is InternVL's own Phi-3, which keeps
 * W + 1 keys (expected-original / generation-original).
 * qwen3-moe: 8 experts, top-2 over the softmax, renormalised, on every layer; per-expert keys.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as ortNs from 'onnxruntime-node';
import { build } from '../src/build.ts';
import { openSession, run, type HostTensor } from '../src/runtime/session.ts';
import { readInputs } from '../src/runtime/tensor-files.ts';
import { runArtifact } from '../src/run.ts';
import { readManifest } from '../src/artifact/format.ts';
import { generateFromArtifact } from '../src/generate/generate.ts';
import { boundTrainableWeights } from '../src/train/weights.ts';
import { SafetensorsFile } from '../src/checkpoint/safetensors.ts';
import { FIXTURES, maxAbsError, readFloats, removeDir, tempDir } from './helpers.ts';

const ort = ((ortNs as unknown as { default?: typeof ortNs }).default ?? ortNs) as typeof ortNs;
const FAMILIES = path.join(FIXTURES, 'families');
const TOL = 1e-4;
const work = tempDir('vlmc-families-');
afterAll(() => removeDir(work));

interface Layout {
  layout: 'unified' | 'original';
  /** The numbers this layout's code computes (InternVL's own Phi-3 differs in its window). */
  expected: string;
  generation: string;
}

function layoutsOf(kase: string): Layout[] {
  const dir = path.join(FAMILIES, kase);
  const own = (name: string) => (existsSync(path.join(dir, `${name}-original.safetensors`)) ? `${name}-original.safetensors` : `${name}.safetensors`);
  return [
    { layout: 'unified', expected: 'expected.safetensors', generation: 'generation.safetensors' },
    { layout: 'original', expected: own('expected'), generation: own('generation') },
  ];
}

async function readTokens(file: string): Promise<number[]> {
  const st = await SafetensorsFile.open(file);
  try {
    return Array.from(new BigInt64Array((await st.readAll(st.entry('tokens'))).slice().buffer), Number);
  } finally {
    await st.close();
  }
}

const CASES = ['phi3-sliding', 'qwen3-moe'];

/** (g / |g| + r / |r|) / |...| for a random r; r alone where g is zero (an expert no token chose). */
function unitDirection(g: Float32Array, random: () => number): Float32Array {
  const r = Float32Array.from(g, () => random());
  const norm = (v: Float32Array) => Math.sqrt(v.reduce((a, x) => a + x * x, 0)) || 1;
  const [gn, rn] = [norm(g), norm(r)];
  const d = r.map((v, i) => g[i]! / gn + v / rn);
  const dn = norm(d);
  return d.map((v) => v / dn);
}
const measured: string[] = [];
afterAll(() => console.log(`[families] max abs error vs transformers 5.17 float64 (tolerance ${TOL}):\n  ${measured.join('\n  ')}`));

describe.each(CASES.flatMap((kase) => layoutsOf(kase).map((l) => ({ kase, ...l }))))('$kase, $layout layout', ({ kase, layout, expected, generation }) => {
  const fx = path.join(FAMILIES, kase);
  const weights = path.join(fx, layout);
  const dir = path.join(work, `${kase}-${layout}`);

  it.each(['portable', 'gpu'] as const)('single graph, --target %s: logits and vit_embeds within 1e-4', async (target) => {
    const out = path.join(dir, `single-${target}`);
    await build({ weights, out, target });
    const got = await runArtifact(out, path.join(fx, 'inputs.safetensors'), `${out}.out.safetensors`);
    for (const key of ['logits', 'vit_embeds']) {
      const err = maxAbsError(got[key]!.data as Float32Array, await readFloats(path.join(fx, expected), key));
      measured.push(`${kase} ${layout} single ${target} ${key}: ${err.toExponential(2)}`);
      expect(err, key).toBeLessThanOrEqual(TOL);
    }
  });

  it.each(['portable', 'gpu'] as const)('split, --target %s: run gives the logits; generate reproduces the greedy tokens and every step\'s logits across the window', async (target) => {
    const out = path.join(dir, `split-${target}`);
    await build({ weights, out, target, split: true });
    const ran = await runArtifact(out, path.join(fx, 'inputs.safetensors'), `${out}.run.safetensors`);
    const runErr = maxAbsError(ran.logits!.data as Float32Array, await readFloats(path.join(fx, expected), 'logits'));
    measured.push(`${kase} ${layout} split run ${target}: logits ${runErr.toExponential(2)}`);
    expect(runErr).toBeLessThanOrEqual(TOL);
    const inputs = await readInputs(path.join(fx, 'gen_inputs.safetensors'));
    const got = await generateFromArtifact(out, inputs as never, { maxNewTokens: 8, ignoreEos: true });
    expect(got.tokens.flat()).toEqual(await readTokens(path.join(fx, generation)));
    const err = maxAbsError(got.logits, await readFloats(path.join(fx, generation), 'logits'));
    measured.push(`${kase} ${layout} generate ${target}: logits ${err.toExponential(2)}`);
    expect(err).toBeLessThanOrEqual(TOL);
  });
});

/**
 * train.onnx computes the windowed forward (its loss is the fixture's) and its gradients are the
 * derivative of that loss: central differences (Richardson-extrapolated, float32) in a random
 * unit direction of each trainable tensor of the last layer agree to 1e-3 relative + 2e-4 absolute.
 */
/** What a training check builds: a fixture case's HF-native checkpoint, or a graph file with random weights. */
interface TrainingCase {
  label: string;
  build: Partial<Parameters<typeof build>[0]>;
  inputs: string;
  layers: number;
  /** The fixture's loss, where there is one. */
  expected?: string;
}

const TRAINING: TrainingCase[] = [
  ...CASES.map((kase) => ({
    label: kase,
    build: { weights: path.join(FAMILIES, kase, 'unified') },
    inputs: path.join(FAMILIES, kase, 'inputs.safetensors'),
    layers: JSON.parse(readFileSync(path.join(FAMILIES, kase, 'unified/config.json'), 'utf8')).text_config.num_hidden_layers as number,
    expected: path.join(FAMILIES, kase, 'expected.safetensors'),
  })),
  // GPT-OSS has no fixture here: its sinks, router, experts and windowed attention with random weights.
  { label: 'gpt-oss (random weights)', build: { graph: path.join(import.meta.dirname, 'graphs/internvl-gpt-oss-tiny.ts'), init: 'random', seed: 5 }, inputs: path.join(FAMILIES, 'phi3-sliding', 'inputs.safetensors'), layers: 2 },
];

describe.each(TRAINING)('$label training graph', (t) => {
  let session: ortNs.InferenceSession;
  let feeds: Record<string, HostTensor>;
  let trained: { name: string; grad: string }[];
  beforeAll(async () => {
    const out = path.join(work, `${t.label.replace(/\W+/g, '-')}-train`);
    await build({ ...t.build, out, train: true, preset: 'full' });
    const manifest = readManifest(out);
    session = await openSession(out, ['cpu'], 'train');
    feeds = await readInputs(t.inputs, session.inputNames);
    Object.assign(feeds, await boundTrainableWeights(out, manifest, session.inputNames.filter((n) => !(n in feeds))));
    // The last layer's tensors: its router and two experts stand for all (each costs four runs).
    const last = `language_model.model.layers.${t.layers - 1}.`;
    trained = manifest.train!.trainable.filter((p) => p.key.startsWith(last) && !/\.experts\.([2-9]|\d\d+)\./.test(p.key));
  });
  afterAll(() => session?.release());

  it.skipIf(!t.expected)("loss equals the fixture's (1e-5)", async () => {
    const loss = (await run(session, feeds)).loss!.data as Float32Array;
    expect(Math.abs(loss[0]! - (await readFloats(t.expected!, 'loss'))[0]!)).toBeLessThanOrEqual(1e-5);
  });

  it('gradients of the last layer match central differences', async () => {
    expect(trained.length).toBeGreaterThan(2);
    const base = await run(session, feeds);
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
    const lossAt = async (name: string, values: Float32Array) => {
      const shape = feeds[name]!.shape;
      const r = await session.run(Object.fromEntries(Object.entries({ ...feeds, [name]: { ...feeds[name]!, data: values } }).map(([n, t]) => [n, new ort.Tensor(t.dtype as 'float32', t.data as Float32Array, n === name ? shape : t.shape)])));
      return Number(r.loss!.data[0]);
    };
    for (const { name, grad: gradName } of trained) {
      const x = feeds[name]!.data as Float32Array;
      const grad = base[gradName]!.data as Float32Array;
      // A unit direction half along the gradient (so the derivative is well above float32 noise),
      // half random; steps of 1e-2 keep every token on its experts (the fixture's routing gap: 0.043).
      const d = unitDirection(grad, random);
      const central = async (eps: number) => ((await lossAt(name, x.map((v, i) => v + eps * d[i]!))) - (await lossAt(name, x.map((v, i) => v - eps * d[i]!)))) / (2 * eps);
      // Richardson: (4 D(h/2) - D(h)) / 3 cancels the h^2 term, which float32 cannot afford to shrink.
      const fd = (4 * (await central(5e-3)) - (await central(1e-2))) / 3;
      const analytic = grad.reduce((acc, g, i) => acc + g * d[i]!, 0);
      // float32 rounding of a loss near 6 leaves about 1e-4 of absolute noise in the difference quotient.
      expect(Math.abs(fd - analytic), `${name}: fd ${fd} vs analytic ${analytic}`).toBeLessThanOrEqual(2e-4 + 1e-3 * Math.abs(analytic));
    }
  });
});

/** The configs vlmc writes say the window in each layout's own terms, and read back to the same model. */
describe('sliding-window config round trip', () => {
  it("an original-layout Phi-3 (W + 1 keys) writes sliding_window W for InternVL's code and W + 1 for transformers'", async () => {
    const { internvlFromConfig } = await import('../src/models/from-config.ts');
    const { llmConfigJson } = await import('../src/models/to-config.ts');
    const { llmFromHF } = await import('../src/models/llm/index.ts');
    const cfg = JSON.parse(readFileSync(path.join(FAMILIES, 'phi3-sliding/original/config.json'), 'utf8'));
    const llm = internvlFromConfig(cfg, 'config.json').language_model;
    expect(llm.config.slidingWindow).toBe(9);
    expect(llmConfigJson(llm).sliding_window).toBe(8);
    expect(llmConfigJson(llm, 'transformers').sliding_window).toBe(9);
    expect(llmFromHF(llmConfigJson(llm, 'transformers'), 'text_config', 'transformers').config.slidingWindow).toBe(9);
  });

  it('GPT-OSS and Qwen3-MoE configs read back to the same decoder (experts, window, YaRN, clamp)', async () => {
    const { llmConfigJson } = await import('../src/models/to-config.ts');
    const { llmFromHF } = await import('../src/models/llm/index.ts');
    const gptOss = { architectures: ['GptOssForCausalLM'], hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 3, intermediate_size: 24, num_local_experts: 6, num_experts_per_tok: 2, vocab_size: 64, swiglu_limit: 0.5 };
    const moe = { architectures: ['Qwen3MoeForCausalLM'], hidden_size: 32, num_attention_heads: 4, num_hidden_layers: 3, intermediate_size: 64, vocab_size: 64, num_experts: 4, num_experts_per_tok: 2, moe_intermediate_size: 8, mlp_only_layers: [1], use_sliding_window: true, sliding_window: 8 };
    for (const cfg of [gptOss, moe]) {
      const llm = llmFromHF(cfg, 'llm_config');
      expect(llmFromHF(llmConfigJson(llm), 'written').config).toEqual(llm.config);
    }
    const read = llmFromHF(gptOss, 'llm_config').config;
    expect(read).toMatchObject({ headDim: 64, qkvBias: true, slidingWindow: 128, layerTypes: ['sliding_attention', 'full_attention', 'sliding_attention'], ropeTheta: 150000 });
    expect(read.ropeScaling).toMatchObject({ type: 'yarn', factor: 32, originalMaxPositions: 4096, truncate: false });
  });

  it('a GPT-OSS checkpoint with MXFP4 experts is refused naming quantization_config', async () => {
    const { llmFromHF } = await import('../src/models/llm/index.ts');
    expect(() => llmFromHF({ architectures: ['GptOssForCausalLM'], hidden_size: 64, num_attention_heads: 4, num_hidden_layers: 2, intermediate_size: 24, vocab_size: 64, quantization_config: { quant_method: 'mxfp4' } }, 'llm_config')).toThrow(/llm_config: field 'quantization_config' \(quant_method "mxfp4"\) is not supported/);
  });

  it('a Qwen2 window on a suffix of layers writes max_window_layers, any other pattern layer_types', async () => {
    const { llmConfigJson } = await import('../src/models/to-config.ts');
    const { llmFromHF } = await import('../src/models/llm/index.ts');
    const base = { architectures: ['Qwen2ForCausalLM'], hidden_size: 32, num_attention_heads: 4, num_hidden_layers: 3, intermediate_size: 64, vocab_size: 64, max_position_embeddings: 512, use_sliding_window: true, sliding_window: 16 };
    for (const extra of [{ max_window_layers: 1 }, { layer_types: ['sliding_attention', 'full_attention', 'sliding_attention'] }]) {
      const llm = llmFromHF({ ...base, ...extra }, 'llm_config');
      const json = llmConfigJson(llm);
      expect(json).toMatchObject({ use_sliding_window: true, sliding_window: 16, ...extra });
      expect(llmFromHF(json, 'written').config).toEqual(llm.config);
    }
  });
});

/** Which decoder layers become GroupQueryAttention, per target (compiled structure-only, the split decoder). */
describe('gqa fusion of windowed and sink attention', () => {
  const decoderGqa = async (llm: Record<string, unknown>, target: 'gpu' | 'webgpu') => {
    const { internvlFromConfig } = await import('../src/models/from-config.ts');
    const { compile } = await import('../src/compile.ts');
    const cfg = JSON.parse(readFileSync(path.join(FAMILIES, 'qwen3-moe/original/config.json'), 'utf8'));
    const model = internvlFromConfig({ ...cfg, llm_config: llm }, 'config.json');
    const graph = compile(model, { entry: 'decoder', target, structureOnly: true });
    return graph.nodes.filter((n) => n.op === 'GroupQueryAttention').map((n) => ({ layer: /layers\/(\d+)/.exec(n.name)![1], window: n.attrs.local_window_size?.value, sinks: n.inputs.length > 7 }));
  };
  const qwen2 = { architectures: ['Qwen2ForCausalLM'], hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 2, intermediate_size: 96, vocab_size: 200, use_sliding_window: true, sliding_window: 4, max_window_layers: 1 };
  const gptOss = { architectures: ['GptOssForCausalLM'], hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, num_hidden_layers: 2, intermediate_size: 24, num_local_experts: 4, num_experts_per_tok: 2, vocab_size: 200, sliding_window: 4 };

  it('--target gpu: local_window_size W on sliding layers, head_sink for sinks', async () => {
    expect(await decoderGqa(qwen2, 'gpu')).toEqual([{ layer: '0', window: undefined, sinks: false }, { layer: '1', window: 4, sinks: false }]);
    expect(await decoderGqa(gptOss, 'gpu')).toEqual([{ layer: '0', window: 4, sinks: true }, { layer: '1', window: undefined, sinks: true }]);
  });

  it('--target webgpu: only plain causal layers fuse; windowed and sink attention stay decomposed', async () => {
    expect(await decoderGqa(qwen2, 'webgpu')).toEqual([{ layer: '0', window: undefined, sinks: false }]);
    expect(await decoderGqa(gptOss, 'webgpu')).toEqual([]);
  });
});
