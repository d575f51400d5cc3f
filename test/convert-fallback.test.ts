/**
 * Where WebAssembly is unavailable, binding falls back to the plain conversion loops and writes
 * the same bytes: `vlmc build` under `node --no-expose-wasm` (no WebAssembly object at all) gives
 * artifacts identical to a normal run, for a checkpoint mixing F32, F16 and BF16 tensors bound to
 * each stored dtype (all six conversions).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { FIXTURES, ROOT, removeDir, tempDir, vlmcInProcess } from './helpers.ts';
import { SafetensorsFile } from '../src/checkpoint/safetensors.ts';
import { writeSafetensors, type TensorToWrite } from '../src/checkpoint/safetensors-write.ts';

const FIXTURE = path.join(FIXTURES, 'qwen2-tiny', 'unified');
const work = tempDir('vlmc-fallback-');
const ckpt = path.join(work, 'mixed');
afterAll(() => removeDir(work));

const DTYPES = ['F32', 'F16', 'BF16'] as const;

/** The fixture's tensors, stored in turn as F32, F16 and BF16, holding xorshift bit patterns (specials included). */
async function writeMixedCheckpoint(): Promise<void> {
  mkdirSync(ckpt, { recursive: true });
  for (const f of ['config.json', 'added_tokens.json', 'tokenizer_config.json']) {
    if (existsSync(path.join(FIXTURE, f))) copyFileSync(path.join(FIXTURE, f), path.join(ckpt, f));
  }
  const st = await SafetensorsFile.open(path.join(FIXTURE, 'model.safetensors'));
  let s = 0x9e3779b9 | 0;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
  const tensors: TensorToWrite[] = st.keys().map((key, i) => {
    const { shape } = st.entry(key);
    const dtype = DTYPES[i % 3]!;
    const n = shape.reduce((a, b) => a * b, 1);
    const data = dtype === 'F32' ? new Uint32Array(n) : new Uint16Array(n);
    for (let j = 0; j < n; j++) data[j] = next();
    return { name: key, dtype, shape, data: new Uint8Array(data.buffer) };
  });
  await st.close();
  await writeSafetensors(path.join(ckpt, 'model.safetensors'), tensors);
}

/** The normal run, in this process (WebAssembly and the SIMD kernels available). */
async function buildWithWasm(out: string, dtype: string): Promise<void> {
  const r = await vlmcInProcess(['build', '--weights', ckpt, '--out', out, '--dtype', dtype, '--quiet']);
  if (r.status !== 0) throw new Error(`vlmc build exited ${r.status}: ${r.stderr}`);
}

/** A process of its own: Node flags (--no-expose-wasm) apply to a process. */
function build(out: string, dtype: string, nodeFlags: string[]): void {
  const r = spawnSync(process.execPath, [...nodeFlags, path.join(ROOT, 'bin/vlmc.js'), 'build', '--weights', ckpt, '--out', out, '--dtype', dtype, '--quiet'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`vlmc build ${nodeFlags.join(' ')} exited ${r.status}: ${r.stderr}`);
}

describe.skipIf(!existsSync(FIXTURE))('binding without WebAssembly', () => {
  beforeAll(writeMixedCheckpoint);

  it.each(['fp16', 'bf16', 'fp32'])('writes the same artifact as with the SIMD kernels (--dtype %s)', async (dtype) => {
    const simd = path.join(work, `simd-${dtype}`);
    const plain = path.join(work, `plain-${dtype}`);
    await buildWithWasm(simd, dtype);
    build(plain, dtype, ['--no-expose-wasm']);
    const manifest = JSON.parse(readFileSync(path.join(simd, 'manifest.json'), 'utf8')) as { parameters: { source: { dtype?: string } }[] };
    expect(new Set(manifest.parameters.map((p) => p.source.dtype))).toEqual(new Set(DTYPES));
    for (const file of ['model.onnx', 'model.onnx.data', 'manifest.json']) {
      expect(readFileSync(path.join(plain, file)).equals(readFileSync(path.join(simd, file))), file).toBe(true);
    }
  });
});
