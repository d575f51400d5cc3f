/**
 * --opset 17 to 24: every opset vlmc has schemas for. Nodes move to the version in effect at the
 * target (drop-in upgrades, Reduce* axes as an input from 18); the result runs and computes the same.
 */
import { describe, it, expect, afterAll } from 'vitest';
import * as path from 'node:path';
import { compile } from '../src/compile.ts';
import { build } from '../src/build.ts';
import { loadGraphFile } from '../src/graph-file.ts';
import { openSession, run, type HostTensor } from '../src/runtime/session.ts';
import { MAX_KNOWN_OPSET } from '../src/ops/opset-history.generated.ts';
import { versionAt } from '../src/passes/opset.ts';
import { ROOT, tempDir, removeDir, maxAbsError } from './helpers.ts';

const TINY = path.join(ROOT, 'graphs/internvl-tiny.ts');
const work = tempDir('vlmc-opset-');
afterAll(() => removeDir(work));

describe('--opset', () => {
  it.each(Array.from({ length: MAX_KNOWN_OPSET - 16 }, (_, i) => 17 + i))('opset %i: every node at the version in effect there', async (opset) => {
    for (const target of ['portable', 'gpu'] as const) {
      const g = compile(await loadGraphFile(TINY), { opset, target });
      for (const n of g.nodes.filter((n) => n.domain === '' && n.op !== 'SimplifiedLayerNormalization')) expect(n.since, `${n.op} at ${opset}`).toBe(versionAt(n.op, opset));
      const mean = g.nodes.find((n) => n.op === 'ReduceMean');
      if (mean) expect(mean.inputs.length).toBe(opset >= 18 ? 2 : 1);
    }
  });

  it('rejects opsets past the schemas, naming the range', async () => {
    const model = await loadGraphFile(TINY);
    expect(() => compile(model, { opset: 25 })).toThrow(/opset 25 is newer than the schemas vlmc knows \(up to 24\)/);
  });

  it('opset 24 computes what opset 17 does (CPU EP)', async () => {
    const outputs: Record<string, HostTensor>[] = [];
    for (const opset of [17, 24]) {
      const out = path.join(work, String(opset));
      await build({ graph: TINY, out, seed: 1, init: 'random', opset });
      const s = await openSession(out);
      const ids = [1, 2, 3, ...Array(8).fill(153), 4, 5];
      outputs.push(
        await run(s, {
          pixel_values: { dtype: 'float32', shape: [2, 3, 56, 56], data: Float32Array.from({ length: 2 * 3 * 56 * 56 }, (_, i) => Math.cos(i * 0.1)) },
          input_ids: { dtype: 'int64', shape: [1, ids.length], data: BigInt64Array.from(ids, BigInt) },
          image_flags: { dtype: 'int64', shape: [2], data: BigInt64Array.of(1n, 1n) },
        }),
      );
      await s.release();
    }
    expect(maxAbsError(outputs[0]!.logits!.data as Float32Array, outputs[1]!.logits!.data as Float32Array)).toBeLessThanOrEqual(1e-5);
  });
});
