/**
 * The layer rules (.dependency-cruiser.cjs, docs/architecture.md "Layers"): no import cycle, type-only
 * imports included, and every module imports only from its own layer and those below. Runs
 * dependency-cruiser in-process over src/.
 */
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { cruise, type ICruiseResult } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CONFIG = path.join(ROOT, '.dependency-cruiser.cjs');

interface Layer {
  name: string;
  what: string;
  paths: string[];
}
const { layers } = createRequire(import.meta.url)(CONFIG) as { layers: Layer[] };

/** The layers a file under src/ belongs to: by its own name where a layer names it, else by its folder. */
function layersOf(file: string): string[] {
  const byName = layers.filter((l) => l.paths.includes(file)).map((l) => l.name);
  if (byName.length > 0) return byName;
  return layers.filter((l) => l.paths.some((p) => p.endsWith('/') && file.startsWith(p))).map((l) => l.name);
}

/** Every source file under src/, as the repository-relative path dependency-cruiser reports. */
function sourceFiles(dir = 'src'): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) return sourceFiles(rel);
    return /\.(ts|mjs|js)$/.test(e.name) ? [rel] : [];
  });
}

/** One line per violation: the rule, then the import (or the cycle) that breaks it. */
function describeViolation(v: ICruiseResult['summary']['violations'][number]): string {
  const cycle = v.cycle?.map((step) => step.name);
  const where = cycle ? [v.from, ...cycle].join(' -> ') : v.from === v.to ? v.from : `${v.from} -> ${v.to}`;
  return `${v.rule.name}: ${where}`;
}

describe('layers', () => {
  let result: ICruiseResult;
  beforeAll(async () => {
    const cwd = process.cwd();
    process.chdir(ROOT);
    try {
      const options = await extractDepcruiseOptions(CONFIG);
      const output = await cruise(['src'], options, { extensions: ['.ts', '.mjs', '.js'] }, { tsConfig: extractTSConfig(path.join(ROOT, 'tsconfig.json')) });
      result = output.output as ICruiseResult;
    } finally {
      process.chdir(cwd);
    }
  });

  it('no import cycle, and every import goes to the same layer or one below', () => {
    expect(result.summary.violations.map(describeViolation)).toEqual([]);
  });

  it('cover every source file, each in exactly one layer', () => {
    const files = sourceFiles();
    const cruised = new Set(result.modules.map((m) => m.source));
    expect(files.filter((f) => !cruised.has(f))).toEqual([]);
    expect(files.map((f) => [f, layersOf(f)]).filter(([, l]) => l.length !== 1)).toEqual([]);
  });

  it('see type-only and dynamic imports', () => {
    const deps = result.modules.flatMap((m) => m.dependencies.map((d) => ({ from: m.source, ...d })));
    // A cycle or an upward import made of types, or loaded on demand, counts too: one known edge of each.
    expect(deps.some((d) => d.from === 'src/artifact/write.ts' && d.resolved === 'src/ir/graph.ts' && d.dependencyTypes.includes('type-only'))).toBe(true);
    expect(deps.some((d) => d.from === 'src/cli/commands/build.ts' && d.resolved === 'src/build.ts' && d.dynamic)).toBe(true);
  });
});
