/**
 * --quant: the block quantiser (src/quant/blockwise.ts) against its error bound and ONNX Runtime's
 * MatMulNBits kernel (its layout), streaming in arbitrary chunks, and the quantised fixture builds:
 * manifest records, CPU numerics within the documented tolerance, greedy tokens where the margin allows.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import ort from 'onnxruntime-node';
import { RowQuantizer, dequantize, quantShapes, quantizeRow, type QuantScheme } from '../src/quant/blockwise.ts';
import { onnx } from '../src/onnx/proto.ts';
import { SafetensorsFile } from '../src/checkpoint/safetensors.ts';
import { FIXTURES, fixtureCases, maxAbsError, tempDir, removeDir, vlmcInProcess, hasOnnxChecker, onnxCheck } from './helpers.ts';

const SCHEMES: QuantScheme[] = [
  { bits: 4, blockSize: 32, symmetric: true },
  { bits: 4, blockSize: 32, symmetric: false },
  { bits: 4, blockSize: 128, symmetric: true },
  { bits: 4, blockSize: 128, symmetric: false },
  { bits: 8, blockSize: 32, symmetric: true },
];

function randomMatrix(n: number, k: number, seed: number): Float32Array {
  let a = seed;
  return Float32Array.from({ length: n * k }, () => {
    a = (a * 1103515245 + 12345) % 2 ** 31;
    return (a / 2 ** 31 - 0.5) * 2;
  });
}

function quantizeAll(w: Float32Array, n: number, k: number, s: QuantScheme) {
  const shapes = quantShapes(n, k, s);
  const rowBytes = shapes.b[1]! * shapes.b[2]!;
  const zpRow = Math.ceil((shapes.blocks * s.bits) / 8);
  const packed = new Uint8Array(n * rowBytes);
  const scales = new Float32Array(n * shapes.blocks);
  const zp = shapes.zeroPoints ? new Uint8Array(shapes.zeroPoints[0]!) : undefined;
  for (let r = 0; r < n; r++) {
    quantizeRow(w.subarray(r * k, (r + 1) * k), s, packed.subarray(r * rowBytes, (r + 1) * rowBytes), scales.subarray(r * shapes.blocks, (r + 1) * shapes.blocks), zp?.subarray(r * zpRow, (r + 1) * zpRow));
  }
  return { packed, scales, zp, shapes };
}

const tensor = (name: string, dataType: number, dims: number[], bytes: Uint8Array) => onnx.TensorProto.create({ name, dataType, dims, rawData: bytes });
const bytesOf = (a: Float32Array | Uint8Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** One MatMulNBits node over the quantised weight, run on the CPU EP. */
async function runMatMulNBits(a: Float32Array, m: number, n: number, k: number, s: QuantScheme, q: ReturnType<typeof quantizeAll>): Promise<Float32Array> {
  const inits = [tensor('B', 2, q.shapes.b, q.packed), tensor('scales', 1, q.shapes.scales, bytesOf(q.scales))];
  if (q.zp) inits.push(tensor('zp', 2, q.shapes.zeroPoints!, q.zp));
  const node = onnx.NodeProto.create({
    opType: 'MatMulNBits',
    domain: 'com.microsoft',
    input: ['A', 'B', 'scales', ...(q.zp ? ['zp'] : [])],
    output: ['Y'],
    attribute: [
      ['K', k],
      ['N', n],
      ['bits', s.bits],
      ['block_size', s.blockSize],
    ].map(([name, i]) => onnx.AttributeProto.create({ name: name as string, type: onnx.AttributeProto.AttributeType.INT, i: i as number })),
  });
  const info = (name: string, dims: number[]) =>
    onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: 1, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }, { domain: 'com.microsoft', version: 1 }],
    graph: { name: 'g', node: [node], input: [info('A', [m, k])], output: [info('Y', [m, n])], initializer: inits },
  });
  const session = await ort.InferenceSession.create(onnx.ModelProto.encode(model).finish());
  const out = await session.run({ A: new ort.Tensor('float32', a, [m, k]) });
  await session.release();
  return out.Y!.data as Float32Array;
}

describe('block quantiser', () => {
  it.each(SCHEMES)('%o: round-to-nearest within half a step of every weight', (s) => {
    const [n, k] = [12, 100]; // K not a multiple of the block: the last block is padded
    const w = randomMatrix(n, k, 7);
    const q = quantizeAll(w, n, k, s);
    const back = dequantize(q.packed, q.scales, q.zp, n, k, s);
    for (let r = 0; r < n; r++) {
      for (let j = 0; j < k; j++) {
        const scale = q.scales[r * q.shapes.blocks + Math.floor(j / s.blockSize)]!;
        expect(Math.abs(back[r * k + j]! - w[r * k + j]!)).toBeLessThanOrEqual(scale / 2 + 1e-7);
      }
    }
  });

  it.each(SCHEMES)('%o: ONNX Runtime MatMulNBits computes A x dequant(W)^T', async (s) => {
    const [m, n, k] = [5, 24, 100];
    const w = randomMatrix(n, k, 11);
    const a = randomMatrix(m, k, 13);
    const q = quantizeAll(w, n, k, s);
    const back = dequantize(q.packed, q.scales, q.zp, n, k, s);
    const want = new Float32Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let t = 0; t < k; t++) want[i * n + j]! += a[i * k + t]! * back[j * k + t]!;
    expect(maxAbsError(await runMatMulNBits(a, m, n, k, s, q), want)).toBeLessThan(1e-4);
  });

  it('streams: any chunking gives the same bytes as whole rows', () => {
    const s: QuantScheme = { bits: 4, blockSize: 32, symmetric: false };
    const [n, k] = [9, 70];
    const w = randomMatrix(n, k, 5);
    const whole = quantizeAll(w, n, k, s);
    const rq = new RowQuantizer(n, k, s);
    const bytes = bytesOf(w);
    const parts: Uint8Array[] = [];
    for (let at = 0; at < bytes.length; at += 4 * 37) parts.push(rq.push(bytes.subarray(at, Math.min(at + 4 * 37, bytes.length))));
    const { scales, zeroPoints } = rq.finish();
    expect(Buffer.concat(parts)).toEqual(Buffer.from(whole.packed));
    expect(new Float32Array(scales.buffer)).toEqual(whole.scales);
    expect(zeroPoints).toEqual(whole.zp);
  });
});

/**
 * Tolerances on the fixtures (random tiny weights, so far harsher than trained checkpoints): the
 * largest logit error against fp32 over the fixture logits, whose magnitude is about 5.
 */
const LOGIT_TOL: Record<string, number> = { int4: 4, int8: 0.5 };

describe.each(fixtureCases())('fixture %s, --quant', (name) => {
  const fx = path.join(FIXTURES, name);
  let work: string;
  const logits = async (file: string) => {
    const st = await SafetensorsFile.open(file);
    try {
      const e = st.entry('logits');
      return { data: await st.readAsFloat32(e), vocab: e.shape.at(-1)! };
    } finally {
      await st.close();
    }
  };
  const build = async (out: string, extra: string[]) => {
    const r = await vlmcInProcess(['build', '--weights', path.join(fx, 'unified'), '--out', out, '--quiet', ...extra]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const run = await vlmcInProcess(['run', out, '--inputs', path.join(fx, 'inputs.safetensors'), '--out', `${out}.safetensors`]);
    expect(run.status).toBe(0);
  };

  beforeAll(async () => {
    work = tempDir();
    await build(path.join(work, 'fp32'), ['--target', 'gpu']);
  });
  afterAll(() => removeDir(work));

  it.each([
    ['int4', []],
    ['int4', ['--quant-zero-points', '--quant-block', '128']],
    ['int8', []],
  ] as [string, string[]][])('%s %j: manifest, checker, logits within tolerance of fp32', async (scheme, extra) => {
    const out = path.join(work, `${scheme}-${extra.length}`);
    await build(out, ['--target', 'gpu', '--quant', scheme, ...extra]);
    const manifest = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    const quantised = manifest.parameters.filter((p: { quant?: unknown }) => p.quant);
    expect(quantised.length).toBeGreaterThan(0);
    for (const p of quantised) {
      // A packed projection (q/k/v, gate/up: pack-projections) names its parts' keys.
      const keys: string[] = Array.isArray(p.key) ? p.key : [p.key];
      for (const k of keys) expect(k.startsWith('language_model.')).toBe(true);
      // The embedding itself stays float; a tied lm_head reads a quantised copy bound from its key.
      if (Array.isArray(p.key)) expect(p.name.split('+').length).toBe(p.key.length);
      else if (p.key === p.name) expect(p.key).not.toMatch(/embed_tokens|tok_embeddings/);
      else expect(p.name).toBe(`${p.key.replace(/\.weight$/, '')}.lm_head`);
      expect(p.quant.block_size).toBe(extra.includes('128') ? 128 : 32);
      expect(p.quant.scheme).toBe(`${scheme}-${extra.includes('--quant-zero-points') ? 'asymmetric' : 'symmetric'}`);
      expect(p.quant.tensors.map((t: { name: string }) => t.name)).toContain(`${p.name}_scales`);
    }
    expect(manifest.metadata['vlmc.quant']).toMatch(new RegExp(`^${scheme}`));
    const embedding = manifest.parameters.find((p: { key: string; name: string }) => /embed_tokens|tok_embeddings/.test(p.key) && p.key === p.name);
    expect(embedding.quant).toBeUndefined();
    const tied = JSON.parse(readFileSync(path.join(fx, 'unified/config.json'), 'utf8')).llm_config.tie_word_embeddings === true;
    expect(quantised.some((p: { name: string }) => p.name.endsWith('.lm_head'))).toBe(tied);
    if (hasOnnxChecker()) expect(onnxCheck(path.join(out, 'model.onnx'))).toEqual({ ok: true, message: '' });
    const want = await logits(path.join(work, 'fp32.safetensors'));
    const got = await logits(`${out}.safetensors`);
    expect(maxAbsError(got.data, want.data)).toBeLessThanOrEqual(LOGIT_TOL[scheme]!);
    // Greedy tokens agree wherever fp32's top-2 margin exceeds twice the observed error.
    const err = maxAbsError(got.data, want.data);
    for (let r = 0; r < want.data.length / want.vocab; r++) {
      const row = (a: Float32Array) => Array.from(a.subarray(r * want.vocab, (r + 1) * want.vocab));
      const w = row(want.data);
      const sorted = [...w].sort((a, b) => b - a);
      if (sorted[0]! - sorted[1]! <= 2 * err) continue;
      const g = row(got.data);
      expect(g.indexOf(Math.max(...g))).toBe(w.indexOf(sorted[0]!));
    }
  });
});

describe('issue 16: the --quant build summary explains its parameter count', () => {
  const work = tempDir('vlmc-quant-summary-');
  afterAll(() => removeDir(work));

  it('a tied head is stored again, quantised: the count includes the copy and says how much the model itself has', async () => {
    const r = await vlmcInProcess(['build', '--weights', path.join(FIXTURES, 'qwen2-tiny/unified'), '--out', path.join(work, 'int4'), '--target', 'gpu', '--quant', 'int4', '--quiet']);
    expect(r.status).toBe(0);
    const [summary, , quant] = r.stdout.split('\n');
    expect(summary).toContain('102,704 parameters');
    // 9: each layer's q/k/v and gate/up are packed (pack-projections) and quantised as one, 2 layers x 4 + lm_head.
    expect(quant).toBe('quantised: 9 weights stored as int4-symmetric (block 32, MatMulNBits), counted at their unpacked sizes; the 102,704 parameters include 7,680 of language_model.model.embed_tokens.lm_head, a quantised copy of the tied language_model.model.embed_tokens.weight (the embedding stays unquantised for the lookup), so the model itself has 95,024');
    const manifest = JSON.parse(readFileSync(path.join(work, 'int4', 'manifest.json'), 'utf8'));
    expect(manifest.counts.total - 160 * 48).toBe(95_024);
  });
});
