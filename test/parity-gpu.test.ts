/**
 * --target gpu on every fixture case: the fused graph (fp32) equals the portable one within 1e-4
 * and stays within 1e-4 of the float64 reference, through the CLI (`vlmc build`, `vlmc run`).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as path from 'node:path';
import { FIXTURES, fixtureCases, maxAbsError, readFloats, removeDir, tempDir, vlmcInProcess } from './helpers.ts';

const TOL = 1e-4;

describe.each(fixtureCases())('fixture %s, --target gpu', (name) => {
  const fx = path.join(FIXTURES, name);
  let work: string;

  beforeAll(async () => {
    work = tempDir();
    for (const target of ['portable', 'gpu']) {
      const artifact = path.join(work, target);
      const b = await vlmcInProcess(['build', '--weights', path.join(fx, 'unified'), '--out', artifact, '--target', target, '--quiet']);
      expect(b.stderr).toBe('');
      expect(b.status).toBe(0);
      const r = await vlmcInProcess(['run', artifact, '--inputs', path.join(fx, 'inputs.safetensors'), '--out', path.join(work, `${target}.safetensors`)]);
      expect(r.status).toBe(0);
    }
  });
  afterAll(() => removeDir(work));

  it.each(['logits', 'vit_embeds'])('%s: fused equals portable and the reference within 1e-4', async (key) => {
    const fused = await readFloats(path.join(work, 'gpu.safetensors'), key);
    expect(maxAbsError(fused, await readFloats(path.join(work, 'portable.safetensors'), key))).toBeLessThanOrEqual(TOL);
    expect(maxAbsError(fused, await readFloats(path.join(fx, 'expected.safetensors'), key))).toBeLessThanOrEqual(TOL);
  });
});
