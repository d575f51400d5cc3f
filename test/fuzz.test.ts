/**
 * The lasting guard of issue 8: a bounded, seeded fuzz of every input vlmc reads. Each case asserts
 * the contract: success with a valid result, or a UserError (exit 2) whose message names the thing
 * that is wrong; never another error (exit 1), never a hang; nothing written at a failed output and
 * an earlier artifact left byte-for-byte as it was. Runs in-process for speed, with a few CLI spawns.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { build } from '../src/build.ts';
import { init } from '../src/init/init.ts';
import { Checkpoint } from '../src/checkpoint/checkpoint.ts';
import { SafetensorsFile } from '../src/checkpoint/safetensors.ts';
import { writeSafetensors } from '../src/checkpoint/safetensors-write.ts';
import { UserError } from '../src/errors.ts';
import { runArtifact } from '../src/run.ts';
import { openSession } from '../src/runtime/session.ts';
import { summaryFromOnnxFile } from '../src/review/index.ts';
import { checkExternalReferences } from '../src/onnx/read.ts';
import { removeDir, tempDir, vlmcInProcess, demoCheckpoint } from './helpers.ts';
import { QWEN, i64Bytes, writeInputs, type Json } from './validation-helpers.ts';

// Fixed so `npm test` is deterministic; VLMC_FUZZ_SEED explores other cases.
const SEED = Number(process.env.VLMC_FUZZ_SEED ?? 20261201);
const work = tempDir('vlmc-fuzz-');
afterAll(() => removeDir(work));
let n = 0;
const fresh = (name: string) => path.join(work, `${name}-${n++}`);

/** Runs `f`; a thrown error must be a UserError naming `names` (any one of them). */
async function contract<T>(f: () => Promise<T>, names: string[]): Promise<{ ok: true; value: T } | { ok: false; message: string }> {
  try {
    return { ok: true, value: await f() };
  } catch (e) {
    if (!(e instanceof UserError)) throw new Error(`not a UserError (would exit 1): ${(e as Error)?.stack ?? String(e)}`);
    if (!names.some((name) => e.message.includes(name))) throw new Error(`message names none of ${names.join(', ')}: ${e.message}`);
    return { ok: false, message: e.message };
  }
}

function folderHash(dir: string): string {
  const h = createHash('sha256');
  for (const f of readdirSync(dir).sort()) h.update(f).update(readFileSync(path.join(dir, f)));
  return h.digest('hex');
}

/** Odd JSON values a config field might hold. */
const oddValue = fc.constantFrom<unknown>(null, -1, 0, 0.3, 0.5, 1, 2, 3, 7, 14, 15, 56, 1e9, -1e9, 1.5, 'x', '', '__proto__', 'toString', true, false, [], [1], {}, { type: 'yarn' }, { rope_type: 'linear', factor: 2 });

const CONFIG_FIELDS: string[][] = [
  ['downsample_ratio'], ['ps_version'], ['select_layer'], ['force_image_size'], ['architectures'], ['model_type'], ['vision_config'], ['llm_config'],
  ...['hidden_size', 'num_attention_heads', 'num_hidden_layers', 'intermediate_size', 'image_size', 'patch_size', 'norm_type', 'qkv_bias', 'qk_normalization', 'layer_norm_eps', 'hidden_act', 'num_channels'].map((k) => ['vision_config', k]),
  ...['hidden_size', 'num_attention_heads', 'num_key_value_heads', 'num_hidden_layers', 'intermediate_size', 'vocab_size', 'rms_norm_eps', 'rope_theta', 'rope_scaling', 'rope_parameters', 'max_position_embeddings', 'tie_word_embeddings', 'hidden_act', 'head_dim', 'sliding_window', 'use_sliding_window', 'architectures', 'partial_rotary_factor', 'attention_bias'].map((k) => ['llm_config', k]),
];

function setPath(cfg: Json, keys: string[], value: unknown): void {
  let o: Json = cfg;
  for (const k of keys.slice(0, -1)) {
    if (typeof o[k] !== 'object' || o[k] === null) return;
    o = o[k];
  }
  if (value === undefined) delete o[keys[keys.length - 1]!];
  else o[keys[keys.length - 1]!] = value;
}

describe('fuzz (seeded, bounded)', () => {
  let earlier: string;
  let earlierHash: string;
  let artifact: string;
  beforeAll(async () => {
    earlier = fresh('earlier');
    await build({ weights: path.join(QWEN, 'unified'), out: earlier });
    earlierHash = folderHash(earlier);
    artifact = earlier;
  });

  it('safetensors header and data mutations', async () => {
    const original = readFileSync(path.join(QWEN, 'mlp1.safetensors'));
    const headerLength = Number(original.readBigUInt64LE(0));
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(8 + headerLength + 16), value: fc.nat(255) }),
      fc.record({ kind: fc.constant('length' as const), delta: fc.integer({ min: -12, max: 12 }) }),
      fc.record({ kind: fc.constant('truncate' as const), to: fc.nat(original.length) }),
      fc.record({ kind: fc.constant('append' as const), bytes: fc.integer({ min: 1, max: 9 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 3 }), async (mutations) => {
        let bytes = Buffer.from(original);
        for (const m of mutations) {
          if (m.kind === 'flip' && m.at < bytes.length) bytes[m.at] = m.value;
          if (m.kind === 'length' && bytes.length >= 8) bytes.writeBigUInt64LE(BigInt(Math.max(0, headerLength + m.delta)), 0);
          if (m.kind === 'truncate') bytes = bytes.subarray(0, m.to);
          if (m.kind === 'append') bytes = Buffer.concat([bytes, Buffer.alloc(m.bytes, 0x20)]);
        }
        const file = fresh('m.safetensors');
        writeFileSync(file, bytes);
        const r = await contract(async () => {
          const st = await SafetensorsFile.open(file);
          try {
            let covered = 0;
            for (const k of st.keys()) covered += (await st.readAll(st.entry(k))).byteLength;
            // A file that opens has tensors tiling its data section exactly.
            expect(8 + st.headerLength + covered).toBe(bytes.length);
          } finally {
            await st.close();
          }
        }, [file]);
        if (r.ok) expect(bytes.readBigUInt64LE(0)).toBe(original.readBigUInt64LE(0));
        rmSync(file);
      }),
      { seed: SEED, numRuns: 150 },
    );
  });

  it('config.json mutations: a valid artifact or exit 2 naming config.json; nothing written; the earlier artifact unchanged', async () => {
    const base = JSON.parse(readFileSync(path.join(QWEN, 'unified', 'config.json'), 'utf8')) as Json;
    const edit = fc.record({ field: fc.constantFrom(...CONFIG_FIELDS), value: fc.oneof(oddValue, fc.constant(undefined)) });
    await fc.assert(
      fc.asyncProperty(fc.array(edit, { minLength: 1, maxLength: 3 }), async (edits) => {
        const cfg = structuredClone(base);
        for (const e of edits) setPath(cfg, e.field, e.value);
        const dir = fresh('ck');
        mkdirSync(dir);
        for (const f of ['model.safetensors', 'added_tokens.json', 'tokenizer_config.json']) symlinkSync(path.join(QWEN, 'unified', f), path.join(dir, f));
        writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
        const out = fresh('out');
        const r = await contract(() => build({ weights: dir, out }), ['config.json', dir]);
        // vlmc init validates with the same code: it writes a graph file exactly when the config builds.
        const graphFile = `${fresh('graph')}.ts`;
        const g = await contract(() => init({ from: dir, out: graphFile }), ['config.json', dir]);
        if (r.ok) expect(g.ok).toBe(true);
        if (!g.ok) expect(r.ok || existsSync(graphFile)).toBe(false);
        if (r.ok) {
          expect(existsSync(path.join(out, 'manifest.json'))).toBe(true);
          removeDir(out);
        } else {
          expect(existsSync(out)).toBe(false);
          await contract(() => build({ weights: dir, out: earlier }), ['config.json', dir]).then((again) => expect(again.ok).toBe(false));
          expect(folderHash(earlier)).toBe(earlierHash);
        }
        removeDir(dir);
      }),
      { seed: SEED, numRuns: 60 },
    );
  });

  it('model.safetensors.index.json mutations', async () => {
    const st = await SafetensorsFile.open(path.join(QWEN, 'unified', 'model.safetensors'));
    const keys = st.keys();
    const shards: [string, string[]][] = [['model-00001-of-00002.safetensors', keys.slice(0, 12)], ['model-00002-of-00002.safetensors', keys.slice(12)]];
    const template = fresh('sharded');
    mkdirSync(template);
    const map: Record<string, string> = {};
    for (const [file, subset] of shards) {
      const tensors = [];
      for (const k of subset) {
        const e = st.entry(k);
        tensors.push({ name: k, dtype: e.dtype, shape: e.shape, data: await st.readAll(e) });
        map[k] = file;
      }
      await writeSafetensors(path.join(template, file), tensors);
    }
    await st.close();
    cpSync(path.join(QWEN, 'unified', 'config.json'), path.join(template, 'config.json'));
    const shardName = fc.constantFrom<unknown>('model-00001-of-00002.safetensors', './model-00002-of-00002.safetensors', '../model.safetensors', '/etc/passwd', '', 'missing.safetensors', 'config.json', 3, null, 'a/../model-00001-of-00002.safetensors', '.', './');
    const edit = fc.record({ key: fc.oneof(fc.constantFrom(...keys), fc.constant('extra.weight')), shard: fc.oneof(shardName, fc.constant(undefined)) });
    await fc.assert(
      fc.asyncProperty(fc.array(edit, { minLength: 1, maxLength: 3 }), fc.boolean(), async (edits, breakShape) => {
        const dir = fresh('idx');
        cpSync(template, dir, { recursive: true });
        const weightMap: Record<string, unknown> = { ...map };
        for (const e of edits) {
          if (e.shard === undefined) delete weightMap[e.key];
          else weightMap[e.key] = e.shard;
        }
        const index = path.join(dir, 'model.safetensors.index.json');
        writeFileSync(index, breakShape ? JSON.stringify({ weight_map: Object.entries(weightMap) }) : JSON.stringify({ metadata: {}, weight_map: weightMap }));
        await contract(async () => (await Checkpoint.open(dir)).close(), [index, dir]);
        removeDir(dir);
      }),
      { seed: SEED, numRuns: 60 },
    );
  });

  it('tokenizer file mutations (<IMG_CONTEXT> id)', async () => {
    const value = fc.constantFrom<unknown>(153, 0, 159, 160, -1, 1.5, 1e30, '153', null, [], {});
    await fc.assert(
      fc.asyncProperty(value, fc.boolean(), fc.boolean(), async (id, viaDecoder, garbage) => {
        const dir = fresh('tok');
        mkdirSync(dir);
        for (const f of ['model.safetensors', 'config.json']) symlinkSync(path.join(QWEN, 'unified', f), path.join(dir, f));
        if (garbage) writeFileSync(path.join(dir, viaDecoder ? 'tokenizer_config.json' : 'added_tokens.json'), '{"<IMG_CONTEXT>": ');
        else if (viaDecoder) writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ added_tokens_decoder: { [String(id)]: { content: '<IMG_CONTEXT>' } } }));
        else writeFileSync(path.join(dir, 'added_tokens.json'), JSON.stringify({ '<IMG_CONTEXT>': id }));
        const out = fresh('tok-out');
        const r = await contract(() => build({ weights: dir, out }), [dir]);
        if (r.ok) removeDir(out);
        else expect(existsSync(out)).toBe(false);
        removeDir(dir);
      }),
      { seed: SEED, numRuns: 25 },
    );
  });

  it('vlmc run input mutations: outputs or exit 2 naming the inputs file, nothing written', async () => {
    const spec = fc.record({
      tiles: fc.integer({ min: 0, max: 3 }),
      size: fc.constantFrom(56, 56, 48),
      prefix: fc.array(fc.integer({ min: -2, max: 165 }), { minLength: 0, maxLength: 4 }),
      flags: fc.option(fc.array(fc.constantFrom(-1, 0, 1, 1, 2), { minLength: 0, maxLength: 4 }), { nil: undefined }),
      idsDtype: fc.constantFrom('I64' as const, 'I64' as const, 'I32' as const, 'F32' as const),
      extra: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(spec, async (s) => {
        const inputs = fresh('in.safetensors');
        const flags = s.flags ?? Array.from({ length: s.tiles }, () => 1);
        const flagged = flags.filter((f) => f === 1).length;
        const ids = [...s.prefix, ...Array.from({ length: flagged * 4 }, () => 153), 7];
        const idsTensor = s.idsDtype === 'I64'
          ? { name: 'input_ids', dtype: 'I64' as const, shape: [1, ids.length], data: i64Bytes(ids) }
          : s.idsDtype === 'I32'
            ? { name: 'input_ids', dtype: 'I32' as const, shape: [1, ids.length], data: new Uint8Array(Int32Array.from(ids).buffer) }
            : { name: 'input_ids', dtype: 'F32' as const, shape: [1, ids.length], data: new Uint8Array(Float32Array.from(ids).buffer) };
        const extra = s.extra ? [{ name: 'attention_mask', dtype: 'I64' as const, shape: [1, ids.length], data: i64Bytes(ids.map(() => 1)) }] : [];
        await writeInputs(inputs, { tiles: s.tiles, size: s.size, tokensPerTile: 4, contextId: 153, flags, extra, override: { input_ids: idsTensor } });
        const out = fresh('out.safetensors');
        const r = await contract(() => runArtifact(artifact, inputs, out), [inputs]);
        if (r.ok) {
          expect(r.value.logits!.shape).toEqual([1, ids.length, 160]);
          expect(existsSync(out)).toBe(true);
        } else expect(existsSync(out)).toBe(false);
      }),
      { seed: SEED, numRuns: 40 },
    );
  });

  it('.onnx mutations: vlmc diff and vlmc run refuse a damaged model with exit 2', async () => {
    const model = readFileSync(path.join(artifact, 'model.onnx'));
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(model.length - 1), value: fc.nat(255) }),
      fc.record({ kind: fc.constant('truncate' as const), to: fc.nat(model.length) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), async (mutations) => {
        let bytes = Buffer.from(model);
        for (const m of mutations) {
          if (m.kind === 'flip') bytes[m.at % Math.max(bytes.length, 1)] = m.value;
          else bytes = bytes.subarray(0, m.to);
        }
        const dir = fresh('onnx');
        cpSync(artifact, dir, { recursive: true });
        const file = path.join(dir, 'model.onnx');
        writeFileSync(file, bytes);
        await contract(async () => summaryFromOnnxFile(file), [file]);
        await contract(async () => {
          checkExternalReferences(file);
          await (await openSession(dir)).release();
        }, [file]);
        removeDir(dir);
      }),
      { seed: SEED, numRuns: 30 },
    );
  });

  it('a few CLI runs end with exit 0 or 2, never 1', async () => {
    const bad = fresh('cli-in.safetensors');
    await writeInputs(bad, { tiles: 1, size: 56, tokensPerTile: 4, contextId: 153, prefix: [-5] });
    const cases: string[][] = [
      ['run', artifact, '--inputs', bad, '--out', fresh('o.safetensors')],
      ['build', '--weights', path.join(QWEN, 'llm'), '--out', fresh('o')],
      ['build', '--vision', path.join(QWEN, 'llm'), '--llm', path.join(QWEN, 'vision'), '--out', fresh('o')],
    ];
    for (const args of cases) {
      const r = await vlmcInProcess(args);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).not.toContain('internal error');
    }
  });
});

describe('fuzz (seeded, bounded): issue 16, split artifacts, generate --inputs and training data', () => {
  let split: string;
  let trainArtifact: string;
  let request: string;
  beforeAll(async () => {
    const ckpt = await demoCheckpoint(fresh('demo-ckpt'));
    split = fresh('split');
    await build({ weights: ckpt, out: split, split: true });
    trainArtifact = fresh('train');
    await build({ weights: ckpt, out: trainArtifact, train: true, preset: 'stage1' });
    request = fresh('request.safetensors');
    await writeInputs(request, { tiles: 1, size: 56, tokensPerTile: 4, contextId: 153 });
  }, 120_000);

  it('split artifact mutations (graphs, weights, pipeline.json): opens and runs, or exit 2 naming the file', async () => {
    const { SplitSession } = await import('../src/generate/session.ts');
    const files = ['vision.onnx', 'embedding.onnx', 'decoder.onnx', 'weights.onnx.data', 'pipeline.json', 'manifest.json'];
    const pipelineValue = fc.constantFrom<unknown>(undefined, null, 3, 'x', '../vision.onnx', [], {}, { file: 'vision.onnx' }, -1, 1e9);
    const pipelineKey = fc.constantFrom(['graphs', 'vision', 'file'], ['graphs', 'decoder'], ['graphs'], ['data_file'], ['llm', 'vocab_size'], ['llm', 'num_layers'], ['llm', 'head_dim'], ['llm', 'max_position_embeddings'], ['image', 'tokens_per_tile'], ['eos_token_id'], ['pad_token_id'], ['format']);
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('truncate' as const), file: fc.constantFrom(...files), fraction: fc.double({ min: 0, max: 0.99, noNaN: true }) }),
      fc.record({ kind: fc.constant('flip' as const), file: fc.constantFrom(...files), at: fc.double({ min: 0, max: 0.999, noNaN: true }), value: fc.nat(255) }),
      fc.record({ kind: fc.constant('delete' as const), file: fc.constantFrom(...files) }),
      fc.record({ kind: fc.constant('pipeline' as const), key: pipelineKey, value: pipelineValue }),
    );
    await fc.assert(
      fc.asyncProperty(mutation, async (m) => {
        const dir = fresh('split-m');
        cpSync(split, dir, { recursive: true });
        if (m.kind === 'pipeline') {
          const p = JSON.parse(readFileSync(path.join(dir, 'pipeline.json'), 'utf8')) as Json;
          setPath(p, [...m.key], m.value);
          writeFileSync(path.join(dir, 'pipeline.json'), JSON.stringify(p));
        } else {
          const file = path.join(dir, m.file);
          const bytes = readFileSync(file);
          if (m.kind === 'delete') rmSync(file);
          if (m.kind === 'truncate') writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length * m.fraction)));
          if (m.kind === 'flip') {
            bytes[Math.floor(bytes.length * m.at)] = m.value;
            writeFileSync(file, bytes);
          }
        }
        const names = [dir, ...files.map((f) => path.join(dir, f))];
        await contract(async () => (await SplitSession.open(dir)).release(), names);
        const out = fresh('split-out.safetensors');
        const r = await contract(() => runArtifact(dir, request, out), names);
        if (!r.ok) expect(existsSync(out)).toBe(false);
        removeDir(dir);
      }),
      { seed: SEED, numRuns: 40 },
    );
  });

  it('generate --inputs mutations (ids, flags, mask, pixels): tokens, or exit 2 naming the inputs file, nothing written', async () => {
    const { generateCommand } = await import('../src/generate/cli.ts');
    const spec = fc.record({
      tiles: fc.integer({ min: 0, max: 2 }),
      prefix: fc.array(fc.integer({ min: -2, max: 165 }), { minLength: 0, maxLength: 3 }),
      flags: fc.option(fc.array(fc.constantFrom(-1, 0, 1, 1, 2), { minLength: 0, maxLength: 3 }), { nil: undefined }),
      mask: fc.option(fc.array(fc.constantFrom(0, 1, 1, 1, 2), { minLength: 1, maxLength: 14 }), { nil: undefined }),
      nan: fc.boolean(),
      dropFlags: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(spec, async (s) => {
        const inputs = fresh('gen-in.safetensors');
        const flags = s.flags ?? Array.from({ length: s.tiles }, () => 1);
        const flagged = flags.filter((f) => f === 1).length;
        const ids = [...s.prefix, ...Array.from({ length: flagged * 4 }, () => 153), 7];
        const extra = s.mask ? [{ name: 'attention_mask', dtype: 'I64' as const, shape: [1, s.mask.length], data: i64Bytes(s.mask) }] : [];
        const pixels = { name: 'pixel_values', dtype: 'F32' as const, shape: [s.tiles, 3, 56, 56], data: new Uint8Array(Float32Array.from({ length: s.tiles * 3 * 56 * 56 }, (_, i) => (s.nan && i === 5 ? NaN : Math.sin(i))).buffer) };
        await writeInputs(inputs, { tiles: s.tiles, size: 56, tokensPerTile: 4, contextId: 153, prefix: s.prefix, flags, extra, override: { pixel_values: pixels } });
        if (s.dropFlags) {
          const st = await SafetensorsFile.open(inputs);
          const keep = [];
          for (const k of st.keys().filter((k) => k !== 'image_flags')) keep.push({ name: k, dtype: st.entry(k).dtype, shape: st.entry(k).shape, data: await st.readAll(st.entry(k)) });
          await st.close();
          await writeSafetensors(inputs, keep);
        }
        const out = fresh('gen-out.safetensors');
        const r = await contract(() => generateCommand({ artifact: split, inputs, out, maxNewTokens: 2, ignoreEos: true, write: () => {} }), [inputs]);
        if (r.ok) expect(existsSync(out)).toBe(true);
        else expect(existsSync(out)).toBe(false);
      }),
      { seed: SEED, numRuns: 30 },
    );
  });

  it('training data mutations (jsonl lines, images): trains, or exit 2 naming the data file, nothing written', async () => {
    const { train } = await import('../src/train/loop.ts');
    const dataDir = fresh('data');
    mkdirSync(dataDir);
    const sharp = (await import('sharp')).default;
    await sharp({ create: { width: 60, height: 40, channels: 3, background: { r: 10, g: 200, b: 90 } } }).png().toFile(path.join(dataDir, 'ok.png'));
    writeFileSync(path.join(dataDir, 'broken.png'), 'not a png');
    const turn = fc.record({ from: fc.constantFrom<unknown>('human', 'gpt', 'system', 'bot', 3, null), value: fc.constantFrom<unknown>('<image>\nWhat?', 'A cat.', '', 'caf\u00e9', '<IMG_CONTEXT>', '<image><image>', 7, null) });
    const sample = fc.record({
      image: fc.option(fc.constantFrom<unknown>('ok.png', 'missing.png', 'broken.png', ['ok.png', 'ok.png'], [], 5, '../ok.png', dataDir), { nil: undefined }),
      conversations: fc.oneof(fc.array(turn, { minLength: 0, maxLength: 4 }), fc.constantFrom<unknown>('x', null, {})),
    });
    const good = ['{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}', '{"image": "ok.png", "conversations": [{"from": "human", "value": "<image>\\nWhat?"}, {"from": "gpt", "value": "A cat."}]}'];
    const line = fc.oneof({ arbitrary: sample.map((x) => JSON.stringify(x)), weight: 2 }, { arbitrary: fc.constantFrom('', '{', 'null', '[]'), weight: 1 }, { arbitrary: fc.constantFrom(...good), weight: 4 });
    const seen = { trained: 0, refused: 0 };
    await fc.assert(
      fc.asyncProperty(fc.array(line, { minLength: 1, maxLength: 3 }), async (lines) => {
        const data = path.join(dataDir, `d-${n++}.jsonl`);
        writeFileSync(data, `${lines.join('\n')}\n`);
        const out = fresh('run');
        const r = await contract(() => train({ artifact: trainArtifact, data, steps: 1, out, lr: 1e-3 }), [data]);
        seen[r.ok ? 'trained' : 'refused']++;
        if (r.ok) expect(existsSync(path.join(out, 'checkpoint-1', 'model.safetensors'))).toBe(true);
        else expect(existsSync(out)).toBe(false);
      }),
      { seed: SEED, numRuns: 25 },
    );
    // Both outcomes were exercised.
    expect(seen.trained).toBeGreaterThan(0);
    expect(seen.refused).toBeGreaterThan(0);
  });
});
