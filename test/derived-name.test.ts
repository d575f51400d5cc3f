/** A derived graph (no graph file) is named after the checkpoint, as `vlmc init` names graph files. */
import { afterAll, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { FIXTURES, removeDir, tempDir, vlmcInProcess } from './helpers.ts';

const work = tempDir('vlmc-derived-name-');
afterAll(() => removeDir(work));

it("names a derived build after the checkpoint, not a generic folder ('unified') or --out", async () => {
  const out = path.join(work, 'art');
  expect((await vlmcInProcess(['build', '--weights', path.join(FIXTURES, 'qwen2-tiny/unified'), '--out', out, '--quiet'])).status).toBe(0);
  expect(JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8')).model).toBe('qwen2-tiny');
});
