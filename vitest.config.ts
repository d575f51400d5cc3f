import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';
import { availableParallelism } from 'node:os';

export default defineConfig({
  resolve: { alias: { vlmc: fileURLToPath(new URL('./src/index.ts', import.meta.url)) } },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // One worker per core: vitest's default is cores - 1, which on a 2-core machine runs the files
    // one at a time while most of them wait on child processes, files and the browser.
    maxWorkers: availableParallelism(),
  },
});
