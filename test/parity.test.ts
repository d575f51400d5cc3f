/**
 * Parity with the reference fixtures (an independent float64 PyTorch implementation of the official
 * InternVL code): every case in ../shared/fixtures is built from its unified checkpoint through
 * the CLI and run; logits and vit_embeds must match to 1e-4.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { FIXTURES, fixtureCases, maxAbsError, tempDir, removeDir, vlmcInProcess, hasOnnxChecker, onnxCheck } from './helpers.ts';
import { SafetensorsFile } from '../src/checkpoint/safetensors.ts';

const TOL = 1e-4;

describe.each(fixtureCases())('fixture %s', (name) => {
  const fx = path.join(FIXTURES, name);
  const spec = JSON.parse(readFileSync(path.join(fx, 'case.json'), 'utf8'));
  let work: string;
  let artifact: string;

  beforeAll(async () => {
    work = tempDir();
    artifact = path.join(work, 'artifact');
    const r = await vlmcInProcess(['build', '--weights', path.join(fx, 'unified'), '--out', artifact]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
  afterAll(() => removeDir(work));

  it('matches logits and vit_embeds within 1e-4', async () => {
    const outFile = path.join(work, 'out.safetensors');
    const r = await vlmcInProcess(['run', artifact, '--inputs', path.join(fx, 'inputs.safetensors'), '--out', outFile]);
    expect(r.status).toBe(0);
    const got = await SafetensorsFile.open(outFile);
    const want = await SafetensorsFile.open(path.join(fx, 'expected.safetensors'));
    for (const key of ['logits', 'vit_embeds']) {
      expect(got.entry(key).shape).toEqual(want.entry(key).shape);
      const err = maxAbsError(await got.readAsFloat32(got.entry(key)), await want.readAsFloat32(want.entry(key)));
      expect(err, `${key} max abs error`).toBeLessThanOrEqual(TOL);
    }
    expect(got.entry('vit_embeds').shape).toEqual([spec.num_tiles, spec.num_image_token, spec.llm.hidden_size]);
    await got.close();
    await want.close();
  });

  it('writes a manifest with one entry per parameter in the acceptance format', () => {
    const manifest = JSON.parse(readFileSync(path.join(artifact, 'manifest.json'), 'utf8'));
    const unified = Object.keys(JSON.parse(headerOf(path.join(fx, 'unified/model.safetensors')))).filter((k) => k !== '__metadata__');
    expect(manifest.parameters.map((p: { key: string }) => p.key).sort()).toEqual(unified.sort());
    for (const p of manifest.parameters) {
      expect(Object.keys(p)).toEqual(expect.arrayContaining(['name', 'key', 'shape', 'dtype', 'trainable']));
      expect(p.dtype).toBe('float32');
      expect(p.trainable).toBe(true);
    }
    expect(manifest.parameters.length).toBe(spec.num_params.total);
  });

  it.skipIf(!hasOnnxChecker())('passes onnx.checker.check_model(full_check=True)', () => {
    const r = onnxCheck(path.join(artifact, 'model.onnx'));
    expect(r.message).toBe('');
    expect(r.ok).toBe(true);
  });
});

function headerOf(file: string): string {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  return buf.subarray(8, 8 + n).toString('utf8');
}
