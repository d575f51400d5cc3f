/** Every graph in graphs/ has a lock file, and it is up to date (`npx vlmc lock` regenerates). */
import { describe, it, expect } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { ROOT, vlmc, vlmcInProcess } from './helpers.ts';
import { checkLocks } from '../src/review/index.ts';

const graphs = readdirSync(path.join(ROOT, 'graphs'))
  .filter((f) => f.endsWith('.ts'))
  .sort()
  .map((f) => path.join(ROOT, 'graphs', f));

describe('graph locks', () => {
  it('exist and are up to date for every graph in graphs/', async () => {
    const { stale, missing } = await checkLocks(graphs);
    expect(missing, 'run `npx vlmc lock` and commit the locks').toEqual([]);
    expect(stale, 'run `npx vlmc lock` and commit the locks').toEqual([]);
  });

  it('vlmc lock --check exits 0 when fresh and 1 when a lock is missing or stale', async () => {
    const dir = path.join(ROOT, 'out', `test-locks-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    try {
      const graph = path.join(dir, 'variant.ts');
      copyFileSync(path.join(ROOT, 'graphs/internvl-tiny.ts'), graph);
      const missing = await vlmcInProcess(['lock', '--check', graph]);
      expect(missing.status).toBe(1);
      expect(missing.stdout).toContain('missing');
      expect((await vlmcInProcess(['lock', graph])).status).toBe(0);
      expect(existsSync(path.join(dir, 'variant.graph.lock'))).toBe(true);
      expect((await vlmcInProcess(['lock', '--check', graph])).status).toBe(0);
      writeFileSync(graph, readFileSync(graph, 'utf8').replace('intermediate: 96', 'intermediate: 128'));
      // A new process: this one has the graph file cached as it was before the edit.
      const stale = vlmc(['lock', '--check', graph]);
      expect(stale.status).toBe(1);
      expect(stale.stdout).toContain('stale');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
