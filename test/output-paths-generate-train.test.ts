/**
 * The later writing commands follow the output rules too: `vlmc generate --out` never replaces a
 * file vlmc did not write, and `vlmc train --out` never holds its own inputs. Checked before any work.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { generateCommand } from '../src/generate/cli.ts';
import { train } from '../src/train/loop.ts';
import { FIXTURES, removeDir, tempDir, vlmcInProcess } from './helpers.ts';

const work = tempDir('vlmc-out-later-');
afterAll(() => removeDir(work));

describe('generate --out and train --out', () => {
  const split = path.join(work, 'split');

  it('generate --out at a file vlmc did not write is refused and the file kept', async () => {
    expect((await vlmcInProcess(['build', '--weights', path.join(FIXTURES, 'qwen2-tiny/unified'), '--split', '--out', split])).status).toBe(0);
    const notes = path.join(work, 'notes.txt');
    writeFileSync(notes, 'keep me');
    await expect(generateCommand({ artifact: split, inputs: path.join(FIXTURES, 'qwen2-tiny/gen_inputs.safetensors'), out: notes, maxNewTokens: 1, write: () => {} })).rejects.toThrow(/notes\.txt: is a file vlmc did not write/);
    expect(readFileSync(notes, 'utf8')).toBe('keep me');
    await expect(generateCommand({ artifact: split, inputs: path.join(FIXTURES, 'qwen2-tiny/gen_inputs.safetensors'), out: path.join(split, 'gen.safetensors'), maxNewTokens: 1, write: () => {} })).rejects.toThrow(/lies inside the input folder/);
  });

  it('train --out that contains the training data is refused', async () => {
    const run = path.join(work, 'run');
    mkdirSync(run);
    const data = path.join(run, 'data.jsonl');
    writeFileSync(data, '{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}\n');
    await expect(train({ artifact: split, data, steps: 1, out: run, lr: 1e-3 })).rejects.toThrow(/contains the input .*data\.jsonl/);
    expect(readFileSync(data, 'utf8')).toContain('conversations');
  });
});
