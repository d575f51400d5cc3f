/**
 * The split artifact on every fixture case, through the CLI: `vlmc run` gives the reference logits,
 * `vlmc generate` reproduces generation.safetensors (greedy tokens exactly, per-step logits 1e-4;
 * rows of different length, right padding, eos ignored), and the artifact holds what pipeline.json
 * promises. Bad input exits 2 with one message and writes nothing.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { FIXTURES, fixtureCases, maxAbsError, tempDir, removeDir, vlmc, vlmcInProcess, hasOnnxChecker, onnxCheck, NO_TOKENIZER, expectOnlyWarnings, demoCheckpoint } from './helpers.ts';
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
    expectOnlyWarnings(r.stderr, NO_TOKENIZER);
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
      [['generate', artifact, '--inputs', path.join(fx, 'expected.safetensors'), '--out', out], /missing input 'pixel_values'/],
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

/** Tensors of an inputs file, edited, written to a new file. */
async function editedInputs(from: string, to: string, edit: (t: Record<string, import('../src/runtime/session.ts').HostTensor>) => void): Promise<string> {
  const { readInputs } = await import('../src/runtime/tensor-files.ts');
  const { writeSafetensors } = await import('../src/checkpoint/safetensors-write.ts');
  const t = await readInputs(from);
  edit(t);
  await writeSafetensors(to, Object.entries(t).map(([name, x]) => ({ name, dtype: x.dtype === 'int64' ? 'I64' : 'F32', shape: x.shape, data: new Uint8Array(x.data.buffer, x.data.byteOffset, x.data.byteLength) })));
  return to;
}

const tokensOf = async (file: string) => {
  const t = await readTensor(file, 'tokens');
  const [rows, n] = t.shape as [number, number];
  return Array.from({ length: rows }, (_, b) => [...t.i64!.subarray(b * n, (b + 1) * n)].map(Number));
};

/** exit 2 with one line on stderr matching every pattern. */
async function expectRefused(args: string[], ...patterns: (RegExp | string)[]): Promise<void> {
  const r = await vlmcInProcess(args);
  expect({ args: args.join(' '), status: r.status }).toEqual({ args: args.join(' '), status: 2 });
  expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
  for (const p of patterns) expect(r.stderr).toMatch(p);
}

describe('issue 16: generate and split artifacts keep run\'s contracts (the demo checkpoint, with its tokenizer)', () => {
  let work: string;
  let ckpt: string;
  let split: string;
  let image: string;
  let request: string;
  beforeAll(async () => {
    work = tempDir('vlmc-i16-gen-');
    const { build } = await import('../src/build.ts');
    ckpt = await demoCheckpoint(path.join(work, 'ckpt'));
    split = path.join(work, 'split');
    await build({ weights: ckpt, out: split, split: true });
    image = path.join(work, 'cat.png');
    const sharp = (await import('sharp')).default;
    await sharp({ create: { width: 80, height: 56, channels: 3, background: { r: 200, g: 120, b: 40 } } }).png().toFile(image);
    request = path.join(work, 'request.safetensors');
    expect((await vlmcInProcess(['inputs', '--checkpoint', split, '--image', image, '--prompt', 'What is it?', '--out', request])).status).toBe(0);
  }, 120_000);
  afterAll(() => removeDir(work));

  it('defect 1: a bf16 (--target gpu) split artifact is exit 2 naming the missing kernel, for generate and run', async () => {
    const { build } = await import('../src/build.ts');
    const bf16 = path.join(work, 'bf16');
    await build({ weights: ckpt, out: bf16, split: true, target: 'gpu', dtype: 'bf16' });
    await expectRefused(['generate', bf16, '--inputs', request], `${bf16}: execution provider cpu has no kernel for Expand`, 'computing in bfloat16');
    await expectRefused(['run', bf16, '--inputs', request, '--out', path.join(work, 'bf16.safetensors')], 'has no kernel for Expand');
  });

  it('defect 2: a damaged split artifact (truncated weights or graph, a graph deleted) is exit 2 naming the file', async () => {
    const damages: [string, (dir: string) => void, string][] = [
      ['weights', (d) => truncateSync(path.join(d, 'weights.onnx.data'), 1000), 'weights.onnx.data'],
      ['decoder', (d) => truncateSync(path.join(d, 'decoder.onnx'), 3000), 'decoder.onnx'],
      ['vision', (d) => rmSync(path.join(d, 'vision.onnx')), 'vision.onnx'],
    ];
    for (const [label, damage, file] of damages) {
      const copy = path.join(work, `damaged-${label}`);
      cpSync(split, copy, { recursive: true });
      damage(copy);
      await expectRefused(['generate', copy, '--inputs', request], path.join(copy, file), /damaged|not a readable ONNX model/);
      await expectRefused(['run', copy, '--inputs', request, '--out', path.join(work, `${label}.safetensors`)], path.join(copy, file));
    }
  });

  it('defect 3: generate --inputs keeps run\'s input checks: ids outside the vocabulary, image_flags against <IMG_CONTEXT>, NaN pixels', async () => {
    const cases: [string, (t: Record<string, import('../src/runtime/session.ts').HostTensor>) => void, RegExp][] = [
      ['id-160', (t) => ((t.input_ids!.data as BigInt64Array)[0] = 160n), /input 'input_ids' holds 160 .*from 0 to 159/],
      ['flags', (t) => ((t.image_flags!.data as BigInt64Array)[0] = 0n), /<IMG_CONTEXT> tokens \(id 153\) but image_flags flags 5 tile/],
      ['nan', (t) => ((t.pixel_values!.data as Float32Array)[7] = NaN), /input 'pixel_values' holds NaN at flat position 7/],
    ];
    for (const [label, edit, message] of cases) {
      const file = await editedInputs(request, path.join(work, `${label}.safetensors`), edit);
      await expectRefused(['generate', split, '--inputs', file, '--max-new-tokens', '2'], `${file}: `, message);
    }
  });

  it('defect 4: --prompt is repeatable as a batch (vlmc inputs\' pairing), the same tokens as generate --inputs on vlmc inputs\' tensors', async () => {
    const direct = path.join(work, 'batch-direct.safetensors');
    const r = await vlmcInProcess(['generate', split, '--prompt', 'Hi.', '--prompt', 'What is it?', '--max-new-tokens', '4', '--ignore-eos', '--out', direct]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const built = path.join(work, 'batch-in.safetensors');
    expect((await vlmcInProcess(['inputs', '--checkpoint', split, '--prompt', 'Hi.', '--prompt', 'What is it?', '--out', built])).status).toBe(0);
    const viaInputs = path.join(work, 'batch-via.safetensors');
    expect((await vlmcInProcess(['generate', split, '--inputs', built, '--max-new-tokens', '4', '--ignore-eos', '--out', viaInputs])).status).toBe(0);
    const tokens = await tokensOf(direct);
    expect(tokens).toHaveLength(2);
    expect(tokens).toEqual(await tokensOf(viaInputs));
    // Each row is what that prompt gives alone.
    const alone = path.join(work, 'alone.safetensors');
    expect((await vlmcInProcess(['generate', split, '--prompt', 'What is it?', '--max-new-tokens', '4', '--ignore-eos', '--out', alone])).status).toBe(0);
    expect((await tokensOf(alone))[0]).toEqual(tokens[1]);
    // Several prompts take one image each or none.
    await expectRefused(['generate', split, '--prompt', 'a', '--prompt', 'b', '--image', image], /with 2 prompts give one --image per prompt/);
  });

  it('defect 5: generation stops at the model\'s context (max_position_embeddings) with a notice; a prompt that fills it is refused', async () => {
    const ids = await readTensor(request, 'input_ids');
    const seq = ids.shape[1]!;
    const small = path.join(work, 'ctx-ckpt');
    cpSync(ckpt, small, { recursive: true });
    const cfgFile = path.join(small, 'config.json');
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
    cfg.llm_config.max_position_embeddings = seq + 3;
    writeFileSync(cfgFile, JSON.stringify(cfg));
    const { build } = await import('../src/build.ts');
    const art = path.join(work, 'ctx-split');
    await build({ weights: small, out: art, split: true });
    const r = await vlmcInProcess(['generate', art, '--inputs', request, '--max-new-tokens', '99999999999', '--ignore-eos', '--json']);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe(`vlmc: --max-new-tokens 99999999999: the model's context holds ${seq + 3} positions and the prompt takes ${seq}, so generation stops after at most 3 tokens\n`);
    expect(JSON.parse(r.stdout).tokens[0]).toHaveLength(3);
    cfg.llm_config.max_position_embeddings = seq;
    writeFileSync(cfgFile, JSON.stringify(cfg));
    const full = path.join(work, 'ctx-full');
    await build({ weights: small, out: full, split: true });
    await expectRefused(['generate', full, '--inputs', request], `${request}: the prompt holds ${seq} tokens, which fills the model's context (max_position_embeddings ${seq})`);
  });

  it('defect 7: --top-k / --seed without --temperature are refused (greedy decoding would ignore them)', async () => {
    await expectRefused(['generate', split, '--inputs', request, '--top-k', '5'], '--top-k applies to sampling; give --temperature > 0');
    await expectRefused(['generate', split, '--inputs', request, '--seed', '3'], '--seed applies to sampling');
    const sampled = await vlmcInProcess(['generate', split, '--inputs', request, '--temperature', '0.7', '--top-k', '5', '--seed', '3', '--max-new-tokens', '3', '--ignore-eos', '--json']);
    expect(sampled.status).toBe(0);
    const again = await vlmcInProcess(['generate', split, '--inputs', request, '--temperature', '0.7', '--top-k', '5', '--seed', '3', '--max-new-tokens', '3', '--ignore-eos', '--json']);
    expect(JSON.parse(again.stdout).tokens).toEqual(JSON.parse(sampled.stdout).tokens);
  });

  it('defect 8: messages name the flag or file: --temperature abc, --image <folder>, a bad attention_mask', async () => {
    await expectRefused(['generate', split, '--inputs', request, '--temperature', 'abc'], "--temperature must be a number >= 0 (got 'abc')");
    await expectRefused(['generate', split, '--image', work, '--prompt', 'hi'], `--image ${work}: is a folder`);
    const mask = await editedInputs(request, path.join(work, 'mask.safetensors'), (t) => {
      const seq = t.input_ids!.shape[1]!;
      const m = new BigInt64Array(seq).fill(1n);
      m[0] = 0n;
      t.attention_mask = { dtype: 'int64', shape: [1, seq], data: m };
    });
    await expectRefused(['generate', split, '--inputs', mask], `${mask}: input 'attention_mask' row 0`, 'ones then zeros');
  });

  it('defect 10: a text-only request works on the split artifact, also from a Hugging Face-native checkpoint (zero tiles)', async () => {
    const text = path.join(work, 'text.safetensors');
    expect((await vlmcInProcess(['generate', split, '--prompt', 'Say hello.', '--max-new-tokens', '5', '--ignore-eos', '--out', text])).status).toBe(0);
    const want = await tokensOf(text);
    expect(want[0]).toHaveLength(5);
    // The same weights in transformers' layout: no image_flags, so the request's blank tile is left out (zero tiles).
    const hf = path.join(work, 'hf');
    expect((await vlmcInProcess(['export', ckpt, '--layout', 'hf', '--out', hf])).status).toBe(0);
    const hfSplit = path.join(work, 'hf-split');
    const b = await vlmcInProcess(['build', '--weights', hf, '--split', '--out', hfSplit]);
    expectOnlyWarnings(b.stderr, /names no conversation template/);
    const hfText = path.join(work, 'hf-text.safetensors');
    const g = await vlmcInProcess(['generate', hfSplit, '--prompt', 'Say hello.', '--template', 'Hermes-2', '--max-new-tokens', '5', '--ignore-eos', '--out', hfText]);
    expect(g.stderr).toBe('');
    expect(g.status).toBe(0);
    expect(await tokensOf(hfText)).toEqual(want);
    // vlmc run on both single-graph artifacts: the same logits for the text-only request.
    const inputs = path.join(work, 'text-in.safetensors');
    expect((await vlmcInProcess(['inputs', '--checkpoint', ckpt, '--prompt', 'Say hello.', '--out', inputs])).status).toBe(0);
    const { build } = await import('../src/build.ts');
    const { runArtifact } = await import('../src/run.ts');
    await build({ weights: ckpt, out: path.join(work, 'single') });
    await build({ weights: hf, out: path.join(work, 'hf-single') });
    const a = await runArtifact(path.join(work, 'single'), inputs, path.join(work, 'single.safetensors'));
    const h = await runArtifact(path.join(work, 'hf-single'), inputs, path.join(work, 'hf-single.safetensors'));
    expect(h.vit_embeds!.shape[0]).toBe(0);
    expect(maxAbsError(h.logits!.data as Float32Array, a.logits!.data as Float32Array)).toBeLessThan(1e-5);
  });

  it('generate builds requests with vlmc inputs\' options (--template, --max-num, --no-thumbnail, --system-message, --history), refused beside --inputs', async () => {
    const opts = ['--template', 'internvl2_5', '--max-num', '2', '--no-thumbnail', '--system-message', 'Be brief.'];
    const direct = path.join(work, 'opts-direct.safetensors');
    expect((await vlmcInProcess(['generate', split, '--image', image, '--prompt', 'What is it?', ...opts, '--max-new-tokens', '3', '--ignore-eos', '--out', direct])).status).toBe(0);
    const built = path.join(work, 'opts-in.safetensors');
    const i = await vlmcInProcess(['inputs', '--checkpoint', split, '--image', image, '--prompt', 'What is it?', ...opts, '--out', built]);
    expect(i.stdout).toContain('1x1 grid, 1 tiles'); // --max-num 2 (the default, 6, gives a 3x2 grid)
    const via = path.join(work, 'opts-via.safetensors');
    expect((await vlmcInProcess(['generate', split, '--inputs', built, '--max-new-tokens', '3', '--ignore-eos', '--out', via])).status).toBe(0);
    expect(await tokensOf(direct)).toEqual(await tokensOf(via));
    const history = path.join(work, 'history.json');
    writeFileSync(history, JSON.stringify([['Hi', 'Hello.']]));
    expect((await vlmcInProcess(['generate', split, '--prompt', 'And now?', '--history', history, '--max-new-tokens', '2'])).status).toBe(0);
    await expectRefused(['generate', split, '--inputs', request, '--max-num', '2'], `--max-num: builds the request from --prompt/--image; with --inputs ${request} the tensors are given`);
    const help = (await vlmcInProcess(['generate', '--help'])).stdout;
    expect(help).toMatch(/sampled\s+with\s+--temperature/);
    expect(help).toMatch(/a\s+prompt\s+needs\s+no\s+image/);
  });
});

describe('issue 16: build --split / --train check what generate and train will need', () => {
  let work: string;
  let ckpt: string;
  beforeAll(async () => {
    work = tempDir('vlmc-i16-needs-');
    ckpt = await demoCheckpoint(path.join(work, 'ckpt'));
  });
  afterAll(() => removeDir(work));

  it('an unknown template is refused, for --split and --train', async () => {
    const bad = path.join(work, 'bad-template');
    cpSync(ckpt, bad, { recursive: true });
    const cfg = JSON.parse(readFileSync(path.join(bad, 'config.json'), 'utf8'));
    writeFileSync(path.join(bad, 'config.json'), JSON.stringify({ ...cfg, template: 'nonexistent' }));
    for (const flag of ['--split', '--train']) {
      const out = path.join(work, `t${flag}`);
      await expectRefused(['build', '--weights', bad, '--out', out, flag], `${path.join(bad, 'config.json')}: template "nonexistent" is not a conversation template vlmc knows`);
      expect(existsSync(out)).toBe(false);
    }
  });

  it('an --img-context-token-id the tokenizer contradicts is refused', async () => {
    await expectRefused(['build', '--weights', ckpt, '--out', path.join(work, 'ctx'), '--split', '--img-context-token-id', '5'], '--img-context-token-id 5: <IMG_CONTEXT> id 5, but', `${path.join(ckpt, 'tokenizer.json')} has <IMG_CONTEXT> as 153`);
  });

  it('a Path B LLM folder without a tokenizer builds with a warning naming what will not work', async () => {
    const llm = path.join(FIXTURES, 'qwen2-tiny/llm');
    const vision = path.join(FIXTURES, 'qwen2-tiny/vision');
    const t = await vlmcInProcess(['build', '--vision', vision, '--llm', llm, '--out', path.join(work, 'b-train'), '--train', '--quiet']);
    expect(t.status).toBe(0);
    expect(t.stderr).toBe(`vlmc: warning: ${llm} has no tokenizer.json: vlmc train cannot tokenize its data (vlmc run --graph train still runs the artifact); put the checkpoint's tokenizer.json there\n`);
    const s = await vlmcInProcess(['build', '--vision', vision, '--llm', llm, '--out', path.join(work, 'b-split'), '--split', '--quiet']);
    expect(s.status).toBe(0);
    expectOnlyWarnings(s.stderr, new RegExp(`${llm} has no tokenizer.json: vlmc generate will print token ids`), /names no conversation template/);
    // The demo checkpoint has everything: no warning.
    const ok = await vlmcInProcess(['build', '--weights', ckpt, '--out', path.join(work, 'ok'), '--split', '--quiet']);
    expect(ok.stderr).toBe('');
  });
});
