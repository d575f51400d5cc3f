/**
 * The validation contract: every input problem (a config field, a DSL option, a flag, a checkpoint
 * file, a run input) is exit 2 / a UserError naming the file, field, flag or tensor, checked before
 * anything is built or run; valid layouts the readers used to refuse are accepted. Each defect found
 * by issue 8's campaign has its test here, named in its title.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { build } from '../src/build.ts';
import { runArtifact } from '../src/run.ts';
import { readManifest } from '../src/artifact/format.ts';
import { init } from '../src/init/init.ts';
import { compile } from '../src/compile.ts';
import { Checkpoint } from '../src/checkpoint/checkpoint.ts';
import { SafetensorsFile } from '../src/checkpoint/safetensors.ts';
import { GraphError } from '../src/errors.ts';
import { internvl, internViT, qwen2, nn, op, i64, Module, type Tensor } from '../src/index.ts';
import { maxAbsError, removeDir, tempDir, vlmcInProcess } from './helpers.ts';
import { QWEN, editedCheckpoint, expectUserError, i64Bytes, writeInputs, type Json } from './validation-helpers.ts';

const work = tempDir('vlmc-validation-');
afterAll(() => removeDir(work));
let n = 0;
const fresh = (name: string) => path.join(work, `${name}-${n++}`);
const unified = (edit: (cfg: Json) => unknown) => editedCheckpoint(work, `ck-${n++}`, path.join(QWEN, 'unified'), edit);
const llmDir = (edit: (cfg: Json) => unknown) => editedCheckpoint(work, `llm-${n++}`, path.join(QWEN, 'llm'), edit);
const visionDir = path.join(QWEN, 'vision');

async function logitsOf(file: string): Promise<Float32Array> {
  const st = await SafetensorsFile.open(file);
  try {
    return await st.readAsFloat32(st.entry('logits'));
  } finally {
    await st.close();
  }
}

describe('issue 8 defect 5: transformers-5 configs and numerics vlmc does not model', () => {
  it('rope_parameters (no top-level rope_theta) gives the reference logits', async () => {
    const dir = unified((c) => {
      const l = c.llm_config;
      l.rope_parameters = { rope_type: 'default', rope_theta: l.rope_theta };
      delete l.rope_theta;
      delete l.rope_scaling;
    });
    const out = fresh('rope5');
    await build({ weights: dir, out });
    const result = fresh('rope5-out.safetensors');
    await runArtifact(out, path.join(QWEN, 'inputs.safetensors'), result);
    expect(maxAbsError(await logitsOf(result), await logitsOf(path.join(QWEN, 'expected.safetensors')))).toBeLessThan(1e-4);
  });

  it('an unknown rope_type is an error naming the field and the supported types', async () => {
    const dir = unified((c) => void (c.llm_config.rope_scaling = { rope_type: 'ntk-by-parts', factor: 4 }));
    await expectUserError(build({ weights: dir, out: fresh('ntk') }), 'config.json llm_config: rope_scaling', 'rope_type "ntk-by-parts" is not supported', 'linear, dynamic, llama3, longrope, yarn, proportional');
  });

  it('a rope field vlmc does not understand is an error, never ignored', async () => {
    const dir = unified((c) => void (c.llm_config.rope_parameters = { rope_type: 'linear', factor: 2, mscale: 0.7 }));
    await expectUserError(build({ weights: dir, out: fresh('mscale') }), "rope_parameters: field 'mscale' is not understood for rope_type 'linear'");
  });

  it('Qwen2 sliding layers without use_sliding_window are an error naming layer_types (transformers has no window for them)', async () => {
    const dir = unified((c) => void Object.assign(c.llm_config, { use_sliding_window: false, sliding_window: 16, layer_types: ['sliding_attention', 'full_attention'] }));
    await expectUserError(build({ weights: dir, out: fresh('sw') }), "llm_config: field 'layer_types' names sliding_attention layers", 'use_sliding_window is not true');
    const off = unified((c) => void Object.assign(c.llm_config, { use_sliding_window: false, sliding_window: 16 }));
    await build({ weights: off, out: fresh('sw-off') });
  });

  it('an unknown hidden_act is an error listing what is supported', async () => {
    const dir = unified((c) => void (c.llm_config.hidden_act = 'gelu_new'));
    await expectUserError(build({ weights: dir, out: fresh('act') }), 'llm_config: hidden_act "gelu_new" is not supported (supported: silu, swish');
  });
});

describe('issue 8 defect 6: Path B --force-image-size', () => {
  it('equals a Path A build whose config has that force_image_size (position embeddings resized in the graph)', async () => {
    const dir = unified((c) => void (c.force_image_size = 112));
    const a = fresh('force-a');
    const b = fresh('force-b');
    await build({ weights: dir, out: a });
    await build({ vision: visionDir, llm: path.join(QWEN, 'llm'), projector: path.join(QWEN, 'mlp1.safetensors'), forceImageSize: 112, out: b });
    expect(readManifest(b).inputs[0]!.shape).toEqual(['tiles', 3, 112, 112]);
    expect(readManifest(b).metadata['vlmc.tokens_per_tile']).toBe('16');
    const inputs = fresh('force-in.safetensors');
    await writeInputs(inputs, { tiles: 2, size: 112, tokensPerTile: 16, contextId: 153 });
    const [ra, rb] = [fresh('ra.safetensors'), fresh('rb.safetensors')];
    await runArtifact(a, inputs, ra);
    await runArtifact(b, inputs, rb);
    const [la, lb] = [await logitsOf(ra), await logitsOf(rb)];
    expect(la.length).toBe(1 * (3 + 32 + 2) * 160);
    expect(maxAbsError(la, lb)).toBe(0);
  });

  it('the CLI flag exists and its bad value names the flag', async () => {
    const r = await vlmcInProcess(['build', '--vision', visionDir, '--llm', path.join(QWEN, 'llm'), '--force-image-size', '100', '--out', fresh('force-bad')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--force-image-size');
    expect(r.stderr).toContain('not a multiple of the vision patch_size 14');
  });
});

describe('issue 8 defect 7: configs validated (cheap bounds first) before any graph is built', () => {
  const cases: [string, (c: Json) => unknown, string[]][] = [
    ['num_hidden_layers 1e9', (c) => void (c.llm_config.num_hidden_layers = 1e9), ["field 'num_hidden_layers' must be between 1 and 1024"]],
    ['hidden_size 1e9', (c) => void (c.llm_config.hidden_size = 1e9), ["field 'hidden_size' must be between 1 and 65536"]],
    ['heads not dividing hidden', (c) => void Object.assign(c.llm_config, { num_attention_heads: 5, num_key_value_heads: 5 }), ['hidden_size (48) is not divisible by num_attention_heads (5)']],
    ['vision heads not dividing hidden', (c) => void (c.vision_config.num_attention_heads = 5), ['vision_config: hidden_size (32) is not divisible by num_attention_heads (5)']],
    ['zero dim', (c) => void (c.vision_config.intermediate_size = 0), ["vision_config: field 'intermediate_size' must be between 1"]],
    ['negative dim', (c) => void (c.llm_config.vocab_size = -3), ["field 'vocab_size' must be between 1"]],
    ['fractional dim', (c) => void (c.llm_config.intermediate_size = 96.5), ["field 'intermediate_size' must be a whole number (got 96.5)"]],
    ['downsample_ratio 0', (c) => void (c.downsample_ratio = 0), ["field 'downsample_ratio'", 'must be 1/k']],
    ['downsample_ratio 2', (c) => void (c.downsample_ratio = 2), ["field 'downsample_ratio'", 'must be 1/k']],
    ['downsample_ratio 0.3', (c) => void (c.downsample_ratio = 0.3), ["field 'downsample_ratio'", 'got 0.3']],
    ['downsample_ratio not dividing the grid', (c) => void (c.downsample_ratio = 0.125), ['patch grid (4 x 4', 'multiple of 8']],
    ['patch size not dividing image size', (c) => void (c.vision_config.patch_size = 15), ['image_size (56) is not a multiple of patch_size (15)']],
    ['architectures ["__proto__"]', (c) => void (c.llm_config.architectures = ['__proto__']), ["unknown LLM architecture '__proto__'", 'Qwen2ForCausalLM']],
    ['architectures ["toString"]', (c) => void (c.llm_config.architectures = ['toString']), ["unknown LLM architecture 'toString'"]],
    ['config.json null', () => null, ['config.json: must contain a JSON object (got null)']],
    ['config.json an array', () => [1, 2], ['config.json: must contain a JSON object (got an array)']],
    ['config.json a string', () => 'hello', ['config.json: must contain a JSON object (got string)']],
    ['vision_config an array', (c) => void (c.vision_config = []), ["'vision_config' is missing or not an object"]],
  ];
  it.each(cases)('%s', async (_name, edit, parts) => {
    const out = fresh('bad');
    const started = Date.now();
    await expectUserError(build({ weights: unified(edit), out }), ...parts);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(existsSync(out)).toBe(false);
  });

  it('--vision and --llm swapped, or a unified folder as --vision, are explained as that', async () => {
    await expectUserError(build({ vision: path.join(QWEN, 'llm'), llm: visionDir, out: fresh('swap') }), '--vision and --llm look swapped');
    await expectUserError(build({ vision: path.join(QWEN, 'unified'), llm: path.join(QWEN, 'llm'), out: fresh('uni') }), '--vision was given a unified InternVL checkpoint', '--weights');
  });

  it('a projector flag beside a graph file is an error naming the flag and the graph', async () => {
    await expectUserError(build({ graph: 'graphs/internvl-tiny.ts', weights: path.join(QWEN, 'unified'), downsampleRatio: 0.25, out: fresh('flag') }), '--downsample-ratio', 'graphs/internvl-tiny.ts sets downsampleRatio itself');
  });

  it("a flag's bad value names the flag, not config.json", async () => {
    const msg = await expectUserError(build({ weights: path.join(QWEN, 'unified'), selectLayer: 7, out: fresh('sel') }), '--select-layer (selectLayer)', 'from -3 to 2');
    expect(msg).not.toContain('config.json');
  });
});

describe('issue 8 defect 7: vlmc run inputs checked against the artifact before onnxruntime', () => {
  let artifact: string;
  beforeAll(async () => {
    artifact = fresh('run-artifact');
    await build({ weights: path.join(QWEN, 'unified'), out: artifact });
  });
  const spec = { tiles: 2, size: 56, tokensPerTile: 4, contextId: 153 };
  async function runWith(s: Parameters<typeof writeInputs>[1], ...parts: string[]): Promise<void> {
    const inputs = fresh('in.safetensors');
    await writeInputs(inputs, s);
    const out = fresh('out.safetensors');
    await expectUserError(runArtifact(artifact, inputs, out), inputs, ...parts);
    expect(existsSync(out)).toBe(false);
  }
  const ids = (values: number[]) => ({ name: 'input_ids', dtype: 'I64' as const, shape: [1, values.length], data: i64Bytes(values) });
  const ctx = Array.from({ length: 8 }, () => 153);

  it('wrong dtype', () => runWith({ ...spec, override: { input_ids: { ...ids([1, ...ctx]), dtype: 'F64', data: new Uint8Array(9 * 8) } } }, "input 'input_ids' is F64", 'int64'));
  it('wrong rank', () => runWith({ ...spec, override: { input_ids: { ...ids([1, ...ctx]), shape: [9] } } }, "input 'input_ids' has shape [9] (rank 1)"));
  it('wrong tile size', () => runWith({ ...spec, size: 48 }, "input 'pixel_values' has 48 at axis 2", 'tile size'));
  it('wrong channels', async () => {
    const px = { name: 'pixel_values', dtype: 'F32' as const, shape: [2, 4, 56, 56], data: new Uint8Array(2 * 4 * 56 * 56 * 4) };
    await runWith({ ...spec, override: { pixel_values: px } }, 'axis 1', '3 colour channels');
  });
  it('token id outside the vocabulary (negative ids no longer wrap)', () => runWith({ ...spec, prefix: [-1] }, "'input_ids' holds -1", 'from 0 to 159'));
  it('token id = vocab', () => runWith({ ...spec, prefix: [160] }, "'input_ids' holds 160"));
  it('fewer <IMG_CONTEXT> tokens than flagged tiles need', () => runWith({ ...spec, override: { input_ids: ids([1, ...ctx.slice(1)]) } }, 'holds 7 <IMG_CONTEXT> tokens', '2 tile(s) x 4 tokens per tile = 8'));
  it('more <IMG_CONTEXT> tokens than flagged tiles need', () => runWith({ ...spec, flags: [1, 0], override: { input_ids: ids([1, ...ctx]) } }, 'holds 8 <IMG_CONTEXT> tokens', '= 4'));
  it('image_flags length differs from the tiles', () => runWith({ ...spec, flags: [1, 1, 1], override: { input_ids: ids([1, ...ctx]) } }, "'image_flags' has tiles = 3", 'tiles = 2'));
  it('image_flags values other than 0/1', () => runWith({ ...spec, flags: [1, 2] }, "'image_flags' holds 2 for tile 1"));
  it('issue 16 defect 10: zero tiles (a text-only request) run, and give the logits of one blank tile flagged 0', async () => {
    const none = fresh('text-only.safetensors');
    await writeInputs(none, { ...spec, tiles: 0, flags: [] });
    const blank = fresh('blank-tile.safetensors');
    await writeInputs(blank, { ...spec, tiles: 1, flags: [0] });
    const a = await runArtifact(artifact, none, fresh('a.safetensors'));
    const b = await runArtifact(artifact, blank, fresh('b.safetensors'));
    expect(a.vit_embeds!.shape).toEqual([0, 4, 48]);
    expect(a.logits!.shape).toEqual([1, 5, 160]);
    expect(maxAbsError(a.logits!.data as Float32Array, b.logits!.data as Float32Array)).toBeLessThan(1e-6);
  });
  it('zero rows or an empty sequence are still refused', () => runWith({ ...spec, override: { input_ids: ids([]) } }, "'input_ids' has seq = 0"));

  it('image_flags as [tiles, 1] and extra tensors (attention_mask, BOOL) are accepted', async () => {
    const inputs = fresh('ok.safetensors');
    const flags = { name: 'image_flags', dtype: 'I64' as const, shape: [2, 1], data: i64Bytes([1, 1]) };
    const mask = { name: 'attention_mask', dtype: 'BOOL' as const, shape: [1, 13], data: new Uint8Array(13).fill(1) };
    await writeInputs(inputs, { ...spec, override: { image_flags: flags }, extra: [mask] });
    const out = fresh('ok-out.safetensors');
    const r = await runArtifact(artifact, inputs, out);
    expect(r.logits!.shape).toEqual([1, 13, 160]);
  });

  it('--inputs at a FIFO or a directory is refused without hanging', async () => {
    const fifo = fresh('fifo');
    execFileSync('mkfifo', [fifo]);
    await expectUserError(runArtifact(artifact, fifo, fresh('o.safetensors')), fifo, 'not a regular file (a FIFO');
    const folder = fresh('inputs-folder');
    mkdirSync(folder);
    await expectUserError(runArtifact(artifact, folder, fresh('o.safetensors')), 'not a regular file (a directory)');
  });

  it('a missing or damaged model.onnx.data is an error naming the file', async () => {
    const inputs = fresh('in.safetensors');
    await writeInputs(inputs, spec);
    const damaged = fresh('damaged');
    cpSync(artifact, damaged, { recursive: true });
    const data = path.join(damaged, 'model.onnx.data');
    truncateSync(data, 1000);
    await expectUserError(runArtifact(damaged, inputs, fresh('o.safetensors')), 'model.onnx.data', 'per manifest.json) lies outside the file (1000 bytes)');
    rmSync(data);
    await expectUserError(runArtifact(damaged, inputs, fresh('o.safetensors')), "external data file 'model.onnx.data' does not exist");
  });

  it('the CLI exits 2, never 1, for a bad inputs file', async () => {
    const inputs = fresh('cli-in.safetensors');
    await writeInputs(inputs, { ...spec, prefix: [999] });
    const r = await vlmcInProcess(['run', artifact, '--inputs', inputs, '--out', fresh('cli-out.safetensors')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("'input_ids' holds 999");
  });
});

describe('issue 8 defect 8: the safetensors reader follows the reference library', () => {
  /** The fixture's weights with the header length `k` bytes short (cutting only padding when it has some). */
  function shortened(k: number): string {
    const bytes = readFileSync(path.join(QWEN, 'unified', 'model.safetensors'));
    const out = Buffer.from(bytes);
    out.writeBigUInt64LE(bytes.readBigUInt64LE(0) - BigInt(k), 0);
    const file = fresh('short.safetensors');
    writeFileSync(file, out);
    return file;
  }
  it.each([1, 2, 3, 4, 5, 6])('a header length %i byte(s) short is refused, never read shifted', async (k) => {
    await expectUserError(SafetensorsFile.open(shortened(k)), 'short.safetensors');
  });

  it('duplicate tensor keys are refused', async () => {
    const header = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
    const json = Buffer.from(header);
    const file = fresh('dup.safetensors');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    writeFileSync(file, Buffer.concat([len, json, Buffer.alloc(8)]));
    await expectUserError(SafetensorsFile.open(file), 'dup.safetensors', 'the key "a" twice');
  });

  /** A two-shard copy of the fixture's unified weights. */
  async function sharded(dir: string, names: [string, string]): Promise<Record<string, string>> {
    const st = await SafetensorsFile.open(path.join(QWEN, 'unified', 'model.safetensors'));
    const keys = st.keys();
    const { writeSafetensors } = await import('../src/checkpoint/safetensors-write.ts');
    const map: Record<string, string> = {};
    const parts: [string[], string][] = [[keys.slice(0, 10), 'model-00001-of-00002.safetensors'], [keys.slice(10), 'model-00002-of-00002.safetensors']];
    for (const [i, [subset, file]] of parts.entries()) {
      const tensors = [];
      for (const k of subset) {
        const e = st.entry(k);
        tensors.push({ name: k, dtype: e.dtype, shape: e.shape, data: await st.readAll(e) });
        map[k] = names[i]!;
      }
      await writeSafetensors(path.join(dir, file), tensors);
    }
    await st.close();
    return map;
  }

  it('the Hugging Face hub cache layout (every file a symlink into ../../blobs) is accepted', async () => {
    const repo = fresh('hub');
    const snap = path.join(repo, 'snapshots', 'abc123');
    const blobs = path.join(repo, 'blobs');
    mkdirSync(snap, { recursive: true });
    mkdirSync(blobs, { recursive: true });
    const staging = fresh('staging');
    mkdirSync(staging);
    const map = await sharded(staging, ['model-00001-of-00002.safetensors', './model-00002-of-00002.safetensors']);
    writeFileSync(path.join(staging, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: map }));
    for (const f of ['config.json', 'added_tokens.json', 'tokenizer_config.json']) cpSync(path.join(QWEN, 'unified', f), path.join(staging, f));
    for (const [i, f] of ['config.json', 'added_tokens.json', 'tokenizer_config.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'].entries()) {
      renameSync(path.join(staging, f), path.join(blobs, `blob${i}`));
      symlinkSync(`../../blobs/blob${i}`, path.join(snap, f));
    }
    const ck = await Checkpoint.open(snap);
    expect(ck.keys().length).toBeGreaterThan(10);
    await ck.close();
    const out = fresh('hub-out');
    await build({ weights: snap, out });
    expect(readManifest(out).parameters.length).toBeGreaterThan(10);
  });
});

describe('issue 8 defect 9: config values that built broken artifacts', () => {
  it('LongRoPE factor lists of the wrong length', async () => {
    const dir = llmDir((c) => void (c.rope_scaling = { type: 'longrope', short_factor: [1, 1], long_factor: [1, 1, 1, 1, 1, 1] }));
    await expectUserError(build({ vision: visionDir, llm: dir, out: fresh('lr') }), "'short_factor' has 2 entries", '6 (rotary dim / 2)');
  });
  it('force_image_size 0', async () => {
    await expectUserError(build({ weights: unified((c) => void (c.force_image_size = 0)), out: fresh('f0') }), "field 'force_image_size'", 'between 1 and');
  });
  it('fractional layer counts and select_layer are errors, never truncated', async () => {
    await expectUserError(build({ weights: unified((c) => void (c.vision_config.num_hidden_layers = 1.5)), out: fresh('fl') }), "vision_config: field 'num_hidden_layers' must be a whole number (got 1.5)");
    await expectUserError(build({ weights: unified((c) => void (c.select_layer = -1.5)), out: fresh('fs') }), "field 'select_layer'", 'got -1.5');
  });
  it('select_layer out of range', async () => {
    await expectUserError(build({ weights: unified((c) => void (c.select_layer = -4)), out: fresh('so') }), "field 'select_layer'", 'from -3 to 2');
  });
  it('vlmc init refuses configs that cannot build, writing nothing', async () => {
    const out = fresh('init.ts');
    await expectUserError(init({ from: unified((c) => void (c.downsample_ratio = 0.3)), out }), 'downsample_ratio');
    await expectUserError(init({ from: unified(() => null), out }), 'must contain a JSON object');
    expect(existsSync(out)).toBe(false);
  });
  it('an <IMG_CONTEXT> id outside the vocabulary, from any source', async () => {
    const fromAdded = unified(() => undefined);
    writeFileSync(path.join(fromAdded, 'added_tokens.json'), JSON.stringify({ '<IMG_CONTEXT>': 5000 }));
    await expectUserError(build({ weights: fromAdded, out: fresh('id1') }), 'added_tokens.json', 'id 5000 is not a token', 'from 0 to 159');
    const fromConfig = unified(() => undefined);
    rmSync(path.join(fromConfig, 'added_tokens.json'));
    writeFileSync(path.join(fromConfig, 'tokenizer_config.json'), JSON.stringify({ added_tokens_decoder: { '9999': { content: '<IMG_CONTEXT>' } } }));
    await expectUserError(build({ weights: fromConfig, out: fresh('id2') }), 'tokenizer_config.json', 'id 9999');
    const r = await vlmcInProcess(['build', '--weights', path.join(QWEN, 'unified'), '--img-context-token-id', '99999999999999999999999', '--out', fresh('id3')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--img-context-token-id must be an integer');
    await expectUserError(build({ weights: path.join(QWEN, 'unified'), imgContextTokenId: 160, out: fresh('id4') }), '--img-context-token-id', 'id 160');
  });
});

describe('issue 8 defect 10: typos in DSL option objects', () => {
  it('qwen2({ rmsNormEsp }) is rejected with a did-you-mean at the calling line', async () => {
    const msg = await expectUserError(() =>
      qwen2({ hidden: 48, heads: 4, kvHeads: 2, layers: 2, intermediate: 96, vocab: 160, rmsNormEsp: 1e-5, ropeTheta: 1e6, maxPositions: 128, tieEmbeddings: true } as never),
    "unknown option 'rmsNormEsp' (did you mean 'rmsNormEps'?)");
    expect(msg).toMatch(/input-validation\.test\.ts:\d+:\d+: qwen2:/);
  });
});

describe('issue 8 defect 11: shape inference checks norm widths', () => {
  it('a LayerNorm(64) on 128-wide features is a GraphError naming the module and the declaring line', async () => {
    class BadProjector extends Module {
      readonly norm = new nn.LayerNorm(64);
      forward(x: Tensor): Tensor {
        return this.norm.call(x);
      }
    }
    const model = internvl({
      vision: internViT({ hidden: 32, heads: 4, layers: 1, intermediate: 64, imageSize: 56, patchSize: 14, norm: 'layer_norm', qkvBias: true, qkNorm: false, eps: 1e-6 }),
      llm: qwen2({ hidden: 48, heads: 4, kvHeads: 2, layers: 1, intermediate: 96, vocab: 160, rmsNormEps: 1e-6, ropeTheta: 1e6, maxPositions: 128, tieEmbeddings: true }),
      projector: new BadProjector() as never,
      imgContextTokenId: 153,
    });
    const msg = await expectUserError(() => compile(model), 'mlp1.norm', 'scale [64] does not match the normalized dims [128]');
    expect(msg).toMatch(/input-validation\.test\.ts:\d+/);
    expect(() => compile(model)).toThrow(GraphError);
  });

  const tinyWith = (projector: Module) =>
    internvl({
      vision: internViT({ hidden: 32, heads: 4, layers: 1, intermediate: 64, imageSize: 56, patchSize: 14, norm: 'layer_norm', qkvBias: true, qkNorm: false, eps: 1e-6 }),
      llm: qwen2({ hidden: 48, heads: 4, kvHeads: 2, layers: 1, intermediate: 96, vocab: 160, rmsNormEps: 1e-6, ropeTheta: 1e6, maxPositions: 128, tieEmbeddings: true }),
      projector: projector as never,
      imgContextTokenId: 153,
    });

  it('an RMSNorm(64) on 128-wide features (the RMSNorm pattern) is a GraphError', async () => {
    class RmsProjector extends Module {
      readonly norm = new nn.RMSNorm(64);
      forward(x: Tensor): Tensor {
        return this.norm.call(x);
      }
    }
    await expectUserError(() => compile(tinyWith(new RmsProjector())), 'mlp1.norm', 'do not broadcast');
  });

  it('a static Gather index out of range is a GraphError', async () => {
    class GatherProjector extends Module {
      readonly table = this.param([4, 48], { kind: 'zeros' });
      forward(_x: Tensor): Tensor {
        return op.Unsqueeze(op.Gather(this.table.value, i64([1, 5]), { axis: 0 }), i64([0]));
      }
    }
    await expectUserError(() => compile(tinyWith(new GatherProjector())), 'mlp1', 'index 5 is out of range for axis 0 of [4, 48]');
  });
});
