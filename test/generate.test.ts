/**
 * The split artifact on every fixture case, through the CLI: `vlmc run` gives the reference logits,
 * `vlmc generate` reproduces generation.safetensors (greedy tokens exactly, per-step logits 1e-4;
 * rows of different length, right padding, eos ignored), and the artifact holds what pipeline.json
 * promises. Bad input exits 2 with one message and writes nothing.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { FIXTURES, fixtureCases, maxAbsError, tempDir, removeDir, vlmc, vlmcInProcess, hasOnnxChecker, onnxCheck } from './helpers.ts';
import { SafetensorsFile } from '../src/checkpoint/safetensors.ts';

const TOL = 1e-4;

async function readTensor(file: string, key: string): Promise<{ shape: number[]; f32?: Float32Array; i64?: BigInt64Array }> {
  const st = await SafetensorsFile.open(file);
  try {
    const e = st.entry(key);
    if (e.dtype === 'I64') {
      const bytes = await st.readAll(e);
      return { shape: [...e.shape], i64: new BigInt64Array(bytes.slice().buffer) };
    }
    return { shape: [...e.shape], f32: await st.readAsFloat32(e) };
  } finally {
    await st.close();
  }
}

describe.each(fixtureCases())('split artifact, fixture %s', (name) => {
  const fx = path.join(FIXTURES, name);
  const spec = JSON.parse(readFileSync(path.join(fx, 'case.json'), 'utf8'));
  let work: string;
  let artifact: string;

  beforeAll(async () => {
    work = tempDir();
    artifact = path.join(work, 'split');
    const r = await vlmcInProcess(['build', '--weights', path.join(fx, 'unified'), '--out', artifact, '--split', '--quiet']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
  afterAll(() => removeDir(work));

  it('vlmc run gives the reference logits and vit_embeds (1e-4)', async () => {
    const out = path.join(work, 'run.safetensors');
    const r = await vlmcInProcess(['run', artifact, '--inputs', path.join(fx, 'inputs.safetensors'), '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    for (const key of ['logits', 'vit_embeds']) {
      const got = await readTensor(out, key);
      const want = await readTensor(path.join(fx, 'expected.safetensors'), key);
      expect(got.shape).toEqual(want.shape);
      expect(maxAbsError(got.f32!, want.f32!), key).toBeLessThanOrEqual(TOL);
    }
  });

  it('vlmc generate reproduces generation.safetensors (tokens exact, logits 1e-4)', async () => {
    const out = path.join(work, 'gen.safetensors');
    const r = await vlmcInProcess(['generate', artifact, '--inputs', path.join(fx, 'gen_inputs.safetensors'), '--ignore-eos', '--max-new-tokens', '6', '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const want = path.join(fx, 'generation.safetensors');
    const tokens = await readTensor(out, 'tokens');
    const wantTokens = await readTensor(want, 'tokens');
    expect(tokens.shape).toEqual([spec.batch_size, 6]);
    expect([...tokens.i64!]).toEqual([...wantTokens.i64!]);
    const logits = await readTensor(out, 'logits');
    const wantLogits = await readTensor(want, 'logits');
    expect(logits.shape).toEqual(wantLogits.shape);
    expect(maxAbsError(logits.f32!, wantLogits.f32!)).toBeLessThanOrEqual(TOL);
    // Without a tokenizer the ids are streamed, one step at a time.
    expect(r.stdout.trim().split(/\s+/)).toHaveLength(6);
  });

  it('--json prints the tokens of every row', async () => {
    const r = await vlmcInProcess(['generate', artifact, '--inputs', path.join(fx, 'gen_inputs.safetensors'), '--ignore-eos', '--max-new-tokens', '3', '--json']);
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.steps).toBe(3);
    expect(j.tokens).toHaveLength(spec.batch_size);
    expect(j.tokens[0]).toHaveLength(3);
  });

  it('holds three graphs over one weights file, pipeline.json and the tokenizer files', () => {
    const files = readdirSync(artifact).sort();
    expect(files).toEqual(expect.arrayContaining(['decoder.onnx', 'embedding.onnx', 'vision.onnx', 'weights.onnx.data', 'pipeline.json', 'manifest.json']));
    for (const f of readdirSync(path.join(fx, 'unified'))) {
      if (/^(tokenizer|added_tokens|special_tokens_map)/.test(f)) expect(files).toContain(f);
    }
    const pipeline = JSON.parse(readFileSync(path.join(artifact, 'pipeline.json'), 'utf8'));
    expect(pipeline.format).toBe('vlmc-pipeline/1');
    expect(pipeline.image.tokens_per_tile).toBe(spec.num_image_token);
    expect(pipeline.image.img_context_token_id).toBe(spec.img_context_token_id);
    expect(pipeline.image.size).toBe(spec.image_size);
    expect(pipeline.llm.num_layers).toBe(spec.llm.layers);
    expect(pipeline.llm.num_kv_heads).toBe(spec.llm.kv_heads);
    expect(pipeline.llm.head_dim).toBe(spec.llm.head_dim);
    expect(pipeline.graphs.decoder.inputs.map((i: { name: string }) => i.name)).toEqual([
      'inputs_embeds', 'attention_mask', 'position_ids',
      ...Array.from({ length: spec.llm.layers }, (_, i) => [`past_key_values.${i}.key`, `past_key_values.${i}.value`]).flat(),
      'full_logits',
    ]);
    expect(pipeline.graphs.decoder.outputs.map((o: { name: string }) => o.name)).toEqual([
      'logits', ...Array.from({ length: spec.llm.layers }, (_, i) => [`present.${i}.key`, `present.${i}.value`]).flat(),
    ]);
    // Every parameter stored once: the data file is no larger than the single-graph artifact's would be.
    const manifest = JSON.parse(readFileSync(path.join(artifact, 'manifest.json'), 'utf8'));
    const end = Math.max(...manifest.parameters.map((p: { offset: number; length: number }) => p.offset + p.length));
    expect(statSync(path.join(artifact, 'weights.onnx.data')).size).toBe(end);
    expect(manifest.parameters.length).toBe(spec.num_params.total);
  });

  it('is byte-identical when built twice', async () => {
    const again = path.join(work, 'again');
    expect((await vlmcInProcess(['build', '--weights', path.join(fx, 'unified'), '--out', again, '--split', '--quiet'])).status).toBe(0);
    for (const f of readdirSync(artifact)) expect(readFileSync(path.join(again, f)).equals(readFileSync(path.join(artifact, f))), f).toBe(true);
  });

  it.skipIf(!hasOnnxChecker())('each graph passes onnx.checker.check_model(full_check=True)', () => {
    for (const g of ['vision.onnx', 'embedding.onnx', 'decoder.onnx']) {
      const r = onnxCheck(path.join(artifact, g));
      expect(r.message, g).toBe('');
      expect(r.ok).toBe(true);
    }
  });

  it('bad input: exit 2, one message, nothing written', async () => {
    const out = path.join(work, 'never.safetensors');
    const cases: [string[], RegExp][] = [
      [['generate', path.join(work, 'nowhere'), '--inputs', path.join(fx, 'gen_inputs.safetensors')], /not a split artifact/],
      [['generate', artifact, '--inputs', path.join(fx, 'gen_inputs.safetensors'), '--max-new-tokens', '0', '--out', out], /--max-new-tokens must be a positive integer/],
      [['generate', artifact, '--inputs', path.join(fx, 'expected.safetensors'), '--out', out], /no tensor 'pixel_values'/],
      [['generate', artifact, '--out', out], /nothing to generate from/],
    ];
    for (const [args, message] of cases) {
      const r = await vlmcInProcess(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(existsSync(out)).toBe(false);
  });
});

/** A character-level tokenizer.json whose ids fit qwen2-tiny's vocabulary (as test/inputs.test.ts makes one). */
function writeTinyTokenizer(dir: string, c: { img_context_token_id: number; img_start_token_id: number; img_end_token_id: number }): void {
  const vocab: Record<string, number> = { '<unk>': 0 };
  for (let ch = 0x20; ch <= 0x7e; ch++) vocab[String.fromCharCode(ch)] = ch - 0x1f;
  vocab['\n'] = 96;
  const added = [['<|endoftext|>', 97], ['<|im_start|>', 98], ['<|im_end|>', 99], ['<img>', c.img_start_token_id], ['</img>', c.img_end_token_id], ['<IMG_CONTEXT>', c.img_context_token_id]] as const;
  for (const [t, id] of added) vocab[t] = id;
  const tokenizer = {
    version: '1.0', truncation: null, padding: null, normalizer: null, pre_tokenizer: null, post_processor: null,
    added_tokens: added.map(([content, id]) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    decoder: { type: 'Fuse' },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: [] },
  };
  writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'PreTrainedTokenizerFast', eos_token: '<|im_end|>', pad_token: '<|endoftext|>', add_bos_token: false, clean_up_tokenization_spaces: false }));
}

describe('image + question -> streamed text (qwen2-tiny with a tiny tokenizer)', () => {
  const fx = path.join(FIXTURES, 'qwen2-tiny');
  let work: string;
  let artifact: string;
  let image: string;
  beforeAll(async () => {
    work = tempDir();
    const ckpt = path.join(work, 'ckpt');
    mkdirSync(ckpt);
    for (const f of readdirSync(path.join(fx, 'unified'))) copyFileSync(path.join(fx, 'unified', f), path.join(ckpt, f));
    writeTinyTokenizer(ckpt, JSON.parse(readFileSync(path.join(fx, 'case.json'), 'utf8')));
    artifact = path.join(work, 'split');
    expect((await vlmcInProcess(['build', '--weights', ckpt, '--out', artifact, '--split', '--quiet'])).status).toBe(0);
    image = path.join(work, 'cat.png');
    const sharp = (await import('sharp')).default;
    await sharp({ create: { width: 80, height: 56, channels: 3, background: { r: 200, g: 120, b: 40 } } }).png().toFile(image);
  }, 60_000);
  afterAll(() => removeDir(work));

  it.skipIf(!existsSync(fx))('streams the text of the generated tokens, stopping at the template eos', async () => {
    const out = path.join(work, 'gen.safetensors');
    // A process of its own: its stderr is the whole process's, onnxruntime's native logging included.
    const r = vlmc(['generate', artifact, '--image', image, '--prompt', 'What is in the picture?', '--max-new-tokens', '12', '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const pipeline = JSON.parse(readFileSync(path.join(artifact, 'pipeline.json'), 'utf8'));
    expect(pipeline.template).toBe('Hermes-2');
    expect(pipeline.eos_token_id).toContain(99); // <|im_end|>, the template's end of turn
    expect(pipeline.tokenizer).toEqual(['tokenizer.json', 'tokenizer_config.json', 'added_tokens.json']);
    const { loadTokenizer } = await import('../src/tokenizer/index.ts');
    const tokens = await readTensor(out, 'tokens');
    const ids = [...tokens.i64!].map(Number);
    expect(r.stdout).toBe(`${loadTokenizer(artifact).decode(ids, { skipSpecialTokens: true })}\n`);
    // The same request through `vlmc inputs` + --inputs gives the same tokens.
    const inputs = path.join(work, 'in.safetensors');
    expect((await vlmcInProcess(['inputs', '--checkpoint', artifact, '--image', image, '--prompt', 'What is in the picture?', '--out', inputs])).status).toBe(0);
    const again = path.join(work, 'gen2.safetensors');
    expect((await vlmcInProcess(['generate', artifact, '--inputs', inputs, '--max-new-tokens', '12', '--ignore-eos', '--out', again])).status).toBe(0);
    const t2 = [...(await readTensor(again, 'tokens')).i64!].map(Number);
    expect(t2.slice(0, ids.length)).toEqual(ids);
  });
});

describe('entry points', () => {
  it('trace the same modules: each graph keeps just the parameters it reads', async () => {
    const { internvlFromConfig } = await import('../src/models/from-config.ts');
    const { compile, entryPointNames } = await import('../src/compile.ts');
    const cfgFile = path.join(FIXTURES, 'internlm2-tiny', 'unified', 'config.json');
    const model = internvlFromConfig(JSON.parse(readFileSync(cfgFile, 'utf8')), cfgFile, {});
    model.options.imgContextTokenId = 5;
    expect(entryPointNames(model)).toEqual(['model', 'vision', 'embedding', 'decoder']);
    const names = (entry: string) => compile(model, { entry }).params.map((p) => p.name);
    const all = names('model');
    const vision = names('vision');
    const embedding = names('embedding');
    const decoder = names('decoder');
    expect(vision.every((n) => n.startsWith('vision_model.') || n.startsWith('mlp1.'))).toBe(true);
    expect(vision.some((n) => n.startsWith('mlp1.'))).toBe(true);
    expect(embedding).toEqual(['language_model.model.tok_embeddings.weight']);
    // InternLM2 here has a separate `output` head: the decoder does not read the embedding table.
    expect(decoder.every((n) => n.startsWith('language_model.') && n !== 'language_model.model.tok_embeddings.weight')).toBe(true);
    expect(new Set([...vision, ...embedding, ...decoder]).size).toBe(vision.length + embedding.length + decoder.length);
    expect([...vision, ...embedding, ...decoder].every((n) => all.includes(n))).toBe(true);
    expect(() => compile(model, { entry: 'nope' })).toThrow(/no entry point 'nope'; it has: model, vision, embedding, decoder/);
  });
});

describe('a batch where one row stops early', () => {
  const fx = path.join(FIXTURES, 'internlm2-tiny');
  let work: string;
  beforeAll(() => {
    work = tempDir();
  });
  afterAll(() => removeDir(work));

  it.skipIf(!existsSync(fx))('the stopped row repeats its pad id, the other row is unaffected', async () => {
    const artifact = path.join(work, 'split');
    expect((await vlmcInProcess(['build', '--weights', path.join(fx, 'unified'), '--out', artifact, '--split', '--quiet'])).status).toBe(0);
    const { generateFromArtifact } = await import('../src/generate/generate.ts');
    const { readInputs } = await import('../src/runtime/tensor-files.ts');
    const want = await readTensor(path.join(fx, 'generation.safetensors'), 'tokens');
    const [batch, n] = want.shape as [number, number];
    expect(batch).toBe(2);
    const expected = [0, 1].map((b) => [...want.i64!.subarray(b * n, (b + 1) * n)].map(Number));
    // Row 0's second token is its eos; row 1 never produces it.
    const eos = expected[0]![1]!;
    expect(expected[1]).not.toContain(eos);
    const inputs = await readInputs(path.join(fx, 'gen_inputs.safetensors'));
    const pipeline = JSON.parse(readFileSync(path.join(artifact, 'pipeline.json'), 'utf8'));
    const seen: boolean[][] = [];
    const g = await generateFromArtifact(artifact, inputs as never, { maxNewTokens: n, eosTokenIds: [eos], onStep: (s) => seen.push(s.done) });
    expect(g.tokens[0]).toEqual([expected[0]![0], eos, ...new Array(n - 2).fill(pipeline.pad_token_id)]);
    expect(g.tokens[1]).toEqual(expected[1]);
    expect(seen[1]).toEqual([true, false]);
    const wantLogits = await readTensor(path.join(fx, 'generation.safetensors'), 'logits');
    const vocab = g.vocab;
    expect(maxAbsError(g.logits.subarray(n * vocab), wantLogits.f32!.subarray(n * vocab))).toBeLessThanOrEqual(TOL);
  });
});
