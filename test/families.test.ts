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
    const { graph } = await build({ weights, out, target });
    // --target gpu: every sparse block is ONNX Runtime's MoE (Qwen3-MoE: norm_topk_prob, plain SwiGLU, no clamp).
    const moe = graph.nodes.filter((n) => n.op === 'MoE').map((n) => [n.attrs.normalize_routing_weights?.value, n.attrs.activation_alpha?.value, n.attrs.activation_beta?.value, n.attrs.swiglu_limit]);
    expect(moe).toEqual(target === 'gpu' && kase === 'qwen3-moe' ? Array(3).fill([1, 1, 0, undefined]) : []);
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

  it('a GPT-OSS config with MXFP4 experts is read; any other quantization_config is refused naming the field', async () => {
    const { llmFromHF } = await import('../src/models/llm/index.ts');
    const cfg = { architectures: ['GptOssForCausalLM'], hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 2, intermediate_size: 32, vocab_size: 64 };
    expect(llmFromHF({ ...cfg, quantization_config: { quant_method: 'mxfp4' } }, 'llm_config').config.moe?.intermediate).toBe(32);
    expect(() => llmFromHF({ ...cfg, quantization_config: { quant_method: 'gptq' } }, 'llm_config')).toThrow(/llm_config: field 'quantization_config' \(quant_method "gptq"\) is not supported/);
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

/**
 * GPT-OSS's MXFP4 experts (the Hugging Face layout of openai/gpt-oss: `experts.{gate_up,down}_proj_blocks`
 * uint8 [E, R, K/32, 16] and `_scales` uint8 [E, R, K/32]) are dequantised while binding exactly as
 * transformers 5.17's convert_moe_packed_tensors does. Oracle: the same checkpoint with the experts
 * written in float (every MXFP4 value is exact in float32) binds to the same bytes and the same logits.
 */
describe('GPT-OSS MXFP4 experts', () => {
  // transformers' FP4_VALUES, written out here so the test does not share the implementation's table.
  const LUT = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];
  /** convert_moe_packed_tensors, literally: [E, R, G, 16] -> [E, R, G*32] (lo nibble even, hi odd) * 2^(s-127), then transpose(1, 2). */
  function reference(blocks: Uint8Array, scales: Uint8Array, [E, R, G]: number[]): Float32Array {
    const K = G! * 32;
    const rows = new Float64Array(E! * R! * K);
    for (let i = 0; i < E! * R! * G!; i++) {
      for (let j = 0; j < 16; j++) {
        const b = blocks[i * 16 + j]!;
        rows[i * 32 + 2 * j] = LUT[b & 15]! * 2 ** (scales[i]! - 127);
        rows[i * 32 + 2 * j + 1] = LUT[b >> 4]! * 2 ** (scales[i]! - 127);
      }
    }
    const out = new Float32Array(rows.length);
    for (let e = 0; e < E!; e++) for (let r = 0; r < R!; r++) for (let k = 0; k < K; k++) out[(e * K + k) * R! + r] = rows[(e * R! + r) * K + k]!;
    return out;
  }

  it('the nibble order, e8m0 bias and transposition are transformers\'', async () => {
    const { dequantizeMxfp4Expert } = await import('../src/quant/mxfp4.ts');
    // One expert, 2 rows, one block: row 0 byte 0 = 0x2F (lo 0xF = -6, hi 0x2 = 1), scale 128 (x2); row 1 byte 15 = 0x70 (lo 0, hi 6), scale 125 (/4).
    const blocks = new Uint8Array(32);
    blocks[0] = 0x2f;
    blocks[31] = 0x70;
    const w = dequantizeMxfp4Expert(blocks, Uint8Array.of(128, 125), 2, 1);
    // [K = 32, R = 2]: (k, r) at k * 2 + r.
    expect([w[0], w[2], w[30 * 2 + 1], w[31 * 2 + 1]]).toEqual([-12, 2, 0, 1.5]);
    expect(Array.from(w).filter((v) => v !== 0).length).toBe(3);
    const random = Uint8Array.from({ length: 3 * 4 * 2 * 16 }, (_, i) => (i * 97 + 13) % 256);
    const sc = Uint8Array.from({ length: 3 * 4 * 2 }, (_, i) => 100 + ((i * 7) % 60));
    const all = new Float32Array(3 * 64 * 4);
    for (let e = 0; e < 3; e++) all.set(dequantizeMxfp4Expert(random.subarray(e * 128, (e + 1) * 128), sc.subarray(e * 8, (e + 1) * 8), 4, 2), e * 256);
    expect(all).toEqual(reference(random, sc, [3, 4, 2]));
  });

  it('a checkpoint with MXFP4 experts binds the float checkpoint\'s bytes and gives its logits', async () => {
    const { gptOss, internvl, internViT } = await import('../src/index.ts');
    const { assignPaths, collectParams } = await import('../src/dsl/module.ts');
    const { GraphParam } = await import('../src/ir/graph.ts');
    const { initialValues, mulberry32 } = await import('../src/bind/init.ts');
    const { internvlConfigJson } = await import('../src/models/to-config.ts');
    const { writeSafetensors } = await import('../src/checkpoint/safetensors-write.ts');
    const { mkdirSync, writeFileSync } = await import('node:fs');
    // As internvl-gpt-oss-tiny, with MXFP4's 32-multiples for hidden and intermediate.
    const model = internvl({
      name: 'internvl-gpt-oss-mxfp4',
      vision: internViT({ hidden: 32, heads: 4, layers: 1, intermediate: 64, imageSize: 56, patchSize: 14, norm: 'layer_norm', qkvBias: true, qkNorm: false, eps: 1e-6 }),
      llm: gptOss({
        hidden: 64, heads: 4, kvHeads: 2, headDim: 16, layers: 2, intermediate: 32, vocab: 200, rmsNormEps: 1e-5, ropeTheta: 150_000, maxPositions: 131_072,
        ropeScaling: { type: 'yarn', factor: 32, originalMaxPositions: 4096, betaFast: 32, betaSlow: 1, truncate: false },
        tieEmbeddings: false, qkvBias: true, oBias: true, slidingWindow: 4, layerTypes: ['sliding_attention', 'full_attention'],
        // A limit of 0.5 clamps some gate / up activations at these weights.
        moe: { experts: 6, topK: 2, intermediate: 32, swigluLimit: 0.5, swigluAlpha: 1.702 },
      }),
      downsampleRatio: 0.5, psVersion: 'v2', selectLayer: -1,
    });
    assignPaths(model);
    const rand = mulberry32(17);
    const dense: Parameters<typeof writeSafetensors>[1][number][] = [];
    const packed: typeof dense = [];
    for (const p of collectParams(model).map((q) => new GraphParam(q))) {
      const f32 = (values: Float32Array) => new Uint8Array(values.buffer);
      const expert = /experts\.(gate_up|down)_proj$/.test(p.name);
      if (!expert) {
        // Biases and sinks drawn too (their init is zeros), so every term of the layer is exercised.
        const init = p.init.kind === 'zeros' ? { kind: 'normal' as const, std: 0.02 } : p.init;
        const t = { name: p.name, dtype: 'F32' as const, shape: p.shape, data: f32(initialValues(init, p.shape.reduce((a, b) => a * b, 1), 3, p.name)) };
        dense.push(t);
        packed.push(t);
        continue;
      }
      const [E, K, R] = p.shape as [number, number, number];
      const G = K / 32;
      const blocks = Uint8Array.from({ length: E * R * G * 16 }, () => Math.floor(rand() * 256));
      // Exponents 2^-8 .. 2^-5: weights up to 0.19, like a trained expert's.
      const scales = Uint8Array.from({ length: E * R * G }, () => 119 + Math.floor(rand() * 4));
      dense.push({ name: p.name, dtype: 'F32', shape: p.shape, data: f32(reference(blocks, scales, [E, R, G])) });
      packed.push({ name: `${p.name}_blocks`, dtype: 'U8', shape: [E, R, G, 16], data: blocks }, { name: `${p.name}_scales`, dtype: 'U8', shape: [E, R, G], data: scales });
    }
    const config = internvlConfigJson(model) as Record<string, Record<string, unknown>>;
    const dirs = { float: path.join(work, 'mxfp4-float'), mxfp4: path.join(work, 'mxfp4-packed'), gptq: path.join(work, 'mxfp4-gptq') };
    const quantized = (method: string) => ({ ...config, llm_config: { ...config.llm_config, quantization_config: { quant_method: method, modules_to_not_convert: ['model.layers.*.self_attn', 'model.layers.*.mlp.router', 'model.embed_tokens', 'lm_head'] } } });
    for (const [dir, cfg, tensors] of [[dirs.float, config, dense], [dirs.mxfp4, quantized('mxfp4'), packed], [dirs.gptq, quantized('gptq'), packed]] as const) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
      await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
    }
    const built = async (dir: string, target: 'portable' | 'gpu' = 'portable') => {
      const out = `${dir}.${target}`;
      const { graph } = await build({ weights: dir, out, imgContextTokenId: 192, target });
      const moe = graph.nodes.filter((n) => n.op === 'MoE').map((n) => Object.fromEntries(Object.entries(n.attrs).map(([k, a]) => [k, a.value])));
      return { manifest: readManifest(out), moe, logits: (await runArtifact(out, path.join(FAMILIES, 'phi3-sliding', 'inputs.safetensors'), `${out}.run.safetensors`)).logits!.data as Float32Array };
    };
    const [f, q, gpu] = [await built(dirs.float), await built(dirs.mxfp4), await built(dirs.mxfp4, 'gpu')];
    // Every parameter's bytes are the float checkpoint's (sha256 over the bound values).
    expect(q.manifest.parameters.map((p) => [p.name, p.sha256])).toEqual(f.manifest.parameters.map((p) => [p.name, p.sha256]));
    const gateUp = q.manifest.parameters.find((p) => p.name.endsWith('layers.1.mlp.experts.gate_up_proj'))!;
    expect(gateUp.source).toMatchObject({ key: ['language_model.model.layers.1.mlp.experts.gate_up_proj_blocks', 'language_model.model.layers.1.mlp.experts.gate_up_proj_scales'], dtype: 'U8', transform: expect.stringMatching(/^mxfp4 dequantise/) });
    expect(maxAbsError(q.logits, f.logits)).toBe(0);
    expect(Math.max(...Array.from(f.logits, Math.abs))).toBeGreaterThan(1e-3);
    // --target gpu: each layer's experts are ONNX Runtime's MoE kernel, GPT-OSS's routing and clamped SwiGLU as attributes.
    expect(f.moe).toEqual([]);
    expect(gpu.moe).toEqual(Array(2).fill({ k: 2, activation_type: 'swiglu', swiglu_fusion: 1, activation_alpha: expect.closeTo(1.702, 6), activation_beta: 1, swiglu_limit: 0.5, normalize_routing_weights: 1 }));
    measured.push(`gpt-oss mxfp4 (random weights) --target gpu (MoE kernel) vs portable: logits ${maxAbsError(gpu.logits, f.logits).toExponential(2)}`);
    expect(maxAbsError(gpu.logits, f.logits)).toBeLessThan(1e-5);
    await expect(build({ weights: dirs.gptq, out: `${dirs.gptq}.out`, imgContextTokenId: 192 })).rejects.toThrow(/config\.json: field 'llm_config\.quantization_config' \(quant_method "gptq"\) is not supported/);
  });
});
