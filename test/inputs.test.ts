/**
 * `vlmc inputs` end to end on the tiny fixture models, with a tiny tokenizer made here whose ids
 * fit their vocabularies (characters, ChatML markers, and the case's image token ids).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { FIXTURES, removeDir, tempDir, vlmcInProcess } from './helpers.ts';
import { buildInputs, buildQuery, getTemplate, loadTokenizer, readInputs, UserError, type ImagePreprocessor } from '../src/index.ts';
import { SafetensorsFile } from '../src/checkpoint/safetensors.ts';
import { internvlReference, loadConfig, loadWeights } from './reference/internvl-reference.ts';

interface CaseIds { img_context_token_id: number; img_start_token_id: number; img_end_token_id: number; llm: { vocab_size: number } }

/** A character-level BPE tokenizer.json: <unk> 0, printable ASCII 1-95, '\n' 96, ChatML markers 97-99, image tokens at the case's ids. */
function writeTinyTokenizer(dir: string, c: CaseIds, config: Record<string, unknown> = {}, o: { imageTokens?: boolean } = {}): void {
  const vocab: Record<string, number> = { '<unk>': 0 };
  for (let ch = 0x20; ch <= 0x7e; ch++) vocab[String.fromCharCode(ch)] = ch - 0x1f;
  vocab['\n'] = 96;
  const added = [
    ['<|endoftext|>', 97],
    ['<|im_start|>', 98],
    ['<|im_end|>', 99],
    ['<img>', c.img_start_token_id],
    ['</img>', c.img_end_token_id],
    ['<IMG_CONTEXT>', c.img_context_token_id],
  ] as const;
  const inJson = o.imageTokens === false ? added.slice(0, 3) : added;
  for (const [t, id] of inJson) vocab[t] = id;
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: inJson.map(([content, id]) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: 'Fuse' },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: [] },
  };
  writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'PreTrainedTokenizerFast', eos_token: '<|im_end|>', pad_token: '<|endoftext|>', add_bos_token: false, clean_up_tokenization_spaces: false, ...config }));
}

/** A folder with just a fixture case's config.json and the tiny tokenizer. */
function requestFolder(root: string, name: string, tokenizerConfig: Record<string, unknown> = {}): string {
  const dir = path.join(root, name);
  mkdirSync(dir, { recursive: true });
  copyFileSync(path.join(FIXTURES, name, 'unified', 'config.json'), path.join(dir, 'config.json'));
  writeTinyTokenizer(dir, JSON.parse(readFileSync(path.join(FIXTURES, name, 'case.json'), 'utf8')), tokenizerConfig);
  return dir;
}

/** Deterministic stand-in tiles (the real preprocessing is tested in its own suite). */
function fakePreprocess(tilesOf: Record<string, number>): ImagePreprocessor {
  return async (file, o) => {
    const tiles = tilesOf[path.basename(file)] ?? 1;
    const data = new Float32Array(tiles * 3 * o.imageSize * o.imageSize).map((_, i) => Math.sin(i + file.length) * 2);
    return { file, width: 10, height: 10, grid: [tiles, 1], tiles, pixelValues: data };
  };
}

let root: string;
let qwen: string;
let imageA: string;
let imageB: string;
beforeAll(() => {
  root = tempDir('vlmc-inputs-');
  qwen = requestFolder(root, 'qwen2-tiny');
  imageA = path.join(root, 'a.png');
  imageB = path.join(root, 'b.png');
  writeFileSync(imageA, 'not read by the stand-in');
  writeFileSync(imageB, 'not read by the stand-in');
});
afterAll(() => removeDir(root));

describe('buildInputs', () => {
  it('text only: the chat() query of the config template, one zero tile with flag 0', async () => {
    const r = await buildInputs({ checkpoint: qwen, prompts: ['Hello, who are you?'] });
    const q = buildQuery({ template: getTemplate('Hermes-2'), question: 'Hello, who are you?', numImageToken: 4 });
    expect(r.queries).toEqual([q.query]);
    const ids = loadTokenizer(qwen).encode(q.query);
    expect([...r.inputs.input_ids.data].map(Number)).toEqual(ids);
    expect(r.inputs.input_ids.shape).toEqual([1, ids.length]);
    expect([...r.inputs.attention_mask.data]).toEqual(ids.map(() => 1n));
    expect(r.inputs.pixel_values.shape).toEqual([1, 3, 56, 56]);
    expect(r.inputs.pixel_values.data.every((v) => v === 0)).toBe(true);
    expect([...r.inputs.image_flags.data]).toEqual([0n]);
    expect(r.eosTokenId).toBe(99);
    expect(r.config.tokensPerTile).toBe(4);
  });

  it('one image: <image>\\n prefix, tiles x tokens_per_tile context ids, the tiles in pixel_values', async () => {
    const pre = fakePreprocess({ 'a.png': 3 });
    const r = await buildInputs({ checkpoint: qwen, prompts: ['What is it?'], images: [imageA], preprocess: pre });
    expect(r.questions).toEqual(['<image>\nWhat is it?']);
    const ids = [...r.inputs.input_ids.data].map(Number);
    expect(ids.filter((id) => id === 153).length).toBe(12);
    const start = ids.indexOf(151);
    expect(ids.slice(start, start + 14)).toEqual([151, ...Array(12).fill(153), 152]);
    expect(r.inputs.pixel_values.shape).toEqual([3, 3, 56, 56]);
    expect(r.inputs.pixel_values.data).toEqual((await pre(imageA, { imageSize: 56 })).pixelValues);
    expect([...r.inputs.image_flags.data]).toEqual([1n, 1n, 1n]);
  });

  it('config options reach the preprocessor, overrides win', async () => {
    const seen: unknown[] = [];
    const pre: ImagePreprocessor = async (f, o) => (seen.push(o), fakePreprocess({})(f, o));
    await buildInputs({ checkpoint: qwen, prompts: ['x'], images: [imageA], preprocess: pre });
    await buildInputs({ checkpoint: qwen, prompts: ['x'], images: [imageA], preprocess: pre, maxNum: 2, useThumbnail: false });
    expect(seen).toEqual([
      { imageSize: 56, minNum: 1, maxNum: 12, useThumbnail: true },
      { imageSize: 56, minNum: 1, maxNum: 2, useThumbnail: false },
    ]);
  });

  it('several images need one <image> each; blocks go in image order', async () => {
    const pre = fakePreprocess({ 'a.png': 2, 'b.png': 1 });
    await expect(buildInputs({ checkpoint: qwen, prompts: ['Compare them.'], images: [imageA, imageB], preprocess: pre })).rejects.toThrow(/8 <IMG_CONTEXT> tokens for 3 tile\(s\) x 4 = 12.*one <image> per image/);
    const r = await buildInputs({ checkpoint: qwen, prompts: ['Image-1: <image>\nImage-2: <image>\nCompare them.'], images: [imageA, imageB], preprocess: pre });
    expect(r.queries[0]).toContain(`Image-1: <img>${'<IMG_CONTEXT>'.repeat(8)}</img>\nImage-2: <img>${'<IMG_CONTEXT>'.repeat(4)}</img>\nCompare`);
    expect(r.inputs.pixel_values.shape[0]).toBe(3);
  });

  it('a history: no prefix, the block goes to the first <image> of the conversation', async () => {
    const r = await buildInputs({ checkpoint: qwen, prompts: ['And now?'], images: [imageA], history: [['<image>\nDescribe.', 'A square.']], preprocess: fakePreprocess({}) });
    expect(r.questions).toEqual(['And now?']);
    expect(r.queries[0]).toMatch(/^<\|im_start\|>system\n.*<\|im_end\|><\|im_start\|>user\n<img>(<IMG_CONTEXT>){4}<\/img>\nDescribe\.<\|im_end\|><\|im_start\|>assistant\nA square\.<\|im_end\|><\|im_start\|>user\nAnd now\?<\|im_end\|><\|im_start\|>assistant\n$/s);
  });

  it('several prompts: right-padded rows with the pad id and a mask, images paired in order', async () => {
    const r = await buildInputs({ checkpoint: qwen, prompts: ['Hi', 'A longer question'], images: [imageA, imageB], preprocess: fakePreprocess({ 'a.png': 1, 'b.png': 2 }), systemMessage: 'S' });
    const [rows, seq] = r.inputs.input_ids.shape as [number, number];
    expect(rows).toBe(2);
    const tok = loadTokenizer(qwen);
    const row0 = tok.encode(r.queries[0]!);
    const row1 = tok.encode(r.queries[1]!);
    expect(seq).toBe(Math.max(row0.length, row1.length));
    const ids = [...r.inputs.input_ids.data].map(Number);
    expect(ids.slice(0, seq)).toEqual([...row0, ...Array(seq - row0.length).fill(97)]);
    expect(ids.slice(seq)).toEqual(row1);
    expect([...r.inputs.attention_mask.data].map(Number)).toEqual([...row0.map(() => 1), ...Array(seq - row0.length).fill(0), ...row1.map(() => 1)]);
    expect(ids.filter((id) => id === 153).length).toBe(12);
    expect(r.inputs.pixel_values.shape[0]).toBe(3);
    expect(r.padTokenId).toBe(97);
  });

  it('bad requests are UserErrors naming what is wrong', async () => {
    await expect(buildInputs({ checkpoint: qwen, prompts: ['Is <IMG_CONTEXT> ok?'] })).rejects.toThrow(/1 <IMG_CONTEXT> tokens for 0 tile.*prompt itself contains/);
    await expect(buildInputs({ checkpoint: qwen, prompts: ['a', 'b'], images: [imageA], preprocess: fakePreprocess({}) })).rejects.toThrow(/one --image per prompt/);
    await expect(buildInputs({ checkpoint: qwen, prompts: ['a'], template: 'nope' })).rejects.toThrow(/--template: unknown conversation template "nope" \(supported: internvl_zh, Hermes-2/);
    await expect(buildInputs({ checkpoint: qwen, prompts: ['a'], images: [path.join(root, 'missing.png')] })).rejects.toThrow(/--image .*missing.png: file not found/);
    const noTok = path.join(root, 'no-tokenizer');
    mkdirSync(noTok);
    copyFileSync(path.join(qwen, 'config.json'), path.join(noTok, 'config.json'));
    await expect(buildInputs({ checkpoint: noTok, prompts: ['a'] })).rejects.toThrow(new RegExp(`${noTok}: no tokenizer.json`));
    await expect(buildInputs({ checkpoint: path.join(FIXTURES, 'qwen2-tiny', 'unified'), prompts: ['a'] })).rejects.toThrow(UserError);
  });

  it('a tokenizer whose ids exceed the model vocabulary is refused', async () => {
    const big = path.join(root, 'big-vocab');
    mkdirSync(big);
    copyFileSync(path.join(qwen, 'config.json'), path.join(big, 'config.json'));
    writeTinyTokenizer(big, { img_context_token_id: 300, img_start_token_id: 301, img_end_token_id: 302, llm: { vocab_size: 160 } });
    await expect(buildInputs({ checkpoint: big, prompts: ['a'] })).rejects.toThrow(/token id \d+ is outside the model's vocabulary \(llm_config.vocab_size 160/);
  });

  it('BOS: add_bos_token adds the named bos token when the post-processor does not', async () => {
    const withBos = path.join(root, 'with-bos');
    mkdirSync(withBos);
    copyFileSync(path.join(qwen, 'config.json'), path.join(withBos, 'config.json'));
    writeTinyTokenizer(withBos, JSON.parse(readFileSync(path.join(FIXTURES, 'qwen2-tiny', 'case.json'), 'utf8')), { add_bos_token: true, bos_token: '<|endoftext|>' });
    const r = await buildInputs({ checkpoint: withBos, prompts: ['a'] });
    expect(Number(r.inputs.input_ids.data[0])).toBe(97);
    expect(Number(r.inputs.input_ids.data[1])).toBe(98);
  });
});

describe('vlmc inputs (CLI)', () => {
  it('writes the tensors, replaces its own output, refuses anything else', async () => {
    const out = path.join(root, 'cli', 'in.safetensors');
    const r = await vlmcInProcess(['inputs', '--checkpoint', qwen, '--prompt', 'Hello', '--prompt', 'Hi there', '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/input_ids \[2, \d+\], pixel_values \[1, 3, 56, 56\], template Hermes-2, eos 99/);
    const first = readFileSync(out);
    expect((await vlmcInProcess(['inputs', '--checkpoint', qwen, '--prompt', 'Hello', '--prompt', 'Hi there', '--out', out])).status).toBe(0);
    expect(readFileSync(out).equals(first)).toBe(true);
    const foreign = path.join(root, 'cli', 'notes.txt');
    writeFileSync(foreign, 'keep me');
    const refused = await vlmcInProcess(['inputs', '--checkpoint', qwen, '--prompt', 'Hello', '--out', foreign]);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toMatch(/--out .*notes.txt: is a file vlmc did not write/);
    expect(readFileSync(foreign, 'utf8')).toBe('keep me');
  });

  it('bad input exits 2 with one message and writes nothing', async () => {
    const out = path.join(root, 'cli', 'none.safetensors');
    const history = path.join(root, 'cli', 'history.json');
    writeFileSync(history, JSON.stringify([['q', 1]]));
    for (const [args, message] of [
      [['--checkpoint', path.join(FIXTURES, 'qwen2-tiny', 'unified'), '--prompt', 'x'], /unified: no tokenizer.json/],
      [['--checkpoint', qwen, '--prompt', 'x', '--history', history], /--history .*history.json: entry 0 must be a \[question, answer\] pair/],
      [['--checkpoint', qwen, '--prompt', 'x', '--max-num', '0'], /--max-num must be at least 1/],
      [['--checkpoint', qwen, '--prompt', 'x', '--image', path.join(root, 'nope.png')], /nope.png: file not found/],
    ] as const) {
      const r = await vlmcInProcess(['inputs', ...args, '--out', out]);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(existsSync(out)).toBe(false);
    }
  });
});

describe('inputs -> vlmc run, against the float64 reference', () => {
  it('qwen2-tiny, text only (flag-0 tile) and two batch rows', async () => {
    const artifact = path.join(root, 'artifact');
    const b = await vlmcInProcess(['build', '--weights', path.join(FIXTURES, 'qwen2-tiny', 'unified'), '--out', artifact, '--quiet']);
    expect(b.status, b.stderr).toBe(0);
    const inFile = path.join(root, 'run-in.safetensors');
    expect((await vlmcInProcess(['inputs', '--checkpoint', qwen, '--prompt', 'Describe it.', '--prompt', 'Two', '--out', inFile])).status).toBe(0);
    const outFile = path.join(root, 'run-out.safetensors');
    const r = await vlmcInProcess(['run', artifact, '--inputs', inFile, '--out', outFile]);
    expect(r.status, r.stderr).toBe(0);
    const inputs = await readInputs(inFile);
    const outputs = await readInputs(outFile);
    const unified = path.join(FIXTURES, 'qwen2-tiny', 'unified');
    const ref = internvlReference(loadConfig(unified), await loadWeights(unified), {
      pixelValues: inputs.pixel_values!.data as Float32Array,
      pixelShape: inputs.pixel_values!.shape as [number, number, number, number],
      inputIds: inputs.input_ids!.data as BigInt64Array,
      inputShape: inputs.input_ids!.shape as [number, number],
      imageFlags: inputs.image_flags!.data as BigInt64Array,
    }, 153);
    expect(outputs.logits!.shape).toEqual(ref.logitsShape);
    const got = outputs.logits!.data as Float32Array;
    let err = 0;
    for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i]! - ref.logits[i]!));
    expect(err).toBeLessThan(1e-4);
  }, 120_000);
});

describe('vlmc inputs with real images (fixtures/preprocess), then vlmc run', () => {
  const IMAGES = path.join(FIXTURES, 'preprocess', 'images');
  const CASES = path.join(FIXTURES, 'preprocess', 'cases');

  async function fixturePixels(file: string): Promise<{ shape: number[]; data: Float32Array }> {
    const st = await SafetensorsFile.open(file);
    try {
      const e = st.entry('pixel_values');
      return { shape: [...e.shape], data: await st.readAsFloat32(e) };
    } finally {
      await st.close();
    }
  }

  async function runAgainstReference(name: string, artifact: string, inFile: string, contextId: number): Promise<number> {
    const outFile = `${inFile}.out.safetensors`;
    const r = await vlmcInProcess(['run', artifact, '--inputs', inFile, '--out', outFile]);
    expect(r.status, r.stderr).toBe(0);
    const inputs = await readInputs(inFile);
    const unified = path.join(FIXTURES, name, 'unified');
    const ref = internvlReference(loadConfig(unified), await loadWeights(unified), {
      pixelValues: inputs.pixel_values!.data as Float32Array,
      pixelShape: inputs.pixel_values!.shape as [number, number, number, number],
      inputIds: inputs.input_ids!.data as BigInt64Array,
      inputShape: inputs.input_ids!.shape as [number, number],
      imageFlags: inputs.image_flags!.data as BigInt64Array,
    }, contextId);
    expect(ref.ignoreFlag).toBe(false);
    const got = (await readInputs(outFile)).logits!;
    expect(got.shape).toEqual(ref.logitsShape);
    let err = 0;
    for (let i = 0; i < got.data.length; i++) err = Math.max(err, Math.abs((got.data[i] as number) - ref.logits[i]!));
    console.log(`[inputs] ${name}: ${inputs.input_ids!.shape.join('x')} ids, ${inputs.pixel_values!.shape[0]} tiles, logits max |vlmc - reference| ${err.toExponential(2)}`);
    return err;
  }

  it('qwen2-tiny: a PNG and a JPEG, one <image> each; tiles exactly the official ones; logits = reference', async () => {
    const inFile = path.join(root, 'two-images.safetensors');
    const r = await vlmcInProcess(['inputs', '--checkpoint', qwen, '--image', path.join(IMAGES, 'png_rgb_800x600.png'), '--image', path.join(IMAGES, 'jpeg420_q90_800x600.jpg'),
      '--prompt', 'Image-1: <image>\nImage-2: <image>\nWhat differs?', '--max-num', '6', '--out', inFile]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/png_rgb_800x600.png: 800x600 -> 3x2 grid, 7 tiles/);
    const inputs = await readInputs(inFile);
    const expected = await Promise.all(['png_rgb_800x600', 'jpeg420_q90_800x600'].map((n) => fixturePixels(path.join(CASES, `${n}__s56_max6_thumb.safetensors`))));
    const tiles = expected.reduce((n, e) => n + e.shape[0]!, 0);
    expect(inputs.pixel_values!.shape).toEqual([tiles, 3, 56, 56]);
    expect(inputs.pixel_values!.data).toEqual(Float32Array.from([...expected[0]!.data, ...expected[1]!.data] as number[]));
    expect([...inputs.image_flags!.data]).toEqual(Array(tiles).fill(1n));
    expect([...inputs.input_ids!.data].filter((id) => id === 153n).length).toBe(tiles * 4);
    const artifact = path.join(root, 'artifact-img');
    expect((await vlmcInProcess(['build', '--weights', path.join(FIXTURES, 'qwen2-tiny', 'unified'), '--out', artifact, '--quiet'])).status).toBe(0);
    expect(await runAgainstReference('qwen2-tiny', artifact, inFile, 153)).toBeLessThan(1e-4);
  }, 180_000);

  it('internlm2-tiny: internlm2-chat template, --no-thumbnail, a history; logits = reference', async () => {
    const dir = requestFolder(root, 'internlm2-tiny');
    const history = path.join(root, 'history.json');
    writeFileSync(history, JSON.stringify([['<image>\nWhat is this?', 'Stripes.'], ['Colours?', '']]));
    const inFile = path.join(root, 'internlm2-in.safetensors');
    const r = await vlmcInProcess(['inputs', '--checkpoint', dir, '--image', path.join(IMAGES, 'png_rgb_333x1000.png'), '--prompt', 'Why?', '--history', history, '--no-thumbnail', '--out', inFile]);
    expect(r.status, r.stderr).toBe(0);
    const inputs = await readInputs(inFile);
    const tiles = inputs.pixel_values!.shape[0]!;
    // max_dynamic_patch 12: the exact-aspect tie goes to 2x6 (the image is large enough), no thumbnail.
    expect(r.stdout).toMatch(/png_rgb_333x1000.png: 333x1000 -> 2x6 grid, 12 tiles/);
    expect(tiles).toBe(12);
    expect([...inputs.input_ids!.data].filter((id) => id === 172n).length).toBe(tiles * 4);
    const artifact = path.join(root, 'artifact-internlm2');
    expect((await vlmcInProcess(['build', '--weights', path.join(FIXTURES, 'internlm2-tiny', 'unified'), '--out', artifact, '--quiet'])).status).toBe(0);
    expect(await runAgainstReference('internlm2-tiny', artifact, inFile, 172)).toBeLessThan(1e-4);
  }, 180_000);
});

describe('an artifact folder as --checkpoint', () => {
  it('reads the config.json and tokenizer it carries, and cross-checks what its manifest records', async () => {
    const artifact = path.join(root, 'artifact-carrying');
    expect((await vlmcInProcess(['build', '--weights', path.join(FIXTURES, 'qwen2-tiny', 'unified'), '--out', artifact, '--quiet'])).status).toBe(0);
    await expect(buildInputs({ checkpoint: artifact, prompts: ['x'] })).rejects.toThrow(/artifact-carrying: no config.json \(this artifact carries neither config.json nor pipeline.json/);
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(qwen, f), path.join(artifact, f));
    const r = await buildInputs({ checkpoint: artifact, prompts: ['x'] });
    expect(r.config.artifact).toEqual({ tokensPerTile: 4, imgContextTokenId: 153 });
    const manifestFile = path.join(artifact, 'manifest.json');
    const manifest = JSON.parse(readFileSync(manifestFile, 'utf8'));
    manifest.metadata['vlmc.img_context_token_id'] = '152';
    writeFileSync(manifestFile, JSON.stringify(manifest));
    await expect(buildInputs({ checkpoint: artifact, prompts: ['x'] })).rejects.toThrow(/splices <IMG_CONTEXT> id 152 but the tokenizer has it as 153/);
  }, 60_000);
});

describe('an InternVL2.5-shaped request with the real tokenizer', () => {
  it('image + question give exactly the official chat() ids (fixtures/prompts) for a 7-tile image', async () => {
    const dir = path.join(root, 'internvl2_5-like');
    mkdirSync(dir);
    const tokDir = path.join(FIXTURES, 'prompts', 'tokenizers', 'internvl2_5-qwen2_5');
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(tokDir, f), path.join(dir, f));
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
      template: 'internvl2_5', force_image_size: 448, downsample_ratio: 0.5, dynamic_image_size: true, max_dynamic_patch: 6, min_dynamic_patch: 1, use_thumbnail: true,
      vision_config: { image_size: 448, patch_size: 14 }, llm_config: { vocab_size: 151674 },
    }));
    const cases = JSON.parse(readFileSync(path.join(FIXTURES, 'prompts', 'cases.json'), 'utf8'));
    const c = cases.prompt_cases.find((x: { id: string }) => x.id === 'internvl2_5/internvl2_5-qwen2_5/image_auto_prefix/nit256');
    expect(c.inputs.pixel_values_tiles).toBe(7);
    const r = await buildInputs({ checkpoint: dir, prompts: [c.inputs.question], images: [path.join(FIXTURES, 'preprocess', 'images', 'png_rgb_800x600.png')] });
    expect(r.images.map((i) => [i.grid, i.tiles])).toEqual([[[3, 2], 7]]);
    expect(r.queries).toEqual([c.expected.query]);
    expect([...r.inputs.input_ids.data].map(Number)).toEqual(c.expected.input_ids);
    expect(r.eosTokenId).toBe(c.expected.eos_token_id);
    expect(r.inputs.pixel_values.shape).toEqual([7, 3, 448, 448]);
  }, 60_000);
});

describe('a split artifact (pipeline.json, no config.json) as --checkpoint', () => {
  it('takes template, image size, tokens per tile and tiling from pipeline.json', async () => {
    const dir = path.join(root, 'split-like');
    mkdirSync(dir);
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(qwen, f), path.join(dir, f));
    const pipeline = {
      format: 'vlmc-pipeline/1',
      image: { size: 56, tokens_per_tile: 4, img_context_token_id: 153, downsample_ratio: 0.5, max_dynamic_patch: 12, min_dynamic_patch: 1, use_thumbnail: true },
      llm: { vocab_size: 160 },
      template: 'Hermes-2',
      eos_token_id: [99],
      pad_token_id: 97,
      tokenizer: ['tokenizer.json', 'tokenizer_config.json'],
    };
    writeFileSync(path.join(dir, 'pipeline.json'), JSON.stringify(pipeline));
    const fromSplit = await buildInputs({ checkpoint: dir, prompts: ['What is it?'], images: [imageA], preprocess: fakePreprocess({ 'a.png': 2 }) });
    const fromConfig = await buildInputs({ checkpoint: qwen, prompts: ['What is it?'], images: [imageA], preprocess: fakePreprocess({ 'a.png': 2 }) });
    expect(fromSplit.inputs).toEqual(fromConfig.inputs);
    expect(fromSplit.config.maxDynamicPatch).toBe(12);
    writeFileSync(path.join(dir, 'pipeline.json'), JSON.stringify({ ...pipeline, image: { ...pipeline.image, img_context_token_id: 150 } }));
    await expect(buildInputs({ checkpoint: dir, prompts: ['x'] })).rejects.toThrow(/splices <IMG_CONTEXT> id 150 but the tokenizer has it as 153/);
    writeFileSync(path.join(dir, 'pipeline.json'), JSON.stringify({ ...pipeline, template: undefined }));
    await expect(buildInputs({ checkpoint: dir, prompts: ['x'] })).rejects.toThrow(/pipeline.json: no 'template'.*pass --template/);
  });
});

describe('tokens added at load time', () => {
  it('image tokens named only in tokenizer_config.json / added_tokens.json (as the fixture checkpoints do) are added', async () => {
    const dir = path.join(root, 'load-time-tokens');
    mkdirSync(dir);
    copyFileSync(path.join(qwen, 'config.json'), path.join(dir, 'config.json'));
    const c = JSON.parse(readFileSync(path.join(FIXTURES, 'qwen2-tiny', 'case.json'), 'utf8'));
    writeTinyTokenizer(dir, c, {}, { imageTokens: false });
    const unified = path.join(FIXTURES, 'qwen2-tiny', 'unified');
    const fixtureConfig = JSON.parse(readFileSync(path.join(unified, 'tokenizer_config.json'), 'utf8'));
    const ours = JSON.parse(readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
    writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ ...ours, added_tokens_decoder: fixtureConfig.added_tokens_decoder }));
    const tok = loadTokenizer(dir);
    expect(tok.imageTokenIds()).toEqual({ start: 151, end: 152, context: 153 });
    expect(tok.encode('<img><IMG_CONTEXT></img>')).toEqual([151, 153, 152]);
    expect(tok.decode([151, 3, 153], { skipSpecialTokens: true })).toBe('"');
    // added_tokens.json alone (token -> id) works too; those tokens are not special.
    writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(ours));
    copyFileSync(path.join(unified, 'added_tokens.json'), path.join(dir, 'added_tokens.json'));
    const tok2 = loadTokenizer(dir);
    expect(tok2.imageTokenIds()).toEqual({ start: 151, end: 152, context: 153 });
    expect(tok2.encode('a<IMG_CONTEXT>')).toEqual([66, 153]);
    const r = await buildInputs({ checkpoint: dir, prompts: ['x'], images: [imageA], preprocess: fakePreprocess({}) });
    expect([...r.inputs.input_ids.data].filter((id) => id === 153n).length).toBe(4);
  });
});

describe('issue 16 defect 7: the image formats the docs name (PNG, JPEG, WebP, GIF)', () => {
  /** A two-colour 80 x 56 picture, lossless in every format (a GIF palette holds both colours exactly). */
  async function picture(file: string, format: 'png' | 'webp' | 'gif'): Promise<string> {
    const sharp = (await import('sharp')).default;
    const raw = Buffer.alloc(80 * 56 * 3);
    for (let i = 0; i < 80 * 56; i++) raw.set(i % 80 < 30 ? [255, 0, 0] : [0, 0, 255], i * 3);
    const img = sharp(raw, { raw: { width: 80, height: 56, channels: 3 } });
    await (format === 'png' ? img.png() : format === 'webp' ? img.webp({ lossless: true }) : img.gif()).toFile(file);
    return file;
  }

  it.each(['webp', 'gif'] as const)('%s gives the pixel_values of the same picture as PNG', async (format) => {
    const png = await picture(path.join(root, 'two.png'), 'png');
    const other = await picture(path.join(root, `two.${format}`), format);
    const a = await buildInputs({ checkpoint: qwen, prompts: ['What is it?'], images: [png] });
    const b = await buildInputs({ checkpoint: qwen, prompts: ['What is it?'], images: [other] });
    expect(b.inputs.pixel_values.shape).toEqual(a.inputs.pixel_values.shape);
    expect(b.inputs.pixel_values.data).toEqual(a.inputs.pixel_values.data);
    expect(new Set(a.inputs.pixel_values.data).size).toBeGreaterThan(2); // two colours, three channels, normalised
  });
});
