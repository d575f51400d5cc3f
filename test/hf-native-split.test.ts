/**
 * A Hugging Face-native checkpoint (no image_flags: every tile counts) as a split artifact: the
 * embedding graph takes no image_flags, `vlmc run` and `vlmc generate` work without them, and the
 * logits are the fixture's.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { SafetensorsFile } from '../src/checkpoint/safetensors.ts';
import { writeSafetensors } from '../src/checkpoint/safetensors-write.ts';
import { readPipeline } from '../src/generate/pipeline.ts';
import { FIXTURES, maxAbsError, readFloats, removeDir, tempDir, vlmcInProcess, NO_TOKENIZER, expectOnlyWarnings } from './helpers.ts';

const work = tempDir('vlmc-hf-split-');
afterAll(() => removeDir(work));

describe('HF-native split artifact (qwen2-tiny exported with vlmc export --layout hf)', () => {
  const hf = path.join(work, 'hf');
  const split = path.join(work, 'split');
  const inputs = path.join(work, 'in.safetensors');

  it('builds, drops image_flags from the embedding graph, and runs without them', async () => {
    expect((await vlmcInProcess(['export', path.join(FIXTURES, 'qwen2-tiny/unified'), '--layout', 'hf', '--out', hf])).status).toBe(0);
    const b = await vlmcInProcess(['build', '--weights', hf, '--split', '--out', split]);
    expectOnlyWarnings(b.stderr, NO_TOKENIZER, /names no conversation template/);
    expect(readPipeline(split).graphs.embedding.inputs.map((i) => i.name)).toEqual(['input_ids', 'image_features']);
    const st = await SafetensorsFile.open(path.join(FIXTURES, 'qwen2-tiny/inputs.safetensors'));
    const tensors = [];
    for (const name of ['pixel_values', 'input_ids']) {
      const e = st.entry(name);
      tensors.push({ name, dtype: e.dtype, shape: [...e.shape], data: await st.readAll(e) });
    }
    await st.close();
    await writeSafetensors(inputs, tensors);
    const out = path.join(work, 'out.safetensors');
    expect((await vlmcInProcess(['run', split, '--inputs', inputs, '--out', out])).status).toBe(0);
    const expected = await readFloats(path.join(FIXTURES, 'qwen2-tiny/expected.safetensors'), 'logits');
    expect(maxAbsError(await readFloats(out, 'logits'), expected)).toBeLessThan(1e-4);
  });

  it('generates from inputs without image_flags', async () => {
    const g = await vlmcInProcess(['generate', split, '--inputs', inputs, '--max-new-tokens', '3', '--ignore-eos', '--json']);
    expect(g.status).toBe(0);
    expect(JSON.parse(g.stdout).tokens[0]).toHaveLength(3);
  });
});
