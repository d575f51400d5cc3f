/**
 * Weight binding from both checkpoint paths: Path A (unified) and Path B (vision + LLM + new
 * projector) bind into the same artifact format, strictly, with provenance.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { cpSync, existsSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { FIXTURES, fixtureCases, maxAbsError, removeDir, tempDir, vlmcInProcess } from './helpers.ts';
import { SafetensorsFile } from '../src/checkpoint/safetensors.ts';
import { writeSafetensors } from '../src/checkpoint/safetensors-write.ts';
import { f16ToF32 } from '../src/tensor/convert.ts';
import type { Manifest, ManifestParameter } from '../src/artifact/format.ts';

const work = tempDir();
afterAll(() => removeDir(work));

const manifestOf = (dir: string): Manifest => JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
// Original-layout builds: every key is a single string (a list only for a concatenation from another layout).
const byKey = (m: Manifest) => new Map(m.parameters.map((p) => [p.key as string, p]));

function dataOf(dir: string, p: ManifestParameter): Buffer {
  return readFileSync(path.join(dir, 'model.onnx.data')).subarray(p.offset, p.offset + p.length);
}

async function build(args: string[]): Promise<void> {
  const r = await vlmcInProcess(['build', ...args, '--quiet']);
  if (r.status !== 0) throw new Error(`vlmc build failed (${r.status}): ${r.stderr}`);
}

async function runLogits(artifact: string, fx: string): Promise<Float32Array> {
  const out = path.join(artifact, '..', `${path.basename(artifact)}-out.safetensors`);
  const r = await vlmcInProcess(['run', artifact, '--inputs', path.join(fx, 'inputs.safetensors'), '--out', out]);
  if (r.status !== 0) throw new Error(r.stderr);
  const st = await SafetensorsFile.open(out);
  const logits = await st.readAsFloat32(st.entry('logits'));
  await st.close();
  return logits;
}

async function expectedLogits(fx: string): Promise<Float32Array> {
  const st = await SafetensorsFile.open(path.join(fx, 'expected.safetensors'));
  const logits = await st.readAsFloat32(st.entry('logits'));
  await st.close();
  return logits;
}

describe.each(fixtureCases())('Path A and Path B on %s', (name) => {
  const fx = path.join(FIXTURES, name);
  const dir = path.join(work, name);
  const a = path.join(dir, 'a');
  const b = path.join(dir, 'b');

  beforeAll(async () => {
    await build(['--weights', path.join(fx, 'unified'), '--out', a]);
    await build(['--vision', path.join(fx, 'vision'), '--llm', path.join(fx, 'llm'), '--out', b, '--seed', '7']);
  });

  it('binds the same vision and LLM bytes on both paths', () => {
    const pa = byKey(manifestOf(a));
    const pb = byKey(manifestOf(b));
    expect([...pb.keys()].sort()).toEqual([...pa.keys()].sort());
    for (const [key, p] of pb) {
      if (key.startsWith('mlp1.')) continue;
      expect(p.sha256, key).toBe(pa.get(key)!.sha256);
      expect(dataOf(b, p).equals(dataOf(a, pa.get(key)!)), key).toBe(true);
    }
  });

  it('records provenance: path, seed, source file and key, config hashes', () => {
    const m = manifestOf(b);
    expect(m.build.path).toBe('B');
    expect(m.build.seed).toBe(7);
    expect(m.build.sources.map((s) => s.role)).toEqual(['vision', 'llm']);
    for (const s of m.build.sources) expect(s.config_sha256).toMatch(/^[0-9a-f]{64}$/);
    const p = byKey(m);
    expect(p.get('vision_model.embeddings.class_embedding')!.source).toEqual({ role: 'vision', file: 'model.safetensors', key: 'embeddings.class_embedding', dtype: 'F32' });
    const embed = [...p.keys()].find((k) => k.startsWith('language_model.model.') && k.endsWith('embeddings.weight') || k.endsWith('embed_tokens.weight'))!;
    expect((p.get(embed)!.source as { role: string }).role).toBe('llm');
    expect(p.get('mlp1.1.weight')!.source).toEqual({ init: 'uniform', seed: 7 });
  });

  it('initialises the projector as PyTorch does (LayerNorm 1/0, Linear U(+-1/sqrt(fan_in)))', () => {
    const m = manifestOf(b);
    const p = byKey(m);
    const floats = (key: string) => {
      const bytes = dataOf(b, p.get(key)!);
      return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    };
    expect([...floats('mlp1.0.weight')].every((v) => v === 1)).toBe(true);
    expect([...floats('mlp1.0.bias')].every((v) => v === 0)).toBe(true);
    for (const key of ['mlp1.1.weight', 'mlp1.1.bias', 'mlp1.3.weight', 'mlp1.3.bias']) {
      const fanIn = p.get(key.replace('bias', 'weight'))!.shape[1]!;
      const bound = 1 / Math.sqrt(fanIn);
      const v = floats(key);
      expect(Math.max(...v.map(Math.abs)), key).toBeLessThanOrEqual(bound);
      if (key.endsWith('weight')) {
        const mean = v.reduce((s, x) => s + x, 0) / v.length;
        const std = Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length);
        expect(Math.abs(mean), key).toBeLessThan(0.1 * bound);
        expect(std / (bound / Math.sqrt(3)), key).toBeGreaterThan(0.9);
        expect(std / (bound / Math.sqrt(3)), key).toBeLessThan(1.1);
      }
    }
    expect(p.get('mlp1.1.weight')!.shape).toEqual([m.parameters.find((q) => q.key === 'mlp1.3.weight')!.shape[0], p.get('mlp1.0.weight')!.shape[0]]);
  });

  it('is deterministic for a seed and differs across seeds', async () => {
    const again = path.join(dir, 'b-again');
    const other = path.join(dir, 'b-other');
    await build(['--vision', path.join(fx, 'vision'), '--llm', path.join(fx, 'llm'), '--out', again, '--seed', '7']);
    await build(['--vision', path.join(fx, 'vision'), '--llm', path.join(fx, 'llm'), '--out', other, '--seed', '8']);
    for (const f of ['model.onnx', 'model.onnx.data', 'manifest.json']) {
      expect(readFileSync(path.join(again, f)).equals(readFileSync(path.join(b, f))), f).toBe(true);
    }
    expect(byKey(manifestOf(other)).get('mlp1.1.weight')!.sha256).not.toBe(byKey(manifestOf(b)).get('mlp1.1.weight')!.sha256);
  });

  it('with the projector taken from the unified checkpoint, reproduces the expected logits', async () => {
    const c = path.join(dir, 'c');
    await build(['--vision', path.join(fx, 'vision'), '--llm', path.join(fx, 'llm'), '--projector', path.join(fx, 'mlp1.safetensors'), '--out', c]);
    expect(maxAbsError(await runLogits(c, fx), await expectedLogits(fx))).toBeLessThanOrEqual(1e-4);
  });

  it('--dtype fp16 stores rounded parameters and still computes in fp32', async () => {
    const h = path.join(dir, 'h');
    await build(['--weights', path.join(fx, 'unified'), '--out', h, '--dtype', 'fp16']);
    const m = manifestOf(h);
    expect(m.parameters.every((p) => p.dtype === 'float16')).toBe(true);
    const pa = byKey(manifestOf(a));
    const ph = byKey(m);
    const key = 'mlp1.1.weight';
    const half = dataOf(h, ph.get(key)!);
    const full = dataOf(a, pa.get(key)!);
    const widened = f16ToF32(new Uint16Array(half.buffer.slice(half.byteOffset, half.byteOffset + half.byteLength)));
    const orig = new Float32Array(full.buffer.slice(full.byteOffset, full.byteOffset + full.byteLength));
    expect(maxAbsError(widened, orig)).toBeLessThan(1e-3);
    expect(maxAbsError(await runLogits(h, fx), await expectedLogits(fx))).toBeLessThan(2e-2);
  });
});

describe('strict binding', () => {
  const fx = path.join(FIXTURES, 'qwen2-tiny');
  const unified = path.join(fx, 'unified');

  async function variant(name: string, edit: (tensors: Map<string, { dtype: 'F32'; shape: number[]; data: Uint8Array }>) => void): Promise<string> {
    const dir = path.join(work, name);
    cpSync(unified, dir, { recursive: true });
    const st = await SafetensorsFile.open(path.join(unified, 'model.safetensors'));
    const tensors = new Map<string, { dtype: 'F32'; shape: number[]; data: Uint8Array }>();
    for (const key of st.keys()) tensors.set(key, { dtype: 'F32', shape: [...st.entry(key).shape], data: await st.readAll(st.entry(key)) });
    await st.close();
    edit(tensors);
    await writeSafetensors(path.join(dir, 'model.safetensors'), [...tensors].map(([name, t]) => ({ name, ...t })));
    return dir;
  }

  it('reports every missing, unexpected and mis-shaped key at once, and writes nothing', async () => {
    const dir = await variant('strict-all', (t) => {
      t.delete('mlp1.0.bias');
      t.delete('language_model.model.norm.weight');
      t.set('vision_model.extra.weight', { dtype: 'F32', shape: [2], data: new Uint8Array(8) });
      const w = t.get('mlp1.1.weight')!;
      t.set('mlp1.1.weight', { ...w, shape: [w.shape[1]!, w.shape[0]!] });
    });
    const out = path.join(work, 'strict-out');
    const r = await vlmcInProcess(['build', '--weights', dir, '--out', out]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('4 problems');
    expect(r.stderr).toMatch(/missing\s+mlp1\.0\.bias/);
    expect(r.stderr).toMatch(/missing\s+language_model\.model\.norm\.weight/);
    expect(r.stderr).toMatch(/unexpected\s+vision_model\.extra\.weight \(model\.safetensors/);
    expect(r.stderr).toContain('mlp1.1.weight: graph [48, 128], checkpoint [128, 48] (model.safetensors)');
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(work).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('--allow-missing and --ignore-unexpected accept deliberate cases', async () => {
    const dir = await variant('strict-allowed', (t) => {
      t.delete('mlp1.0.bias');
      t.set('vision_model.extra.weight', { dtype: 'F32', shape: [2], data: new Uint8Array(8) });
    });
    const out = path.join(work, 'allowed-out');
    await build(['--weights', dir, '--out', out, '--allow-missing', 'mlp1.*', '--ignore-unexpected', 'vision_model.extra.*']);
    expect(byKey(manifestOf(out)).get('mlp1.0.bias')!.source).toEqual({ init: 'zeros', seed: 0 });
  });

  it('a config that disagrees with the graph is reported field by field', async () => {
    const dir = path.join(work, 'wrong-config');
    cpSync(unified, dir, { recursive: true });
    const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    cfg.llm_config.rope_theta = 10000;
    cfg.select_layer = -2;
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
    const r = await vlmcInProcess(['build', 'graphs/internvl-tiny.ts', '--weights', dir, '--out', path.join(work, 'wc')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('llm.ropeTheta: graph has 1000000');
    expect(r.stderr).toContain('has 10000');
    expect(r.stderr).toContain('internvl.selectLayer: graph has -1');
  });

  it('an earlier artifact survives a failed build', async () => {
    const out = path.join(work, 'survivor');
    await build(['--weights', unified, '--out', out]);
    const before = readFileSync(path.join(out, 'manifest.json'));
    const r = await vlmcInProcess(['build', '--weights', path.join(work, 'strict-all'), '--out', out]);
    expect(r.status).toBe(2);
    expect(readFileSync(path.join(out, 'manifest.json')).equals(before)).toBe(true);
  });
});

describe('bad checkpoints through vlmc build', () => {
  const unified = path.join(FIXTURES, 'qwen2-tiny', 'unified');

  function corrupt(name: string, edit: (dir: string) => void): string {
    const dir = path.join(work, `bad-${name}`);
    cpSync(unified, dir, { recursive: true });
    edit(dir);
    return dir;
  }

  const cases: [string, (dir: string) => void, string][] = [
    ['truncated', (d) => writeFileSync(path.join(d, 'model.safetensors'), readFileSync(path.join(d, 'model.safetensors')).subarray(0, 5000)), 'model.safetensors'],
    ['not-json-config', (d) => writeFileSync(path.join(d, 'config.json'), '{ nope'), 'config.json'],
    [
      'index-escapes',
      (d) => writeFileSync(path.join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'mlp1.0.weight': '../model.safetensors' } })),
      '..',
    ],
    [
      'missing-shard',
      (d) => writeFileSync(path.join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'mlp1.0.weight': 'model-00002-of-00002.safetensors' } })),
      'model-00002-of-00002.safetensors',
    ],
  ];

  it.each(cases)('%s: exit 2, names the file, writes nothing', async (name, edit, mentions) => {
    const dir = corrupt(name, edit);
    const out = path.join(work, `bad-out-${name}`);
    const r = await vlmcInProcess(['build', '--weights', dir, '--out', out]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(mentions);
    expect(r.stderr).not.toContain('internal error');
    expect(existsSync(out)).toBe(false);
  });
});
