/**
 * Session options follow the weights: a single-graph float artifact skips ORT's weight prepacking (a
 * second copy of every weight and seconds at session creation), a quantised one keeps it
 * (MatMulNBits dequantises on every call without it: 0.94 s instead of 0.03 s a decode step on the
 * 1B shape, bench/infer --gpu). A split artifact's sessions prepack the decoder only, quantised or
 * not (openSplitSessions in src/runtime/session.ts; docs/performance.md, "vlmc and mobius side by side").
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { hasQuantisedWeights } from '../src/artifact/format.ts';
import { FIXTURES, removeDir, tempDir, vlmcInProcess } from './helpers.ts';

const work = tempDir('vlmc-prepack-');
afterAll(() => removeDir(work));

describe('weight prepacking per artifact', () => {
  it('is kept for --quant artifacts only', async () => {
    const unified = path.join(FIXTURES, 'qwen2-tiny/unified');
    const plain = path.join(work, 'plain');
    const int4 = path.join(work, 'int4');
    expect((await vlmcInProcess(['build', '--weights', unified, '--split', '--out', plain, '--quiet'])).status).toBe(0);
    expect((await vlmcInProcess(['build', '--weights', unified, '--split', '--target', 'gpu', '--quant', 'int4', '--out', int4, '--quiet'])).status).toBe(0);
    expect(hasQuantisedWeights(plain)).toBe(false);
    expect(hasQuantisedWeights(int4)).toBe(true);
    const g = await vlmcInProcess(['generate', int4, '--inputs', path.join(FIXTURES, 'qwen2-tiny/gen_inputs.safetensors'), '--max-new-tokens', '2', '--ignore-eos', '--json']);
    expect(g.status).toBe(0);
  });
});
