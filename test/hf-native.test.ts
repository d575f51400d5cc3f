/**
 * Hugging Face-native InternVL checkpoints (transformers' InternVLForConditionalGeneration,
 * `model_type: internvl`). The tests write that layout themselves from the fixtures' unified
 * tensors (a pure rename plus the q/k/v split, with this file's own rename table, independent of
 * src/models/internvl.hf.names.ts), so the fixtures' expected outputs carry over exactly; and from
 * random weights for what the fixtures lack (Qwen3, other vision_feature_layer values, BF16, qk
 * norm), judged by the float64 reference.
 */
import { describe, it, expect, beforeAll, afterAll, onTestFinished } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync, copyFileSync, existsSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { FIXTURES, ROOT, maxAbsError, tempDir, removeDir, vlmcInProcess } from './helpers.ts';
import { SafetensorsFile } from '../src/checkpoint/safetensors.ts';
import { writeSafetensors, type TensorToWrite } from '../src/checkpoint/safetensors-write.ts';
import { f32ToBf16 } from '../src/tensor/convert.ts';
import { build } from '../src/build.ts';
import { openSession, run, type HostTensor } from '../src/runtime/session.ts';
import { internvlFromConfig, visionFromHF } from '../src/models/from-config.ts';
import { hfDefaultImageTokenId } from '../src/models/from-hf-config.ts';
import { llmFromHF } from '../src/models/llm/index.ts';
import { assignPaths, collectParams } from '../src/dsl/module.ts';
import { findSpecialTokenId } from '../src/checkpoint/tokens.ts';
import type { Manifest } from '../src/artifact/format.ts';
import { internvlReference, type Weights } from './reference/internvl-reference.ts';

type Json = Record<string, unknown>;
type Spelling = 'transformers-4' | 'transformers-5';
const TOL = 1e-4;
const QWEN2 = path.join(FIXTURES, 'qwen2-tiny');
let work: string;
const measured: string[] = [];

beforeAll(() => {
  work = tempDir('vlmc-hf-');
});
afterAll(() => {
  removeDir(work);
  console.log(`[hf-native] max abs error (tolerance ${TOL}):\n  ${measured.join('\n  ')}`);
});

// ---------------------------------------------------------------------------------------------
// Writing the HF-native layout (this test's own table, from transformers' convert_internvl_weights_to_hf.py)

const VISION_RENAMES: [RegExp, string][] = [
  [/^embeddings\.class_embedding$/, 'embeddings.cls_token'],
  [/^embeddings\.patch_embedding\.(weight|bias)$/, 'embeddings.patch_embeddings.projection.$1'],
  [/^embeddings\.position_embedding$/, 'embeddings.position_embeddings'],
  [/^encoder\.layers\.(\d+)\.attn\.proj\.(weight|bias)$/, 'encoder.layer.$1.attention.projection_layer.$2'],
  [/^encoder\.layers\.(\d+)\.attn\.(q_norm|k_norm)\.weight$/, 'encoder.layer.$1.attention.$2.weight'],
  [/^encoder\.layers\.(\d+)\.norm1\.(weight|bias)$/, 'encoder.layer.$1.layernorm_before.$2'],
  [/^encoder\.layers\.(\d+)\.norm2\.(weight|bias)$/, 'encoder.layer.$1.layernorm_after.$2'],
  [/^encoder\.layers\.(\d+)\.ls1$/, 'encoder.layer.$1.lambda_1'],
  [/^encoder\.layers\.(\d+)\.ls2$/, 'encoder.layer.$1.lambda_2'],
  [/^encoder\.layers\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)$/, 'encoder.layer.$1.mlp.$2.$3'],
];
const QKV = /^encoder\.layers\.(\d+)\.attn\.qkv\.(weight|bias)$/;
const PROJECTOR_RENAMES: Record<string, string> = { '0': 'layer_norm', '1': 'linear_1', '3': 'linear_2' };

interface Tensor {
  name: string;
  dtype: TensorToWrite['dtype'];
  shape: number[];
  data: Uint8Array;
}

/** Row-major split along axis 0 into `parts` equal tensors. */
function splitRows(t: Tensor, names: string[]): Tensor[] {
  const rows = t.shape[0]! / names.length;
  const bytes = t.data.byteLength / names.length;
  return names.map((name, i) => ({ name, dtype: t.dtype, shape: [rows, ...t.shape.slice(1)], data: t.data.slice(i * bytes, (i + 1) * bytes) }));
}

/** Vision keys (without `vision_model.`) -> InternVLVisionModel keys, with `prefix`. */
function visionToHF(t: Tensor, rest: string, prefix: string): Tensor[] {
  const qkv = QKV.exec(rest);
  if (qkv) return splitRows(t, ['q', 'k', 'v'].map((p) => `${prefix}encoder.layer.${qkv[1]}.attention.${p}_proj.${qkv[2]}`));
  for (const [re, to] of VISION_RENAMES) if (re.test(rest)) return [{ ...t, name: prefix + rest.replace(re, to) }];
  throw new Error(`no HF name for vision key ${rest}`);
}

function toHF(tensors: Tensor[], spelling: Spelling): Tensor[] {
  const v5 = spelling === 'transformers-5';
  return tensors.flatMap((t) => {
    if (t.name.startsWith('vision_model.')) return visionToHF(t, t.name.slice('vision_model.'.length), v5 ? 'model.vision_tower.' : 'vision_tower.');
    const proj = /^mlp1\.(\d)\.(weight|bias)$/.exec(t.name);
    if (proj) return [{ ...t, name: `${v5 ? 'model.' : ''}multi_modal_projector.${PROJECTOR_RENAMES[proj[1]!]}.${proj[2]}` }];
    if (!v5) return [t];
    if (t.name === 'language_model.lm_head.weight') return [{ ...t, name: 'lm_head.weight' }];
    return [{ ...t, name: t.name.replace(/^language_model\.model\./, 'model.language_model.') }];
  });
}

async function readTensors(file: string): Promise<Tensor[]> {
  const st = await SafetensorsFile.open(file);
  try {
    const out: Tensor[] = [];
    for (const key of st.keys()) {
      const e = st.entry(key);
      out.push({ name: key, dtype: e.dtype as Tensor['dtype'], shape: [...e.shape], data: Uint8Array.from(await st.readAll(e)) });
    }
    return out;
  } finally {
    await st.close();
  }
}

interface HFOptions {
  spelling: Spelling;
  /** Top-level tie_word_embeddings; undefined leaves it out, as hub configs do. */
  tie?: boolean;
  /** Leave image_token_id out of config.json (the id then comes from the tokenizer files). */
  noImageTokenId?: boolean;
  /** Image size written as [s, s] (transformers' own saves) rather than a number. */
  listSizes?: boolean;
}

/** InternVLChatConfig -> InternVLConfig, in the 4.52 hub spelling or the transformers 5 one. */
function hfConfigOf(chat: Json, imageTokenId: number, tokensPerTile: number, o: HFOptions): Json {
  const vc = chat.vision_config as Json;
  const lc = { ...(chat.llm_config as Json) };
  const size = (chat.force_image_size as number | undefined) ?? (vc.image_size as number);
  const sizeOf = (n: number) => (o.listSizes ? [n, n] : n);
  delete lc.tie_word_embeddings; // the top level decides
  if (o.spelling === 'transformers-5') {
    lc.rope_parameters = { rope_theta: lc.rope_theta, rope_type: 'default' };
    delete lc.rope_theta;
    delete lc.architectures;
  }
  return {
    architectures: ['InternVLForConditionalGeneration'],
    model_type: 'internvl',
    ...(o.noImageTokenId ? {} : { image_token_id: imageTokenId }),
    image_seq_length: tokensPerTile,
    downsample_ratio: chat.downsample_ratio,
    projector_hidden_act: 'gelu',
    vision_feature_layer: chat.select_layer,
    vision_feature_select_strategy: 'default',
    ...(o.tie === undefined ? {} : { tie_word_embeddings: o.tie }),
    vision_config: {
      architectures: ['InternVLVisionModel'],
      model_type: 'internvl_vision',
      hidden_size: vc.hidden_size,
      num_attention_heads: vc.num_attention_heads,
      num_hidden_layers: vc.num_hidden_layers,
      intermediate_size: vc.intermediate_size,
      image_size: sizeOf(size),
      patch_size: sizeOf(vc.patch_size as number),
      norm_type: vc.norm_type,
      layer_norm_eps: vc.layer_norm_eps,
      attention_bias: vc.qkv_bias,
      use_qk_norm: vc.qk_normalization,
      layer_scale_init_value: vc.initializer_factor,
      use_mean_pooling: true,
      hidden_act: 'gelu',
      num_channels: 3,
    },
    text_config: lc,
  };
}

/** Writes an HF-native checkpoint folder from unified tensors and config. */
async function writeHF(dir: string, chat: Json, tensors: Tensor[], imageTokenId: number, tokensPerTile: number, o: HFOptions, storage?: 'BF16'): Promise<Tensor[]> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(hfConfigOf(chat, imageTokenId, tokensPerTile, o), null, 2));
  // transformers 5 tokenizer saves: only tokenizer.json names the added tokens.
  writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({ version: '1.0', added_tokens: [{ id: imageTokenId - 2, content: '<img>', special: true }, { id: imageTokenId - 1, content: '</img>', special: true }, { id: imageTokenId, content: '<IMG_CONTEXT>', special: true }] }));
  const hf = toHF(tensors, o.spelling).map((t) => (storage === 'BF16' ? toBf16(t) : t));
  await writeSafetensors(path.join(dir, 'model.safetensors'), hf);
  return hf;
}

function toBf16(t: Tensor): Tensor {
  if (t.dtype !== 'F32') return t;
  const h = f32ToBf16(new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4));
  return { ...t, dtype: 'BF16', data: new Uint8Array(h.buffer, h.byteOffset, h.byteLength) };
}

const manifestOf = (dir: string): Manifest => JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));

async function compareWithExpected(outFile: string, fixture: string): Promise<{ logits: number; vit: number }> {
  const got = await SafetensorsFile.open(outFile);
  const want = await SafetensorsFile.open(path.join(fixture, 'expected.safetensors'));
  try {
    const err = async (k: string) => {
      expect(got.entry(k).shape).toEqual(want.entry(k).shape);
      return maxAbsError(await got.readAsFloat32(got.entry(k)), await want.readAsFloat32(want.entry(k)));
    };
    const result = { logits: await err('logits'), vit: await err('vit_embeds') };
    measured.push(`${path.basename(path.dirname(outFile))}: logits ${result.logits.toExponential(2)}, vit_embeds ${result.vit.toExponential(2)} (vs ${path.basename(fixture)} expected)`);
    return result;
  } finally {
    await got.close();
    await want.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The fixtures in the HF-native layout

describe('HF-native checkpoints from the qwen2-tiny fixture', () => {
  const chat = JSON.parse(readFileSync(path.join(QWEN2, 'unified/config.json'), 'utf8')) as Json;
  const spec = JSON.parse(readFileSync(path.join(QWEN2, 'case.json'), 'utf8')) as Json;
  const contextId = spec.img_context_token_id as number;
  const perTile = spec.num_image_token as number;
  let unified: Tensor[];

  beforeAll(async () => {
    unified = await readTensors(path.join(QWEN2, 'unified/model.safetensors'));
  });

  const cases: { name: string; o: HFOptions; lmHead?: boolean; untied: boolean }[] = [
    { name: '4.52 hub spelling, tie_word_embeddings omitted, no lm_head (tied)', o: { spelling: 'transformers-4', listSizes: true }, untied: false },
    { name: '5.x spelling (model.-prefixed, rope_parameters), tie true, id from tokenizer.json', o: { spelling: 'transformers-5', tie: true, noImageTokenId: true }, untied: false },
    { name: '4.52 spelling with a saved lm_head and tie omitted (untied by transformers 5)', o: { spelling: 'transformers-4' }, lmHead: true, untied: true },
    { name: '5.x spelling with lm_head.weight, tie false', o: { spelling: 'transformers-5', tie: false, listSizes: true }, lmHead: true, untied: true },
    { name: '5.x spelling, tie true and a duplicate lm_head.weight (left unused)', o: { spelling: 'transformers-5', tie: true }, lmHead: true, untied: false },
  ];

  it.each(cases)('$name: builds, runs and matches the fixture (1e-4)', async ({ name, o, lmHead, untied }) => {
    const dir = path.join(work, name.replace(/[^a-z0-9]+/gi, '-'));
    const tensors = lmHead ? [...unified, { ...unified.find((t) => t.name === 'language_model.model.embed_tokens.weight')!, name: 'language_model.lm_head.weight' }] : unified;
    const hf = await writeHF(path.join(dir, 'ckpt'), chat, tensors, contextId, perTile, o);
    const artifact = path.join(dir, 'artifact');
    const r = await vlmcInProcess(['build', '--weights', path.join(dir, 'ckpt'), '--out', artifact, '--quiet']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const m = manifestOf(artifact);
    expect(m.inputs.map((i) => i.name)).toEqual(['pixel_values', 'input_ids']);
    expect(m.metadata['vlmc.img_context_token_id']).toBe(String(contextId));
    expect(m.parameters.some((p) => p.name === 'language_model.lm_head.weight')).toBe(untied);
    // The manifest names the checkpoint's own keys: together exactly the checkpoint's tensors.
    const duplicateHead = lmHead && !untied ? ['lm_head.weight', 'language_model.lm_head.weight'] : [];
    expect(m.parameters.flatMap((p) => [p.key].flat()).sort()).toEqual(hf.map((t) => t.name).filter((k) => !duplicateHead.includes(k)).sort());
    const qkv = m.parameters.find((p) => p.name === 'vision_model.encoder.layers.1.attn.qkv.weight')!;
    const vt = o.spelling === 'transformers-5' ? 'model.vision_tower.' : 'vision_tower.';
    expect(qkv.key).toEqual(['q', 'k', 'v'].map((x) => `${vt}encoder.layer.1.attention.${x}_proj.weight`));
    expect(qkv.source).toMatchObject({ role: 'unified', transform: 'concat(axis=0)', layout: `hf:${o.spelling}` });
    const out = path.join(dir, 'out.safetensors');
    const rr = await vlmcInProcess(['run', artifact, '--inputs', path.join(QWEN2, 'inputs.safetensors'), '--out', out]);
    expect(rr.stderr).toBe('');
    expect(rr.status).toBe(0);
    const err = await compareWithExpected(out, QWEN2);
    expect(err.vit).toBeLessThanOrEqual(TOL);
    expect(err.logits).toBeLessThanOrEqual(TOL);
  });

  it('binds byte-identical weights to the unified build (the q/k/v concat restores qkv exactly)', async () => {
    const dir = path.join(work, 'bytes');
    await writeHF(path.join(dir, 'ckpt'), chat, unified, contextId, perTile, { spelling: 'transformers-5' });
    expect((await vlmcInProcess(['build', '--weights', path.join(dir, 'ckpt'), '--out', path.join(dir, 'hf'), '--quiet'])).status).toBe(0);
    expect((await vlmcInProcess(['build', '--weights', path.join(QWEN2, 'unified'), '--out', path.join(dir, 'orig'), '--quiet'])).status).toBe(0);
    const a = manifestOf(path.join(dir, 'hf'));
    const b = new Map(manifestOf(path.join(dir, 'orig')).parameters.map((p) => [p.name, p.sha256]));
    expect(a.parameters.length).toBe(b.size);
    for (const p of a.parameters) expect(p.sha256, p.name).toBe(b.get(p.name));
  });

  it('reports a missing and an unexpected HF key strictly (exit 2, checkpoint keys named)', async () => {
    const dir = path.join(work, 'strict');
    const tensors = unified.filter((t) => t.name !== 'vision_model.encoder.layers.0.attn.qkv.bias');
    const hf = toHF(tensors, 'transformers-4');
    // Only the k part of layer 0's qkv bias, plus a stray key.
    hf.push({ name: 'vision_tower.encoder.layer.0.attention.k_proj.bias', dtype: 'F32', shape: [32], data: new Uint8Array(128) });
    hf.push({ name: 'vision_tower.encoder.layer.0.attention.extra', dtype: 'F32', shape: [2], data: new Uint8Array(8) });
    // use_mask_token's parameter is for masked image modeling only: left unused without a report.
    hf.push({ name: 'vision_tower.embeddings.mask_token', dtype: 'F32', shape: [1, 1, 32], data: new Uint8Array(128) });
    mkdirSync(path.join(dir, 'ckpt'), { recursive: true });
    writeFileSync(path.join(dir, 'ckpt/config.json'), JSON.stringify(hfConfigOf(chat, contextId, perTile, { spelling: 'transformers-4' })));
    await writeSafetensors(path.join(dir, 'ckpt/model.safetensors'), hf);
    const r = await vlmcInProcess(['build', '--weights', path.join(dir, 'ckpt'), '--out', path.join(dir, 'artifact')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('missing     vision_tower.encoder.layer.0.attention.q_proj.bias');
    expect(r.stderr).toContain('missing     vision_tower.encoder.layer.0.attention.v_proj.bias');
    expect(r.stderr).not.toContain('missing     vision_tower.encoder.layer.0.attention.k_proj.bias');
    expect(r.stderr).toContain('unexpected  vision_tower.encoder.layer.0.attention.extra');
    expect(r.stderr).not.toContain('mask_token');
    expect(r.stderr).not.toContain('unexpected  vision_tower.encoder.layer.0.attention.k_proj.bias');
    expect(r.stderr).toContain('(3 problems)');
    expect(existsSync(path.join(dir, 'artifact'))).toBe(false);
  });

  it('tie_word_embeddings false without an lm_head is a missing lm_head.weight', async () => {
    const dir = path.join(work, 'untied-missing');
    await writeHF(path.join(dir, 'ckpt'), chat, unified, contextId, perTile, { spelling: 'transformers-5', tie: false });
    const r = await vlmcInProcess(['build', '--weights', path.join(dir, 'ckpt'), '--out', path.join(dir, 'artifact')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('missing     lm_head.weight');
  });

  it('vlmc run checks that <IMG_CONTEXT> tokens number tiles x image_seq_length', async () => {
    const dir = path.join(work, 'count');
    await writeHF(path.join(dir, 'ckpt'), chat, unified, contextId, perTile, { spelling: 'transformers-4' });
    expect((await vlmcInProcess(['build', '--weights', path.join(dir, 'ckpt'), '--out', path.join(dir, 'artifact'), '--quiet'])).status).toBe(0);
    // One tile of the two: 8 image tokens for 4 features.
    const inputs = await readTensors(path.join(QWEN2, 'inputs.safetensors'));
    const px = inputs.find((t) => t.name === 'pixel_values')!;
    const one = { ...px, shape: [1, ...px.shape.slice(1)], data: px.data.slice(0, px.data.byteLength / 2) };
    const file = path.join(dir, 'one-tile.safetensors');
    await writeSafetensors(file, [one, inputs.find((t) => t.name === 'input_ids')!]);
    const r = await vlmcInProcess(['run', path.join(dir, 'artifact'), '--inputs', file, '--out', path.join(dir, 'out.safetensors')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('8 <IMG_CONTEXT> tokens');
    expect(r.stderr).toContain('1 tile x 4 tokens = 4');
    expect(existsSync(path.join(dir, 'out.safetensors'))).toBe(false);
  });

  it('a wrong image_seq_length or a list vision_feature_layer is a clear config error', async () => {
    for (const [patch, text] of [[{ image_seq_length: 256 }, "'image_seq_length' is 256, but a 56px tile gives 4 tokens"], [{ vision_feature_layer: [-1, -2] }, "'vision_feature_layer' must be one integer"], [{ vision_feature_select_strategy: 'full' }, "'vision_feature_select_strategy' \"full\" is not supported"]] as const) {
      const dir = path.join(work, `bad-${Object.keys(patch)[0]}`);
      await writeHF(path.join(dir, 'ckpt'), chat, unified, contextId, perTile, { spelling: 'transformers-4' });
      const cfgFile = path.join(dir, 'ckpt/config.json');
      writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(readFileSync(cfgFile, 'utf8')), ...patch }));
      const r = await vlmcInProcess(['build', '--weights', path.join(dir, 'ckpt'), '--out', path.join(dir, 'artifact')]);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(text);
      expect(r.stderr).toContain('config.json');
    }
  });

  it('Path B: an InternVLVisionModel checkpoint + the fixture LLM + the saved projector match the fixture', async () => {
    const dir = path.join(work, 'path-b');
    const vision = path.join(dir, 'vision');
    mkdirSync(vision, { recursive: true });
    const hfCfg = hfConfigOf(chat, contextId, perTile, { spelling: 'transformers-5', listSizes: true });
    writeFileSync(path.join(vision, 'config.json'), JSON.stringify(hfCfg.vision_config));
    const vt = unified.filter((t) => t.name.startsWith('vision_model.')).flatMap((t) => visionToHF(t, t.name.slice('vision_model.'.length), ''));
    await writeSafetensors(path.join(vision, 'model.safetensors'), vt);
    const artifact = path.join(dir, 'artifact');
    const r = await vlmcInProcess(['build', '--vision', vision, '--llm', path.join(QWEN2, 'llm'), '--projector', path.join(QWEN2, 'mlp1.safetensors'), '--out', artifact, '--quiet']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const m = manifestOf(artifact);
    const cls = m.parameters.find((p) => p.name === 'vision_model.embeddings.class_embedding')!;
    expect(cls.key).toBe('embeddings.cls_token');
    expect(cls.source).toMatchObject({ role: 'vision', key: 'embeddings.cls_token', layout: 'hf:vision' });
    const out = path.join(dir, 'out.safetensors');
    expect((await vlmcInProcess(['run', artifact, '--inputs', path.join(QWEN2, 'inputs.safetensors'), '--out', out])).status).toBe(0);
    const err = await compareWithExpected(out, QWEN2);
    expect(err.vit).toBeLessThanOrEqual(TOL);
    expect(err.logits).toBeLessThanOrEqual(TOL);
    // init from the same parts gives a graph that builds against them (cross-checked field by field).
    const graph = path.join(ROOT, 'out', `test-hf-init-b-${process.pid}.ts`);
    onTestFinished(() => rmSync(graph, { force: true }));
    const i = await vlmcInProcess(['init', '--vision', vision, '--llm', path.join(QWEN2, 'llm'), '--out', graph]);
    expect(i.stderr).toBe('');
    const b = await vlmcInProcess(['build', graph, '--vision', vision, '--llm', path.join(QWEN2, 'llm'), '--out', path.join(dir, 'from-graph'), '--quiet']);
    expect(b.stderr).toBe('');
    expect(b.status).toBe(0);
  });

  it('vlmc init --from an HF-native checkpoint writes a graph that builds against it', async () => {
    const dir = path.join(work, 'init');
    await writeHF(path.join(dir, 'ckpt'), chat, unified, contextId, perTile, { spelling: 'transformers-5' });
    // Inside the repo, so the generated file's `import ... from 'vlmc'` resolves like a graphs/ file.
    const graph = path.join(ROOT, 'out', `test-hf-init-${process.pid}.ts`);
    onTestFinished(() => rmSync(graph, { force: true }));
    const r = await vlmcInProcess(['init', '--from', path.join(dir, 'ckpt'), '--out', graph]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const src = readFileSync(graph, 'utf8');
    expect(src).toContain('imageFlags: false');
    expect(src).toContain(`imgContextTokenId: ${contextId}`);
    const b = await vlmcInProcess(['build', graph, '--weights', path.join(dir, 'ckpt'), '--out', path.join(dir, 'artifact'), '--quiet']);
    expect(b.stderr).toBe('');
    expect(b.status).toBe(0);
  });
});

describe('vlmc export --layout hf', () => {
  it.each(['transformers-4', 'transformers-5'] as const)('writes exactly what the conversion gives (%s keys, same bytes), and it builds and matches', async (spelling) => {
    const dir = path.join(work, `export-${spelling}`);
    const out = path.join(dir, 'hf');
    const r = await vlmcInProcess(['export', path.join(QWEN2, 'unified'), '--layout', 'hf', '--spelling', spelling, '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const want = new Map(toHF(await readTensors(path.join(QWEN2, 'unified/model.safetensors')), spelling).map((t) => [t.name, t]));
    const got = await readTensors(path.join(out, 'model.safetensors'));
    expect(got.map((t) => t.name).sort()).toEqual([...want.keys()].sort());
    for (const t of got) {
      expect(t.shape, t.name).toEqual(want.get(t.name)!.shape);
      expect(Buffer.from(t.data).equals(Buffer.from(want.get(t.name)!.data)), t.name).toBe(true);
    }
    const cfg = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')) as Json;
    expect(cfg).toMatchObject({ model_type: 'internvl', image_token_id: 153, image_seq_length: 4, vision_feature_layer: -1, tie_word_embeddings: true });
    expect(cfg.vision_config).toMatchObject({ model_type: 'internvl_vision', image_size: [56, 56], attention_bias: true, use_qk_norm: false });
    const artifact = path.join(dir, 'artifact');
    expect((await vlmcInProcess(['build', '--weights', out, '--out', artifact, '--quiet'])).status).toBe(0);
    const res = path.join(dir, 'out.safetensors');
    expect((await vlmcInProcess(['run', artifact, '--inputs', path.join(QWEN2, 'inputs.safetensors'), '--out', res])).status).toBe(0);
    const err = await compareWithExpected(res, QWEN2);
    expect(err.logits).toBeLessThanOrEqual(TOL);
    expect(err.vit).toBeLessThanOrEqual(TOL);
  });

  it('refuses what transformers would compute differently, and HF-native input, writing nothing', async () => {
    const out = path.join(work, 'export-refused');
    const r = await vlmcInProcess(['export', path.join(FIXTURES, 'internlm2-tiny/unified'), '--layout', 'hf', '--out', out]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('InternLM2');
    expect(existsSync(out)).toBe(false);
    const v1 = path.join(work, 'export-v1');
    mkdirSync(v1, { recursive: true });
    for (const f of ['model.safetensors', 'added_tokens.json']) copyFileSync(path.join(QWEN2, 'unified', f), path.join(v1, f));
    writeFileSync(path.join(v1, 'config.json'), JSON.stringify({ ...JSON.parse(readFileSync(path.join(QWEN2, 'unified/config.json'), 'utf8')), ps_version: 'v1' }));
    const r1 = await vlmcInProcess(['export', v1, '--layout', 'hf', '--out', out]);
    expect(r1.status).toBe(2);
    expect(r1.stderr).toContain("ps_version is 'v1'");
    expect((await vlmcInProcess(['export', v1, '--out', out])).status).toBe(2); // --layout is required
    const hf = path.join(work, 'export-hf-input');
    await writeHF(hf, JSON.parse(readFileSync(path.join(QWEN2, 'unified/config.json'), 'utf8')), await readTensors(path.join(QWEN2, 'unified/model.safetensors')), 153, 4, { spelling: 'transformers-4' });
    const r2 = await vlmcInProcess(['export', hf, '--layout', 'hf', '--out', out]);
    expect(r2.status).toBe(2);
    expect(r2.stderr).toContain("already a Hugging Face-native checkpoint");
    expect(existsSync(out)).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// InternLM2 as transformers converts it: a Llama text model

/** InternLM2 keys -> Llama keys; `wqkv` rows are grouped [kv_heads, G + 2, head_dim] (G queries, key, value). */
function internlm2ToLlama(tensors: Tensor[], lc: Json): Tensor[] {
  const heads = lc.num_attention_heads as number;
  const kv = lc.num_key_value_heads as number;
  const hidden = lc.hidden_size as number;
  const d = hidden / heads;
  const G = heads / kv;
  const renames: [RegExp, string][] = [
    [/\.model\.tok_embeddings\./, '.model.embed_tokens.'],
    [/\.output\.weight$/, '.lm_head.weight'],
    [/\.attention\.wo\./, '.self_attn.o_proj.'],
    [/\.feed_forward\.w1\./, '.mlp.gate_proj.'],
    [/\.feed_forward\.w3\./, '.mlp.up_proj.'],
    [/\.feed_forward\.w2\./, '.mlp.down_proj.'],
    [/\.attention_norm\./, '.input_layernorm.'],
    [/\.ffn_norm\./, '.post_attention_layernorm.'],
  ];
  return tensors.flatMap((t) => {
    if (!t.name.startsWith('language_model.')) return [t];
    const wqkv = /^(.*)\.attention\.wqkv\.weight$/.exec(t.name);
    if (wqkv) {
      const rowBytes = hidden * 4;
      const row = (r: number) => t.data.subarray(r * rowBytes, (r + 1) * rowBytes);
      const gather = (rowsOf: (g: number) => number[]) => {
        const rows = Array.from({ length: kv }, (_, g) => rowsOf(g)).flat();
        const out = new Uint8Array(rows.length * rowBytes);
        rows.forEach((r, i) => out.set(row(r), i * rowBytes));
        return { dtype: t.dtype, shape: [rows.length, hidden], data: out };
      };
      const headRows = (slot: (g: number) => number) => (g: number) => Array.from({ length: d }, (_, e) => slot(g) * d + e);
      const qRows = (g: number) => Array.from({ length: G }, (_, j) => headRows(() => g * (G + 2) + j)(g)).flat();
      return [
        { name: `${wqkv[1]}.self_attn.q_proj.weight`, ...gather(qRows) },
        { name: `${wqkv[1]}.self_attn.k_proj.weight`, ...gather(headRows((g) => g * (G + 2) + G)) },
        { name: `${wqkv[1]}.self_attn.v_proj.weight`, ...gather(headRows((g) => g * (G + 2) + G + 1)) },
      ];
    }
    let name = t.name;
    for (const [re, to] of renames) name = name.replace(re, to);
    return [{ ...t, name }];
  });
}

describe('HF-native InternVL2.5-style checkpoint: InternLM2 converted to Llama (internlm2-tiny fixture)', () => {
  const fx = path.join(FIXTURES, 'internlm2-tiny');

  it('builds, runs batch 2 with three tiles and matches the fixture (1e-4)', async () => {
    const chat = JSON.parse(readFileSync(path.join(fx, 'unified/config.json'), 'utf8')) as Json;
    const spec = JSON.parse(readFileSync(path.join(fx, 'case.json'), 'utf8')) as Json;
    expect(spec.tile_flags).toEqual([1, 1, 1]); // every tile counts, as in transformers
    const lc = chat.llm_config as Json;
    const llama: Json = {
      architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: lc.hidden_size, num_attention_heads: lc.num_attention_heads,
      num_key_value_heads: lc.num_key_value_heads, num_hidden_layers: lc.num_hidden_layers, intermediate_size: lc.intermediate_size,
      vocab_size: lc.vocab_size, rms_norm_eps: lc.rms_norm_eps, rope_theta: lc.rope_theta, rope_scaling: lc.rope_scaling,
      max_position_embeddings: lc.max_position_embeddings, hidden_act: 'silu', attention_bias: false, mlp_bias: false, pad_token_id: lc.pad_token_id,
    };
    const tensors = internlm2ToLlama(await readTensors(path.join(fx, 'unified/model.safetensors')), lc);
    const dir = path.join(work, 'internlm2-as-llama');
    await writeHF(path.join(dir, 'ckpt'), { ...chat, llm_config: llama }, tensors, spec.img_context_token_id as number, spec.num_image_token as number, { spelling: 'transformers-4', listSizes: true });
    const artifact = path.join(dir, 'artifact');
    const r = await vlmcInProcess(['build', '--weights', path.join(dir, 'ckpt'), '--out', artifact, '--quiet']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(manifestOf(artifact).parameters.some((p) => p.name === 'language_model.lm_head.weight')).toBe(true);
    const out = path.join(dir, 'out.safetensors');
    const rr = await vlmcInProcess(['run', artifact, '--inputs', path.join(fx, 'inputs.safetensors'), '--out', out]);
    expect(rr.stderr).toBe('');
    const err = await compareWithExpected(out, fx);
    expect(err.vit).toBeLessThanOrEqual(TOL);
    expect(err.logits).toBeLessThanOrEqual(TOL);
  });
});

describe('HF-native config -> graph', () => {
  const vision = { model_type: 'internvl_vision', hidden_size: 32, num_attention_heads: 4, num_hidden_layers: 2, intermediate_size: 64, image_size: [56, 56], patch_size: [14, 14] };
  const text = { model_type: 'qwen2', hidden_size: 48, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 1, intermediate_size: 96, vocab_size: 64 };
  const cfg = (patch: Json = {}, v: Json = {}) => ({ model_type: 'internvl', image_token_id: 60, image_seq_length: 4, vision_config: { ...vision, ...v }, text_config: text, ...patch });

  it("takes transformers' defaults and numerics: LayerNorm, no qkv bias, q/k norm eps 1e-6, v2 shuffle, no image_flags, tied", () => {
    const m = internvlFromConfig(cfg(), 'c.json');
    expect(m.vision_model.config).toMatchObject({ norm: 'layer_norm', qkvBias: false, qkNorm: false, eps: 1e-6, imageSize: 56, patchSize: 14, layerScaleInit: 0.1 });
    expect(m.options).toMatchObject({ psVersion: 'v2', selectLayer: -1, imageFlags: false, imgContextTokenId: 60, downsampleRatio: 0.5 });
    expect(m.language_model.config.tieEmbeddings).toBe(true);
    expect(m.inputs().map((i) => i.name)).toEqual(['pixel_values', 'input_ids']);
    const qk = internvlFromConfig(cfg({}, { use_qk_norm: true, norm_type: 'rms_norm', layer_norm_eps: 1e-5, attention_bias: true }), 'c.json');
    expect(qk.vision_model.config).toMatchObject({ qkNorm: true, qkvBias: true, eps: 1e-5, qkNormEps: 1e-6 });
    expect(qk.vision_model.encoder.layers.at(0).attn.q_norm!.eps).toBe(1e-6);
    expect(qk.vision_model.encoder.layers.at(0).norm1).toMatchObject({ eps: 1e-5 });
  });

  it('Qwen3 text_config: head_dim defaults to 128, from the config otherwise', () => {
    const q3 = { ...text, model_type: 'qwen3' };
    expect(internvlFromConfig({ ...cfg(), text_config: q3 }, 'c.json').language_model.config.headDim).toBe(128);
    expect(internvlFromConfig({ ...cfg(), text_config: { ...q3, head_dim: 16 } }, 'c.json').language_model.architecture).toBe('Qwen3ForCausalLM');
  });

  it("image_token_id: config.json's, else transformers' default 151667 where the vocabulary has it", () => {
    expect(internvlFromConfig(cfg(), 'c.json').options.imgContextTokenId).toBe(60);
    const { image_token_id: _, ...noId } = cfg();
    expect(internvlFromConfig(noId, 'c.json').options.imgContextTokenId).toBeUndefined();
    expect(hfDefaultImageTokenId(internvlFromConfig(noId, 'c.json'))).toBeUndefined();
    expect(hfDefaultImageTokenId(internvlFromConfig({ ...noId, text_config: { ...text, vocab_size: 151674 } }, 'c.json'))).toBe(151667);
  });

  it("transformers 5's rope_parameters are read (any text config, both paths)", () => {
    const rp = { ...text, rope_parameters: { rope_type: 'llama3', rope_theta: 500000, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } };
    const c = llmFromHF({ ...rp, model_type: 'llama' }, 'llm/config.json').config;
    expect(c.ropeTheta).toBe(500000);
    expect(c.ropeScaling).toEqual({ type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64 });
    expect(llmFromHF({ ...text, rope_parameters: { rope_type: 'default', rope_theta: 1e6 } }, 'x').config).toMatchObject({ ropeTheta: 1e6, ropeScaling: undefined });
  });

  it('rejects what it cannot reproduce, naming the field', () => {
    expect(() => internvlFromConfig(cfg({}, { image_size: [56, 28] }), 'c.json')).toThrow("c.json vision_config: 'image_size' [56,28] is not square");
    expect(() => internvlFromConfig(cfg({}, { use_mean_pooling: false }), 'c.json')).toThrow("'use_mean_pooling' false is not supported");
    expect(() => internvlFromConfig(cfg({ projector_hidden_act: 'relu' }), 'c.json')).toThrow("'projector_hidden_act' \"relu\" is not supported");
    expect(() => internvlFromConfig({ model_type: 'llava' }, 'c.json')).toThrow(/supported: 'internvl_chat'.*'internvl'/);
    expect(() => visionFromHF({ model_type: 'clip_vision_model', hidden_size: 32 }, 'v.json')).toThrow("v.json: model_type 'clip_vision_model' is not a supported vision tower; supported: intern_vit_6b (InternVisionModel), internvl_vision");
  });
});

describe('tokens', () => {
  it("finds <IMG_CONTEXT> in tokenizer.json's added_tokens when no other file names it", () => {
    const dir = path.join(work, 'tok');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({ added_tokens: [{ id: 7, content: '<img>' }, { id: 151667, content: '<IMG_CONTEXT>' }] }));
    expect(findSpecialTokenId(dir)).toBe(151667);
    copyFileSync(path.join(QWEN2, 'unified/added_tokens.json'), path.join(dir, 'added_tokens.json'));
    expect(findSpecialTokenId(dir)).toBe(153);
  });
});

// ---------------------------------------------------------------------------------------------
// Random HF-native checkpoints against the float64 reference

function rng(seed: number): { uniform: () => number; normal: () => number } {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(Math.max(uniform(), 1e-12))) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

function valueFor(name: string, r: ReturnType<typeof rng>, fanIn: number): number {
  const last = name.split('.').at(-1)!;
  if (last === 'ls1' || last === 'ls2') return 0.3 + 0.7 * r.uniform();
  if (/norm|mlp1\.0\./.test(name) && last === 'weight') return 1 + 0.2 * r.normal();
  if (last === 'bias') return 0.1 * r.normal();
  if (/class_embedding|position_embedding|embed_tokens/.test(name)) return 0.5 * r.normal();
  return r.normal() / Math.sqrt(fanIn);
}

function chatConfig(o: { llm: Json; selectLayer: number; qkNorm: boolean; eps: number; layers: number }): Json {
  return {
    architectures: ['InternVLChatModel'],
    model_type: 'internvl_chat',
    downsample_ratio: 0.5,
    ps_version: 'v2',
    select_layer: o.selectLayer,
    force_image_size: 56,
    vision_config: {
      architectures: ['InternVisionModel'], model_type: 'intern_vit_6b', hidden_size: 32, num_attention_heads: 4, num_hidden_layers: o.layers,
      intermediate_size: 64, image_size: 56, patch_size: 14, hidden_act: 'gelu', norm_type: o.qkNorm ? 'rms_norm' : 'layer_norm',
      qkv_bias: !o.qkNorm, qk_normalization: o.qkNorm, layer_norm_eps: o.eps, initializer_factor: 0.1,
      // transformers' InternVLVisionAttention: q/k norm eps 1e-6 whatever layer_norm_eps is (read by the reference only).
      qk_norm_eps: 1e-6,
    },
    llm_config: o.llm,
  };
}

function qwen3Config(tie: boolean): Json {
  return {
    architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', hidden_size: 48, num_attention_heads: 4, num_key_value_heads: 2,
    // head_dim 16 != 48 / 4: Qwen3 takes head_dim from the config.
    head_dim: 16, num_hidden_layers: 2, intermediate_size: 96, vocab_size: 128, hidden_act: 'silu', rms_norm_eps: 1e-6,
    rope_theta: 1000000.0, max_position_embeddings: 40960, tie_word_embeddings: tie, attention_bias: false,
  };
}

interface RandomCase {
  name: string;
  chat: Json;
  seed: number;
  spelling: Spelling;
  storage?: 'BF16';
  /** Rows: text before, tiles, text after. */
  rows: { before: number; tiles: number; after: number }[];
}

const bf16Round = (x: Float32Array) => {
  const h = f32ToBf16(x);
  const out = new Float32Array(x.length);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < h.length; i++) u[i] = h[i]! << 16;
  return out;
};

async function compareRandom(c: RandomCase): Promise<{ logits: number; vit: number }> {
  const model = internvlFromConfig(c.chat, 'random case');
  assignPaths(model);
  const r = rng(c.seed);
  const tensors: Tensor[] = [];
  const weights: Weights = new Map();
  for (const p of collectParams(model)) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    const fanIn = p.shape.slice(1).reduce((a, b) => a * b, 1);
    let values = Float32Array.from({ length: n }, () => valueFor(p.name, r, fanIn));
    if (c.storage === 'BF16') values = bf16Round(values);
    weights.set(p.name, Float64Array.from(values));
    tensors.push({ name: p.name, dtype: 'F32', shape: [...p.shape], data: new Uint8Array(values.buffer) });
  }
  const lc = c.chat.llm_config as Json;
  const vocab = lc.vocab_size as number;
  const contextId = vocab - 1;
  const perTile = 4;
  const dir = path.join(work, c.name.replace(/[^a-z0-9]+/gi, '-'));
  await writeHF(path.join(dir, 'ckpt'), c.chat, tensors, contextId, perTile, { spelling: c.spelling, tie: lc.tie_word_embeddings as boolean }, c.storage);

  const tiles = c.rows.reduce((a, b) => a + b.tiles, 0);
  const pixelValues = Float32Array.from({ length: tiles * 3 * 56 * 56 }, () => r.normal());
  const text = () => 6 + Math.floor(r.uniform() * (vocab - 10));
  const rows = c.rows.map(({ before, tiles: t, after }) => [
    ...Array.from({ length: before }, text),
    ...(t > 0 ? [contextId - 2, ...new Array(t * perTile).fill(contextId), contextId - 1] : []),
    ...Array.from({ length: after }, text),
  ]);
  const N = Math.max(...rows.map((x) => x.length));
  const ids = new BigInt64Array(rows.length * N);
  rows.forEach((row, b) => row.forEach((id, t) => (ids[b * N + t] = BigInt(id))));
  const refInputs = { pixelValues, pixelShape: [tiles, 3, 56, 56] as const, inputIds: ids, inputShape: [rows.length, N] as const, imageFlags: new Array(tiles).fill(1) };
  const ref = internvlReference(c.chat, weights, refInputs, contextId);
  if (lc.model_type === 'qwen3') {
    // The comparison must see Qwen3's q/k norms: the same weights read as Llama (no norms) differ.
    const asLlama = { ...c.chat, llm_config: { ...lc, architectures: ['LlamaForCausalLM'], model_type: 'llama' } };
    expect(maxAbsError(internvlReference(asLlama, weights, refInputs, contextId).logits, ref.logits)).toBeGreaterThan(100 * TOL);
  }

  await build({ weights: path.join(dir, 'ckpt'), out: path.join(dir, 'artifact') });
  const session = await openSession(path.join(dir, 'artifact'));
  let got: Record<string, HostTensor>;
  try {
    expect(session.inputNames).toEqual(['pixel_values', 'input_ids']);
    got = await run(session, { pixel_values: { dtype: 'float32', shape: [tiles, 3, 56, 56], data: pixelValues }, input_ids: { dtype: 'int64', shape: [rows.length, N], data: ids } });
  } finally {
    await session.release();
  }
  expect(got.logits!.shape).toEqual(ref.logitsShape);
  let absmax = 0;
  for (const v of ref.logits) absmax = Math.max(absmax, Math.abs(v));
  expect(absmax).toBeGreaterThan(0.5);
  const result = { logits: maxAbsError(got.logits!.data as Float32Array, ref.logits), vit: maxAbsError(got.vit_embeds!.data as Float32Array, ref.vitEmbeds) };
  measured.push(`${c.name}: logits ${result.logits.toExponential(2)}, vit_embeds ${result.vit.toExponential(2)} (vs float64 reference)`);
  return result;
}

const twoRows = [
  { before: 3, tiles: 1, after: 4 },
  { before: 2, tiles: 1, after: 2 },
];

describe('random HF-native checkpoints vs the float64 reference', () => {
  it.each([
    { name: 'qwen3 tied batch 2 layer -1', llm: qwen3Config(true), selectLayer: -1, spelling: 'transformers-5' as const },
    { name: 'qwen3 untied layer -2', llm: qwen3Config(false), selectLayer: -2, spelling: 'transformers-4' as const },
    { name: 'qwen3 tied layer +1', llm: qwen3Config(true), selectLayer: 1, spelling: 'transformers-4' as const },
  ])('$name (qk-norm ViT, layer_norm_eps 1e-5, q/k norm eps 1e-6)', async ({ name, llm, selectLayer, spelling }) => {
    const chat = chatConfig({ llm, selectLayer, qkNorm: true, eps: 1e-5, layers: 3 });
    const err = await compareRandom({ name, chat, seed: 7 + selectLayer, spelling, rows: twoRows });
    expect(err.vit).toBeLessThanOrEqual(TOL);
    expect(err.logits).toBeLessThanOrEqual(TOL);
  });

  it('BF16 checkpoint, Qwen3 tied (reference on the bf16-rounded values)', async () => {
    const chat = chatConfig({ llm: qwen3Config(true), selectLayer: -1, qkNorm: false, eps: 1e-6, layers: 2 });
    const err = await compareRandom({ name: 'bf16 qwen3', chat, seed: 99, spelling: 'transformers-5', storage: 'BF16', rows: twoRows });
    expect(err.vit).toBeLessThanOrEqual(TOL);
    expect(err.logits).toBeLessThanOrEqual(TOL);
  });
});
