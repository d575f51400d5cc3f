/**
 * vlmc vs the float64 reference (test/reference/internvl-reference.ts, itself proven against the
 * shared fixtures in reference.test.ts) on variants the fixtures do not cover: InternViT-6B style
 * vision, other select_layer values, Llama-3 / Phi-3 / InternLM2-dynamic LLMs, ps_version v1,
 * image_flags 0, BF16 and sharded checkpoints, and position-embedding interpolation.
 *
 * Each case writes a small random unified checkpoint (config.json, safetensors, added_tokens.json)
 * to a temp dir, builds it with vlmc, runs it with onnxruntime and compares with the reference
 * computed from the same files.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { build } from '../src/build.ts';
import { openSession, run, type HostTensor } from '../src/runtime/session.ts';
import { writeSafetensors, type TensorToWrite } from '../src/checkpoint/safetensors-write.ts';
import { f32ToBf16 } from '../src/tensor/convert.ts';
import { internvlFromConfig } from '../src/models/from-config.ts';
import { assignPaths, collectParams } from '../src/dsl/module.ts';
import { internvlReference, loadConfig, loadWeights } from './reference/internvl-reference.ts';

type Json = Record<string, unknown>;
const TOL = 1e-4;
const ROOT = mkdtempSync(path.join(tmpdir(), 'vlmc-variants-'));
const results: string[] = [];

afterAll(() => {
  rmSync(ROOT, { recursive: true, force: true });
  console.log(`[variants] max abs error vs float64 reference (tolerance ${TOL}):\n  ${results.join('\n  ')}`);
});

// ---------------------------------------------------------------------------------------------
// Seeded randomness

function rng(seed: number): { uniform: () => number; normal: () => number } {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => {
    const u = Math.max(uniform(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
  };
  return { uniform, normal };
}

// ---------------------------------------------------------------------------------------------
// Configs

function visionConfig(o: Partial<{ norm: string; qkNorm: boolean; qkvBias: boolean; layers: number; imageSize: number }> = {}): Json {
  return {
    architectures: ['InternVisionModel'],
    model_type: 'intern_vit_6b',
    hidden_size: 32,
    num_attention_heads: 4,
    num_hidden_layers: o.layers ?? 2,
    intermediate_size: 64,
    image_size: o.imageSize ?? 56,
    patch_size: 14,
    num_channels: 3,
    hidden_act: 'gelu',
    norm_type: o.norm ?? 'layer_norm',
    qkv_bias: o.qkvBias ?? true,
    qk_normalization: o.qkNorm ?? false,
    layer_norm_eps: 1e-6,
    initializer_factor: 0.1,
    initializer_range: 1e-10,
    dropout: 0.0,
    attention_dropout: 0.0,
    drop_path_rate: 0.0,
    use_flash_attn: false,
  };
}

function qwen2Config(): Json {
  return {
    architectures: ['Qwen2ForCausalLM'],
    model_type: 'qwen2',
    hidden_size: 48,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    num_hidden_layers: 2,
    intermediate_size: 96,
    vocab_size: 128,
    hidden_act: 'silu',
    rms_norm_eps: 1e-6,
    rope_theta: 1000000.0,
    max_position_embeddings: 32768,
    tie_word_embeddings: true,
    use_sliding_window: false,
    bos_token_id: 0,
    eos_token_id: 1,
  };
}

function llama3Config(): Json {
  // head_dim 16 with theta 500000 gives wavelengths 6.3, 32.5, 168, ...: with original_max 64 the
  // first is kept (< 64/4), the second smoothed, the rest divided by 8.
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: 64,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    num_hidden_layers: 2,
    intermediate_size: 128,
    vocab_size: 150,
    hidden_act: 'silu',
    rms_norm_eps: 1e-5,
    rope_theta: 500000.0,
    max_position_embeddings: 256,
    rope_scaling: { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 64 },
    tie_word_embeddings: false,
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: 0,
    eos_token_id: 1,
  };
}

function phi3Config(type: 'su' | 'longrope', originalMax: number): Json {
  // head_dim 16 -> 8 factors each; distinct enough that the branch choice shows in the logits.
  return {
    architectures: ['Phi3ForCausalLM'],
    model_type: 'phi3',
    hidden_size: 64,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    num_hidden_layers: 2,
    intermediate_size: 96,
    vocab_size: 140,
    hidden_act: 'silu',
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    max_position_embeddings: 4096,
    original_max_position_embeddings: originalMax,
    rope_scaling: {
      type,
      short_factor: [1.0, 1.05, 1.1, 1.3, 1.6, 2.0, 2.5, 3.0],
      long_factor: [1.0, 1.5, 2.5, 4.0, 6.0, 9.0, 14.0, 20.0],
    },
    tie_word_embeddings: false,
    pad_token_id: 5,
    bos_token_id: 1,
    eos_token_id: 2,
    sliding_window: 262144, // larger than the context, as Phi-3-mini-128k (a window inside it is refused)
  };
}

function qwen3Llm(): Json {
  return {
    architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', hidden_size: 48, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16,
    num_hidden_layers: 2, intermediate_size: 96, vocab_size: 128, hidden_act: 'silu', rms_norm_eps: 1e-6, rope_theta: 1000000.0,
    max_position_embeddings: 40960, tie_word_embeddings: true, attention_bias: false, bos_token_id: 0, eos_token_id: 1,
  };
}

function qwen3MoeLlm(extra: Json = {}): Json {
  return JSON.parse(JSON.stringify({
    ...qwen3Llm(), architectures: ['Qwen3MoeForCausalLM'], model_type: 'qwen3_moe', hidden_size: 64, tie_word_embeddings: false,
    num_experts: 6, num_experts_per_tok: 3, moe_intermediate_size: 24, norm_topk_prob: false, decoder_sparse_step: 1, mlp_only_layers: [], ...extra,
  }));
}

/** openai/gpt-oss-20b's config.json fields, tiny; swiglu_limit 0.1 so the clamp acts on these small activations. */
function gptOssLlm(extra: Json = {}): Json {
  return JSON.parse(JSON.stringify({
    architectures: ['GptOssForCausalLM'], model_type: 'gpt_oss', hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16,
    num_hidden_layers: 2, intermediate_size: 24, num_local_experts: 6, num_experts_per_tok: 2, experts_per_token: 2, vocab_size: 128,
    rms_norm_eps: 1e-5, rope_theta: 150000, max_position_embeddings: 131072, initial_context_length: 4096,
    rope_scaling: { rope_type: 'yarn', factor: 32.0, beta_fast: 32.0, beta_slow: 1.0, truncate: false, original_max_position_embeddings: 4096 },
    sliding_window: 4, layer_types: ['sliding_attention', 'full_attention'], swiglu_limit: 0.1, attention_bias: true,
    tie_word_embeddings: false, hidden_act: 'silu', bos_token_id: 0, eos_token_id: 1, ...extra,
  }));
}

function internlm2Config(o: Partial<{ maxPos: number; scaling: Json }> = {}): Json {
  return {
    architectures: ['InternLM2ForCausalLM'],
    model_type: 'internlm2',
    hidden_size: 64,
    num_attention_heads: 8,
    num_key_value_heads: 2,
    num_hidden_layers: 2,
    intermediate_size: 128,
    vocab_size: 176,
    hidden_act: 'silu',
    rms_norm_eps: 1e-5,
    rope_theta: 1000000,
    max_position_embeddings: o.maxPos ?? 4096,
    rope_scaling: o.scaling ?? { type: 'dynamic', factor: 2.0 },
    bias: false,
    tie_word_embeddings: false,
    pad_token_id: 2,
    attn_implementation: 'eager',
    bos_token_id: 1,
    eos_token_id: 2,
  };
}

function chatConfig(vision: Json, llm: Json, top: Json = {}): Json {
  return {
    architectures: ['InternVLChatModel'],
    model_type: 'internvl_chat',
    downsample_ratio: 0.5,
    ps_version: 'v2',
    select_layer: -1,
    force_image_size: vision.image_size,
    template: 'internvl2_5',
    dynamic_image_size: true,
    use_thumbnail: true,
    max_dynamic_patch: 12,
    min_dynamic_patch: 1,
    pad2square: false,
    use_backbone_lora: 0,
    use_llm_lora: 0,
    hidden_size: llm.hidden_size,
    torch_dtype: 'float32',
    ...top,
    vision_config: vision,
    llm_config: llm,
  };
}

// ---------------------------------------------------------------------------------------------
// Random checkpoints and inputs

interface Variant {
  name: string;
  config: Json;
  seed: number;
  /** Tiles fed to the ViT and their image_flags. */
  flags: number[];
  /** Text tokens before / after the image block in each row (the image block of a row holds its share of flagged tiles). */
  rows: { before: number; tiles: number; after: number }[];
  /** Pad every row on the right to this length (default: the longest row). */
  seqLen?: number;
  storage?: 'F32' | 'BF16';
  shards?: number;
  /**
   * Sensitivity checks: the reference re-run with the variant's feature switched off must move the
   * output by far more than the tolerance, or the comparison would not be testing that feature.
   */
  mutants?: Mutant[];
}

interface Mutant {
  what: string;
  config?: (c: Json) => Json;
  flags?: number[];
  /** Use the unrounded float32 values instead of the checkpoint's (BF16) ones. */
  f32Weights?: boolean;
}

/** Parameter names and shapes of the graph vlmc derives from `config` (shapes only). */
function paramShapes(config: Json): { name: string; shape: number[] }[] {
  const model = internvlFromConfig(config, 'variant config');
  assignPaths(model);
  return collectParams(model).map((p) => ({ name: p.name, shape: [...p.shape] }));
}

function randomValues(name: string, shape: number[], r: ReturnType<typeof rng>): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const last = name.split('.').at(-1)!;
  const isNorm = /norm|mlp1\.0\./.test(name);
  let gen: () => number;
  if (last === 'ls1' || last === 'ls2') gen = () => 0.3 + 0.7 * r.uniform();
  else if (isNorm && last === 'weight') gen = () => 1 + 0.2 * r.normal();
  else if (last === 'bias') gen = () => 0.1 * r.normal();
  else if (name.endsWith('class_embedding') || name.endsWith('position_embedding')) gen = () => 0.5 * r.normal();
  else if (/embed_tokens|tok_embeddings/.test(name)) gen = () => 0.5 * r.normal();
  else {
    const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
    const std = 1 / Math.sqrt(fanIn);
    gen = () => std * r.normal();
  }
  for (let i = 0; i < n; i++) out[i] = gen();
  return out;
}

function tensorsOf(params: { name: string; shape: number[]; values: Float32Array }[], storage: 'F32' | 'BF16'): TensorToWrite[] {
  return params.map(({ name, shape, values }) => {
    if (storage === 'BF16') {
      const h = f32ToBf16(values);
      return { name, dtype: 'BF16', shape, data: new Uint8Array(h.buffer, h.byteOffset, h.byteLength) };
    }
    return { name, dtype: 'F32', shape, data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
  });
}

interface Written {
  dir: string;
  contextId: number;
  params: { name: string; shape: number[]; values: Float32Array }[];
}

const SENSITIVITY = 100 * TOL;

async function writeCheckpoint(dir: string, v: Variant, params: Written['params'], contextId: number): Promise<void> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(v.config, null, 2));
  writeFileSync(path.join(dir, 'added_tokens.json'), JSON.stringify({ '<img>': contextId - 2, '</img>': contextId - 1, '<IMG_CONTEXT>': contextId }));
  const tensors = tensorsOf(params, v.storage ?? 'F32');
  const shards = v.shards ?? 1;
  if (shards === 1) {
    await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
    return;
  }
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    // Round-robin, so every shard holds vision, projector and LLM tensors alike.
    const part = tensors.filter((_, i) => i % shards === s);
    for (const t of part) {
      weightMap[t.name] = file;
      total += t.data.byteLength;
    }
    await writeSafetensors(path.join(dir, file), part);
  }
  writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
}

async function makeCheckpoint(v: Variant, dir: string): Promise<Written> {
  const r = rng(v.seed);
  const params = paramShapes(v.config).map(({ name, shape }) => ({ name, shape, values: randomValues(name, shape, r) }));
  const vocab = (v.config.llm_config as Json).vocab_size as number;
  const contextId = vocab - 1;
  await writeCheckpoint(dir, v, params, contextId);
  return { dir, contextId, params };
}

interface Inputs {
  pixelValues: Float32Array;
  pixelShape: [number, number, number, number];
  inputIds: BigInt64Array;
  inputShape: [number, number];
  imageFlags: BigInt64Array;
}

function tokensPerTile(config: Json): number {
  const vc = config.vision_config as Json;
  const size = (config.force_image_size as number | undefined) ?? (vc.image_size as number);
  const ratio = config.downsample_ratio as number;
  return Math.round((size / (vc.patch_size as number)) ** 2 * ratio * ratio);
}

function makeInputs(v: Variant, contextId: number): Inputs {
  const r = rng(v.seed + 7919);
  const vc = v.config.vision_config as Json;
  const lc = v.config.llm_config as Json;
  const size = (v.config.force_image_size as number | undefined) ?? (vc.image_size as number);
  const tiles = v.flags.length;
  const pixelValues = new Float32Array(tiles * 3 * size * size);
  for (let i = 0; i < pixelValues.length; i++) pixelValues[i] = r.normal();
  const perTile = tokensPerTile(v.config);
  const vocab = lc.vocab_size as number;
  const pad = typeof lc.pad_token_id === 'number' ? (lc.pad_token_id as number) : 0;
  const text = () => 6 + Math.floor(r.uniform() * (vocab - 10));
  const rows = v.rows.map(({ before, tiles: t, after }) => {
    const ids: number[] = [];
    for (let i = 0; i < before; i++) ids.push(text());
    if (t > 0) {
      ids.push(contextId - 2);
      for (let i = 0; i < t * perTile; i++) ids.push(contextId);
      ids.push(contextId - 1);
    }
    for (let i = 0; i < after; i++) ids.push(text());
    return ids;
  });
  const flagged = v.flags.filter((f) => f === 1).length;
  expect(v.rows.reduce((a, b) => a + b.tiles, 0)).toBe(flagged);
  const N = v.seqLen ?? Math.max(...rows.map((x) => x.length));
  const inputIds = new BigInt64Array(rows.length * N);
  rows.forEach((ids, b) => {
    expect(ids.length).toBeLessThanOrEqual(N);
    for (let t = 0; t < N; t++) inputIds[b * N + t] = BigInt(t < ids.length ? ids[t]! : pad);
  });
  return {
    pixelValues,
    pixelShape: [tiles, 3, size, size],
    inputIds,
    inputShape: [rows.length, N],
    imageFlags: BigInt64Array.from(v.flags, (f) => BigInt(f)),
  };
}

// ---------------------------------------------------------------------------------------------
// Running both sides

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function absMax(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

async function runVlmc(checkpoint: string, out: string, inputs: Inputs): Promise<Record<string, HostTensor>> {
  await build({ weights: checkpoint, out });
  const session = await openSession(out);
  try {
    return await run(session, {
      pixel_values: { dtype: 'float32', shape: [...inputs.pixelShape], data: inputs.pixelValues },
      input_ids: { dtype: 'int64', shape: [...inputs.inputShape], data: inputs.inputIds },
      image_flags: { dtype: 'int64', shape: [inputs.imageFlags.length], data: inputs.imageFlags },
    });
  } finally {
    await session.release();
  }
}

interface Compared {
  logits: number;
  vit: number;
  ref: ReturnType<typeof internvlReference>;
  dir: string;
}

async function compare(v: Variant): Promise<Compared> {
  const dir = path.join(ROOT, v.name.replace(/[^a-z0-9]+/gi, '-'));
  const ckpt = path.join(dir, 'checkpoint');
  const { contextId, params } = await makeCheckpoint(v, ckpt);
  const inputs = makeInputs(v, contextId);
  const cfg = loadConfig(ckpt);
  const weights = await loadWeights(ckpt);
  const ref = internvlReference(cfg, weights, inputs, contextId);
  const moved: string[] = [];
  for (const m of v.mutants ?? []) {
    const mc = m.config ? m.config(structuredClone(cfg)) : cfg;
    const mw = m.f32Weights ? new Map(params.map((p) => [p.name, Float64Array.from(p.values)])) : weights;
    const mi = m.flags ? { ...inputs, imageFlags: BigInt64Array.from(m.flags, (f) => BigInt(f)) } : inputs;
    const mr = internvlReference(mc, mw, mi, contextId);
    const d = Math.max(maxAbs(mr.logits, ref.logits), mr.vitEmbeds.length === ref.vitEmbeds.length ? maxAbs(mr.vitEmbeds, ref.vitEmbeds) : Infinity);
    moved.push(`${m.what} moves ${d.toExponential(1)}`);
    expect(d, `reference output should change when ${m.what}`).toBeGreaterThan(SENSITIVITY);
  }
  const got = await runVlmc(ckpt, path.join(dir, 'artifact'), inputs);
  expect(got.logits!.shape).toEqual(ref.logitsShape);
  expect(got.vit_embeds!.shape).toEqual(ref.vitEmbedsShape);
  const logits = maxAbs(got.logits!.data as Float32Array, ref.logits);
  const vit = maxAbs(got.vit_embeds!.data as Float32Array, ref.vitEmbeds);
  results.push(`${v.name}: logits ${logits.toExponential(2)} (|ref| max ${absMax(ref.logits).toFixed(2)}), vit_embeds ${vit.toExponential(2)}${moved.length ? ` [${moved.join('; ')}]` : ''}`);
  return { logits, vit, ref, dir };
}

function expectClose(c: Compared): void {
  // The comparison must mean something: logits and features well away from zero.
  expect(absMax(c.ref.logits)).toBeGreaterThan(0.5);
  expect(absMax(c.ref.vitEmbeds)).toBeGreaterThan(0.5);
  expect(c.vit).toBeLessThanOrEqual(TOL);
  expect(c.logits).toBeLessThanOrEqual(TOL);
}

// ---------------------------------------------------------------------------------------------
// The variants

const twoRows = [
  { before: 3, tiles: 1, after: 4 },
  { before: 2, tiles: 1, after: 2 },
];

/** Mutant helpers: patch the llm_config, its rope_scaling, or the vision_config. */
const llmPatch = (what: string, patch: Json): Mutant => ({ what, config: (c) => ({ ...c, llm_config: { ...(c.llm_config as Json), ...patch } }) });
const visionPatch = (what: string, patch: Json): Mutant => ({ what, config: (c) => ({ ...c, vision_config: { ...(c.vision_config as Json), ...patch } }) });
const topPatch = (what: string, patch: Json): Mutant => ({ what, config: (c) => ({ ...c, ...patch }) });
const ropePatch = (what: string, patch: (rs: Json) => Json): Mutant => ({
  what,
  config: (c) => {
    const l = c.llm_config as Json;
    const rs = l.rope_scaling as Json;
    return { ...c, llm_config: { ...l, rope_scaling: { ...rs, ...patch(rs) } } };
  },
});
const noRopeScaling = llmPatch('rope_scaling is dropped', { rope_scaling: null });

describe('vlmc vs float64 reference on variants', () => {
  it('a. InternViT-6B style: rms_norm, qk_normalization, no qkv bias, select_layer -2 of 3 (Qwen2)', async () => {
    const config = chatConfig(visionConfig({ norm: 'rms_norm', qkNorm: true, qkvBias: false, layers: 3 }), qwen2Config(), { select_layer: -2 });
    expectClose(
      await compare({
        name: 'a vit6b select -2', config, seed: 11, flags: [1, 1], rows: twoRows,
        mutants: [
          topPatch('select_layer is -1', { select_layer: -1 }),
          visionPatch('qk_normalization is off', { qk_normalization: false }),
        ],
      }),
    );
  });

  it('b. select_layer 1 (non-negative index into hidden_states)', async () => {
    const config = chatConfig(visionConfig({ layers: 3 }), qwen2Config(), { select_layer: 1 });
    expectClose(
      await compare({
        name: 'b select 1', config, seed: 12, flags: [1, 1], rows: twoRows,
        mutants: [
          topPatch('select_layer is -1', { select_layer: -1 }),
          topPatch('select_layer is 2', { select_layer: 2 }),
        ],
      }),
    );
  });

  it('b2. select_layer -4 of 4 layers, rms_norm ViT with qk norm', async () => {
    const config = chatConfig(visionConfig({ norm: 'rms_norm', qkNorm: true, qkvBias: false, layers: 4 }), qwen2Config(), { select_layer: -4 });
    expectClose(
      await compare({
        name: 'b2 select -4', config, seed: 13, flags: [1], rows: [{ before: 2, tiles: 1, after: 5 }],
        mutants: [topPatch('select_layer is -3', { select_layer: -3 })],
      }),
    );
  });

  it('c. Llama-3.1 LLM: GQA, rope_theta 500000, llama3 rope_scaling, untied lm_head', async () => {
    const config = chatConfig(visionConfig(), llama3Config());
    expectClose(await compare({ name: 'c llama3', config, seed: 21, flags: [1, 1], rows: twoRows, mutants: [noRopeScaling] }));
  });

  // seq 24 > original_max 16: long factors; attention factor sqrt(1 + ln(4096/16) / ln(16)).
  it("d1. Phi-3 'su' LongRoPE, sequence longer than original_max_position_embeddings (long factors)", async () => {
    const config = chatConfig(visionConfig(), phi3Config('su', 16));
    expectClose(await compare({ name: 'd1 phi3 su long', config, seed: 31, flags: [1, 1], rows: twoRows, seqLen: 24, mutants: [ropePatch('long_factor := short_factor', (rs) => ({ long_factor: rs.short_factor })), ropePatch('the attention factor is 1', () => ({ attention_factor: 1.0 }))] }));
  });

  it("d2. Phi-3 'su' LongRoPE, sequence within original_max_position_embeddings (short factors)", async () => {
    const config = chatConfig(visionConfig(), phi3Config('su', 64));
    expectClose(await compare({ name: 'd2 phi3 su short', config, seed: 32, flags: [1, 1], rows: twoRows, seqLen: 24, mutants: [ropePatch('short_factor := long_factor', (rs) => ({ short_factor: rs.long_factor }))] }));
  });

  it("d3. Phi-3 'longrope' spelling, long branch", async () => {
    const config = chatConfig(visionConfig(), phi3Config('longrope', 12));
    expectClose(await compare({ name: 'd3 phi3 longrope long', config, seed: 33, flags: [1, 1], rows: twoRows, seqLen: 24, mutants: [ropePatch('long_factor := short_factor', (rs) => ({ long_factor: rs.short_factor }))] }));
  });

  it('e. ps_version v1', async () => {
    const config = chatConfig(visionConfig(), qwen2Config(), { ps_version: 'v1' });
    const c = await compare({ name: 'e ps v1', config, seed: 41, flags: [1, 1], rows: twoRows, mutants: [topPatch('ps_version is v2', { ps_version: 'v2' })] });
    expectClose(c);
  });

  it('f. three tiles with image_flags [1, 0, 1]', async () => {
    const config = chatConfig(visionConfig(), internlm2Config());
    const c = await compare({ name: 'f flags 1,0,1', config, seed: 51, flags: [1, 0, 1], rows: [{ before: 3, tiles: 2, after: 4 }, { before: 5, tiles: 0, after: 6 }], mutants: [{ what: 'flags are [1, 1, 0]', flags: [1, 1, 0] }] });
    expect(c.ref.vitEmbedsShape[0]).toBe(3);
    expectClose(c);
  });

  it('g. BF16 checkpoint (reference computes with the bf16-rounded values)', async () => {
    const config = chatConfig(visionConfig({ norm: 'rms_norm', qkNorm: true, qkvBias: false }), qwen2Config(), { torch_dtype: 'bfloat16' });
    expectClose(await compare({ name: 'g bf16', config, seed: 61, flags: [1, 1], rows: twoRows, storage: 'BF16', mutants: [{ what: 'weights are not bf16-rounded', f32Weights: true }] }));
  });

  it('h. sharded checkpoint (3 shards + index); weights byte-identical to the single-file build', async () => {
    const config = chatConfig(visionConfig(), llama3Config());
    const v: Variant = { name: 'h sharded', config, seed: 71, flags: [1, 1], rows: twoRows, shards: 3 };
    const c = await compare(v);
    expectClose(c);
    // The same weights as one file.
    const single = path.join(c.dir, 'single');
    await makeCheckpoint({ ...v, shards: 1 }, single);
    await build({ weights: single, out: path.join(c.dir, 'single-artifact') });
    const a = readFileSync(path.join(c.dir, 'artifact', 'model.onnx.data'));
    const b = readFileSync(path.join(c.dir, 'single-artifact', 'model.onnx.data'));
    expect(a.byteLength).toBeGreaterThan(0);
    expect(a.equals(b)).toBe(true);
  });

  it('i. force_image_size 56 vs vision image_size 28: bicubic position-embedding interpolation', async () => {
    const config = chatConfig(visionConfig({ imageSize: 28 }), qwen2Config(), { force_image_size: 56 });
    const c = await compare({ name: 'i pos-embed 28->56', config, seed: 81, flags: [1, 1], rows: twoRows });
    expect(c.ref.vitEmbedsShape[1]).toBe(4);
    expectClose(c);
  });

  it('j. InternLM2 dynamic NTK with seq_len > max_position_embeddings', async () => {
    const config = chatConfig(visionConfig(), internlm2Config({ maxPos: 8, scaling: { type: 'dynamic', factor: 2.0 } }));
    expectClose(await compare({ name: 'j internlm2 dynamic', config, seed: 91, flags: [1, 1], rows: twoRows, mutants: [llmPatch('max_position_embeddings is 4096 (no NTK)', { max_position_embeddings: 4096 })] }));
  });

  it('k. InternLM2 linear rope scaling', async () => {
    const config = chatConfig(visionConfig(), internlm2Config({ scaling: { type: 'linear', factor: 3.0 } }));
    expectClose(await compare({ name: 'k internlm2 linear', config, seed: 101, flags: [1, 1], rows: twoRows, mutants: [noRopeScaling] }));
  });

  it('l. Llama dynamic NTK past max_position_embeddings, with attention_bias and mlp_bias', async () => {
    const llm = { ...llama3Config(), max_position_embeddings: 8, rope_theta: 10000.0, rope_scaling: { rope_type: 'dynamic', factor: 2.0 }, attention_bias: true, mlp_bias: true };
    expectClose(await compare({ name: 'l llama dynamic+bias', config: chatConfig(visionConfig(), llm), seed: 111, flags: [1, 1], rows: twoRows, mutants: [noRopeScaling] }));
  });

  it('m. select_layer 0 (the embeddings themselves)', async () => {
    const config = chatConfig(visionConfig(), qwen2Config(), { select_layer: 0 });
    expectClose(await compare({ name: 'm select 0', config, seed: 121, flags: [1, 1], rows: twoRows }));
  });

  it('n. Phi-3 without GQA, max_position_embeddings == original (attention factor 1)', async () => {
    const llm = { ...phi3Config('su', 16), num_key_value_heads: 4, max_position_embeddings: 16 };
    expectClose(await compare({ name: 'n phi3 mha factor 1', config: chatConfig(visionConfig(), llm), seed: 131, flags: [1, 1], rows: twoRows, seqLen: 24 }));
  });

  it('p. Phi-3 partial rotary (partial_rotary_factor 0.5: half of each head rotates)', async () => {
    const llm = { ...phi3Config('su', 64), partial_rotary_factor: 0.5, rope_scaling: null };
    const full = (c: Json) => ({ ...c, llm_config: { ...(c.llm_config as Json), partial_rotary_factor: 1 } });
    expectClose(await compare({ name: 'p phi3 partial rotary', config: chatConfig(visionConfig(), llm), seed: 151, flags: [1, 1], rows: twoRows, seqLen: 24, mutants: [{ what: 'the whole head rotates', config: full }] }));
  });

  it('q. Qwen3 LLM: per-head q/k RMSNorm, head_dim 16 from the config (not 48 / 4), tied, batch 2', async () => {
    const llm = qwen3Llm();
    const asLlama: Mutant = { what: 'the q/k norms are dropped (read as Llama)', config: (c) => ({ ...c, llm_config: { ...(c.llm_config as Json), architectures: ['LlamaForCausalLM'], model_type: 'llama' } }) };
    expectClose(await compare({ name: 'q qwen3', config: chatConfig(visionConfig(), llm), seed: 161, flags: [1, 1], rows: twoRows, mutants: [asLlama] }));
  });

  it('w1. Qwen2 sliding window (5 keys) on the layers from max_window_layers (1 of 2)', async () => {
    const llm = { ...qwen2Config(), use_sliding_window: true, sliding_window: 5, max_window_layers: 1 };
    expectClose(
      await compare({
        name: 'w1 qwen2 window', config: chatConfig(visionConfig(), llm), seed: 171, flags: [1, 1], rows: twoRows,
        mutants: [llmPatch('use_sliding_window is false', { use_sliding_window: false }), llmPatch('both layers slide', { max_window_layers: 0 }), llmPatch('the window is 6', { sliding_window: 6 })],
      }),
    );
  });

  it('w2. Qwen2 layer_types [sliding, full] (max_window_layers ignored)', async () => {
    const llm = { ...qwen2Config(), use_sliding_window: true, sliding_window: 4, max_window_layers: 2, layer_types: ['sliding_attention', 'full_attention'] };
    expectClose(
      await compare({
        name: 'w2 qwen2 layer_types', config: chatConfig(visionConfig(), llm), seed: 172, flags: [1, 1], rows: twoRows,
        mutants: [llmPatch('layer_types reversed', { layer_types: ['full_attention', 'sliding_attention'] })],
      }),
    );
  });

  it('y1. Qwen3 YaRN: factor 4 with original_max 32768 < max 40960 (transformers 5 keeps the explicit factor), attention factor 1 + 0.1 ln 4', async () => {
    const llm = { ...qwen3Llm(), rope_scaling: { rope_type: 'yarn', factor: 4.0, original_max_position_embeddings: 32768 } };
    const mutants = [noRopeScaling, ropePatch('factor := max / original (transformers 4 reading)', () => ({ factor: 40960 / 32768 })), ropePatch('the attention factor is 1', () => ({ attention_factor: 1.0 }))];
    expectClose(await compare({ name: 'y1 qwen3 yarn', config: chatConfig(visionConfig(), llm), seed: 181, flags: [1, 1], rows: twoRows, mutants }));
  });

  it('y2. YaRN as DeepSeek / GPT-OSS spell it: truncate false, beta_fast 24, beta_slow 1.5, mscale / mscale_all_dim, factor null (65536 / 4096)', async () => {
    const llm = { ...qwen2Config(), max_position_embeddings: 65536, rope_theta: 10000.0, rope_scaling: { rope_type: 'yarn', factor: null, original_max_position_embeddings: 4096, truncate: false, beta_fast: 24, beta_slow: 1.5, mscale: 1.0, mscale_all_dim: 0.5 } };
    const mutants = [ropePatch('truncate is true', () => ({ truncate: true })), ropePatch('mscale_all_dim is dropped', () => ({ mscale_all_dim: null }))];
    expectClose(await compare({ name: 'y2 yarn variants', config: chatConfig(visionConfig(), llm), seed: 182, flags: [1, 1], rows: twoRows, mutants }));
  });

  it('y3. proportional RoPE (transformers 5): 3 of 6 frequency pairs turn, over the whole head, factor 2', async () => {
    const llm = { ...qwen2Config(), partial_rotary_factor: 0.5, rope_scaling: { rope_type: 'proportional', factor: 2.0 } };
    const mutants = [llmPatch('every pair turns (linear, factor 2)', { rope_scaling: { rope_type: 'linear', factor: 2.0 } })];
    expectClose(await compare({ name: 'y3 proportional', config: chatConfig(visionConfig(), llm), seed: 183, flags: [1, 1], rows: twoRows, mutants }));
  });

  it('m1. Qwen3-MoE: 6 experts, top-3, norm_topk_prob false, decoder_sparse_step 2 (layer 1 sparse, layer 0 dense)', async () => {
    const mutants = [llmPatch('norm_topk_prob is true', { norm_topk_prob: true }), llmPatch('top-2', { num_experts_per_tok: 2 })];
    expectClose(await compare({ name: 'm1 qwen3-moe', config: chatConfig(visionConfig(), qwen3MoeLlm({ decoder_sparse_step: 2 })), seed: 191, flags: [1, 1], rows: twoRows, mutants }));
  });

  it('m2. Qwen3-MoE: mlp_only_layers [0], norm_topk_prob true, num_local_experts spelling, sliding window on every layer', async () => {
    const llm = { ...qwen3MoeLlm({ mlp_only_layers: [0], norm_topk_prob: true, num_local_experts: 6, num_experts: undefined }), use_sliding_window: true, sliding_window: 5 };
    const mutants = [llmPatch('norm_topk_prob is false', { norm_topk_prob: false }), llmPatch('use_sliding_window is false', { use_sliding_window: false })];
    expectClose(await compare({ name: 'm2 qwen3-moe', config: chatConfig(visionConfig(), llm), seed: 192, flags: [1, 1], rows: twoRows, mutants }));
  });

  it('g1. GPT-OSS: sinks, q/k/v/o bias, alternating sliding (4) / full layers, YaRN (truncate false), biased router, clamped SwiGLU experts', async () => {
    const mutants = [
      llmPatch('swiglu_limit is 100 (no clamp)', { swiglu_limit: 100 }),
      llmPatch('layer_types reversed', { layer_types: ['full_attention', 'sliding_attention'] }),
      ropePatch('YaRN factor 8', () => ({ factor: 8 })),
      llmPatch('top-3', { num_experts_per_tok: 3 }),
    ];
    expectClose(await compare({ name: 'g1 gpt-oss', config: chatConfig(visionConfig(), gptOssLlm()), seed: 195, flags: [1, 1], rows: twoRows, mutants }));
  });

  it('g2. GPT-OSS with its class defaults: no layer_types (sliding on even layers), no RoPE dict (YaRN 32 over 4096), rope_theta 150000', async () => {
    const llm = gptOssLlm({ layer_types: undefined, rope_scaling: undefined, rope_theta: undefined, num_hidden_layers: 3 });
    expectClose(await compare({ name: 'g2 gpt-oss defaults', config: chatConfig(visionConfig(), llm), seed: 196, flags: [1, 1], rows: twoRows, mutants: [llmPatch('rope_theta is 10000', { rope_theta: 10000 })] }));
  });

  it('o. every tile flagged 0, no image positions', async () => {
    const config = chatConfig(visionConfig(), qwen2Config());
    expectClose(await compare({ name: 'o all flags 0', config, seed: 141, flags: [0, 0], rows: [{ before: 6, tiles: 0, after: 5 }] }));
  });
});

// ---------------------------------------------------------------------------------------------
// KV-cache generation (split artifact) vs the reference's full recompute at every step

/**
 * Greedy generation with the split artifact's KV cache on a right-padded batch of two rows; at every
 * step each row's next-token logits must equal the float64 reference run on that row alone
 * (unpadded prompt + the tokens generated so far, its own tiles), recomputed from scratch.
 */
async function compareGeneration(v: Variant, steps = 5, options: Partial<Parameters<typeof build>[0]> = {}): Promise<number> {
  const { generateFromArtifact } = await import('../src/generate/generate.ts');
  const dir = path.join(ROOT, `gen-${v.name.replace(/[^a-z0-9]+/gi, '-')}`);
  const ckpt = path.join(dir, 'checkpoint');
  const { contextId } = await makeCheckpoint(v, ckpt);
  const inputs = makeInputs(v, contextId);
  const [batch, seq] = inputs.inputShape;
  const perTile = tokensPerTile(v.config);
  const lengths = v.rows.map((r) => r.before + (r.tiles > 0 ? r.tiles * perTile + 2 : 0) + r.after);
  const mask = BigInt64Array.from({ length: batch * seq }, (_, i) => (i % seq < lengths[Math.floor(i / seq)]! ? 1n : 0n));
  const artifact = path.join(dir, 'split');
  await build({ weights: ckpt, out: artifact, split: true, ...options });
  if (options.target === 'gpu') expect(readFileSync(path.join(artifact, 'decoder.onnx')).toString('latin1')).toContain('GroupQueryAttention');
  const got = await generateFromArtifact(artifact, {
    pixel_values: { dtype: 'float32', shape: [...inputs.pixelShape], data: inputs.pixelValues },
    input_ids: { dtype: 'int64', shape: [batch, seq], data: inputs.inputIds },
    image_flags: { dtype: 'int64', shape: [inputs.imageFlags.length], data: inputs.imageFlags },
    attention_mask: { dtype: 'int64', shape: [batch, seq], data: mask },
  }, { maxNewTokens: steps, ignoreEos: true });
  expect(got.steps).toBe(steps);
  const cfg = loadConfig(ckpt);
  const weights = await loadWeights(ckpt);
  const tileSize = inputs.pixelValues.length / inputs.pixelShape[0];
  let worst = 0;
  let firstTile = 0;
  v.rows.forEach((r, b) => {
    const prompt = Array.from(inputs.inputIds.subarray(b * seq, b * seq + lengths[b]!));
    const tiles = inputs.pixelValues.subarray(firstTile * tileSize, (firstTile + r.tiles) * tileSize);
    for (let t = 0; t < steps; t++) {
      const ids = [...prompt, ...got.tokens[b]!.slice(0, t).map(BigInt)];
      const ref = internvlReference(cfg, weights, {
        pixelValues: tiles,
        pixelShape: [r.tiles, ...inputs.pixelShape.slice(1)] as [number, number, number, number],
        inputIds: BigInt64Array.from(ids),
        inputShape: [1, ids.length],
        imageFlags: new BigInt64Array(r.tiles).fill(1n),
      }, contextId);
      const vocab = got.vocab;
      const want = ref.logits.subarray((ids.length - 1) * vocab, ids.length * vocab);
      const have = got.logits.subarray((b * steps + t) * vocab, (b * steps + t + 1) * vocab);
      worst = Math.max(worst, maxAbs(have, want));
      expect(got.tokens[b]![t], `row ${b} step ${t}: greedy token`).toBe(argmaxOf(want));
    }
    firstTile += r.tiles;
  });
  results.push(`${v.name} (KV-cache generation${options.target ? ` --target ${options.target}` : ''}, ${steps} steps x ${batch} rows): logits ${worst.toExponential(2)}`);
  expect(worst).toBeLessThanOrEqual(TOL);
  return worst;
}

function argmaxOf(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

const paddedRows = [
  { before: 3, tiles: 1, after: 4 },
  { before: 1, tiles: 1, after: 1 },
];

describe('KV-cache generation equals a full recompute at every step', () => {
  it('Qwen2, tied embeddings', async () => {
    await compareGeneration({ name: 'kv qwen2', config: chatConfig(visionConfig(), qwen2Config()), seed: 201, flags: [1, 1], rows: paddedRows });
  });
  it('Llama-3.1 rope scaling, untied head', async () => {
    await compareGeneration({ name: 'kv llama3', config: chatConfig(visionConfig(), llama3Config()), seed: 202, flags: [1, 1], rows: paddedRows });
  });
  it('InternLM2 (packed wqkv), dynamic NTK within max_position_embeddings', async () => {
    await compareGeneration({ name: 'kv internlm2', config: chatConfig(visionConfig(), internlm2Config()), seed: 203, flags: [1, 1], rows: paddedRows });
  });
  it('InternLM2 linear rope scaling', async () => {
    await compareGeneration({ name: 'kv internlm2 linear', config: chatConfig(visionConfig(), internlm2Config({ scaling: { type: 'linear', factor: 2.0 } })), seed: 204, flags: [1, 1], rows: paddedRows });
  });
  it('Phi-3 LongRoPE, short factors throughout (within original_max_position_embeddings)', async () => {
    await compareGeneration({ name: 'kv phi3 short', config: chatConfig(visionConfig(), phi3Config('su', 64)), seed: 205, flags: [1, 1], rows: paddedRows });
  });
  it('Phi-3 LongRoPE, long factors throughout (every row already past original_max_position_embeddings)', async () => {
    await compareGeneration({ name: 'kv phi3 long', config: chatConfig(visionConfig(), phi3Config('longrope', 4)), seed: 206, flags: [1, 1], rows: paddedRows });
  });
  it('Phi-3 LongRoPE crossing original_max_position_embeddings mid-generation: the cache is recomputed, as transformers does', async () => {
    // Both rows 13 tokens; lengths 14, 15 stay short, 16 switches to the long factors at step 2.
    const rows = [{ before: 3, tiles: 1, after: 4 }, { before: 4, tiles: 1, after: 3 }];
    await compareGeneration({ name: 'kv phi3 crossing', config: chatConfig(visionConfig(), phi3Config('su', 15)), seed: 208, flags: [1, 1], rows }, 6);
  });
  it('Qwen2 sliding window on layer 1 only, crossed by both rows of a padded batch', async () => {
    const llm = { ...qwen2Config(), use_sliding_window: true, sliding_window: 4, max_window_layers: 1 };
    await compareGeneration({ name: 'kv qwen2 window', config: chatConfig(visionConfig(), llm), seed: 209, flags: [1, 1], rows: paddedRows });
  });
  it('Qwen2 sliding window, --target gpu: GroupQueryAttention with local_window_size (head_dim 16)', async () => {
    const llm = { ...qwen2Config(), hidden_size: 64, use_sliding_window: true, sliding_window: 4, max_window_layers: 1 };
    await compareGeneration({ name: 'kv qwen2 window gqa', config: chatConfig(visionConfig(), llm), seed: 210, flags: [1, 1], rows: paddedRows }, 5, { target: 'gpu' });
  });
  it("Phi-3 original layout: InternVL's own window of sliding_window + 1 keys, every layer", async () => {
    const llm = { ...phi3Config('su', 64), rope_scaling: null, hidden_size: 64, sliding_window: 3 };
    await compareGeneration({ name: 'kv phi3 window gqa', config: chatConfig(visionConfig(), llm), seed: 211, flags: [1, 1], rows: paddedRows }, 5, { target: 'gpu' });
  });
  it('Qwen3-MoE, --target gpu (GroupQueryAttention; the union of chosen experts changes every step)', async () => {
    await compareGeneration({ name: 'kv qwen3-moe gqa', config: chatConfig(visionConfig(), qwen3MoeLlm()), seed: 212, flags: [1, 1], rows: paddedRows }, 5, { target: 'gpu' });
  });
  it('GPT-OSS, --target gpu: GroupQueryAttention with head_sink and local_window_size, window crossed by both rows', async () => {
    await compareGeneration({ name: 'kv gpt-oss', config: chatConfig(visionConfig(), gptOssLlm()), seed: 213, flags: [1, 1], rows: paddedRows }, 5, { target: 'gpu' });
  });
  it('Phi-3 partial rotary, no GQA', async () => {
    const llm = { ...phi3Config('su', 64), num_key_value_heads: 4, partial_rotary_factor: 0.5, rope_scaling: null };
    await compareGeneration({ name: 'kv phi3 partial', config: chatConfig(visionConfig(), llm), seed: 207, flags: [1, 1], rows: paddedRows });
  });
});
