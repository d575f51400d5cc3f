/**
 * The CLI's conventions for the smaller things: structure-only builds, `--init random`, the API's
 * dtype names, `--quiet` and the progress line, one glob language, `init` naming and its lock,
 * flags that would do nothing refused, and a clear stop when the shared fixtures are missing
 * (issue 8 defect 13, issue 16 defects 7 and 8).
 */
import { describe, it, expect, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { FIXTURES, ROOT, removeDir, tempDir, vlmcInProcess } from './helpers.ts';
import { build, UserError } from '../src/index.ts';
import { size, timing } from '../src/cli/progress.ts';
import { pathGlob } from '../src/bind/plan.ts';
import { checkpointName } from '../src/init/name.ts';

const work = tempDir('vlmc-fixes-');
afterAll(() => removeDir(work));
const unified = path.join(FIXTURES, 'qwen2-tiny', 'unified');
const inputs = path.join(FIXTURES, 'qwen2-tiny', 'inputs.safetensors');
const graph = path.join(ROOT, 'graphs', 'internvl-tiny.ts');
const manifestOf = (dir: string) => JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));

describe('vlmc build without weights', () => {
  it('writes a structure-only artifact (no values on disk) that vlmc run refuses', async () => {
    const out = path.join(work, 'structure');
    const r = await vlmcInProcess(['build', graph, '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('structure only');
    const m = manifestOf(out);
    expect(m.build.structure_only).toBe(true);
    expect(m.parameters[0].sha256).toBeUndefined();
    const data = statSync(path.join(out, 'model.onnx.data'));
    expect(data.size).toBeGreaterThanOrEqual(m.counts.total * 4);
    expect(data.blocks * 512).toBeLessThan(data.size / 4); // sparse: no disk space for the values
    // It reviews like any artifact.
    const d = await vlmcInProcess(['diff', graph, out]);
    expect(d.stdout).toBe('');
    expect(d.status).toBe(0);
    const run = await vlmcInProcess(['run', out, '--inputs', inputs, '--out', path.join(work, 'structure.safetensors')]);
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('structure-only artifact');
    expect(run.stderr).toContain('--init random');
  });

  it('--init random initialises every parameter, and the artifact runs', async () => {
    const out = path.join(work, 'random');
    const r = await vlmcInProcess(['build', graph, '--out', out, '--init', 'random', '--seed', '2', '--quiet']);
    expect(r.status).toBe(0);
    // --quiet hides the progress bar only; the summary line stays.
    expect(r.stdout).toMatch(/random: 64 tensors, 95,024 parameters/);
    expect(manifestOf(out).build.structure_only).toBeUndefined();
    expect((await vlmcInProcess(['run', out, '--inputs', inputs, '--out', path.join(work, 'random.safetensors')])).status).toBe(0);
  });

  it('--init random with weights, or an unknown --init, is bad input', async () => {
    expect((await vlmcInProcess(['build', '--weights', unified, '--init', 'random', '--out', path.join(work, 'x')])).stderr).toContain('--init random builds without weights');
    expect((await vlmcInProcess(['build', graph, '--init', 'zeros', '--out', path.join(work, 'y')])).status).toBe(2);
  });
});

describe('the build API', () => {
  it("accepts dtype 'fp16' / 'bf16' / 'fp32' as well as the long names", async () => {
    const { manifest } = await build({ weights: unified, out: path.join(work, 'api-fp16'), dtype: 'fp16' });
    expect(manifest.build.dtype).toBe('float16');
    const long = await build({ weights: unified, out: path.join(work, 'api-bf16'), dtype: 'bfloat16' });
    expect(long.manifest.build.dtype).toBe('bfloat16');
    await expect(build({ weights: unified, out: path.join(work, 'api-bad'), dtype: 'int8' as never })).rejects.toThrow(/dtype 'int8' is not one of fp32, fp16, bf16/);
  });

  it('Path B as api.md shows it ({ vision, llm, seed, out })', async () => {
    const fx = path.join(FIXTURES, 'qwen2-tiny');
    const { manifest } = await build({ vision: path.join(fx, 'vision'), llm: path.join(fx, 'llm'), seed: 0, out: path.join(work, 'api-b') });
    expect(manifest.build.path).toBe('B');
    // Without `out`: a UserError, not a TypeError.
    await expect(build({ vision: path.join(fx, 'vision'), llm: path.join(fx, 'llm'), seed: 0 } as never)).rejects.toThrow(UserError);
  });
});

describe('the progress line', () => {
  it('shows sizes in a unit that reads, and no ETA before it means something', () => {
    expect(size(180_600)).toBe('180.6 KB');
    expect(size(12_300_000)).toBe('12.3 MB');
    expect(size(4_560_000_000)).toBe('4.56 GB');
    expect(timing(1000, 380_000, 0.004)).toBe('');
    expect(timing(380_000, 380_000, 0.1)).toBe('  0.1s');
    expect(timing(1e9, 4e9, 2)).toBe('  500.0 MB/s  ETA 6s');
  });
});

describe('one glob language', () => {
  it('--allow-missing / --ignore-unexpected globs match as freeze rules do', () => {
    expect(pathGlob('mlp1').test('mlp1.0.bias')).toBe(true);
    expect(pathGlob('mlp1.*').test('mlp1.0.bias')).toBe(true);
    expect(pathGlob('*.bias').test('mlp1.0.bias')).toBe(false); // `*` is one segment
    expect(pathGlob('**.bias').test('mlp1.0.bias')).toBe(true);
    expect(pathGlob('language_model.model.layers.0-1.mlp').test('language_model.model.layers.1.mlp.up_proj.weight')).toBe(true);
    expect(pathGlob('language_model.model.layers.0-1.mlp').test('language_model.model.layers.2.mlp.up_proj.weight')).toBe(false);
    expect(() => pathGlob('mlp*', '--allow-missing')).toThrow(/--allow-missing 'mlp\*'.*mixes '\*'/); // no partial-segment wildcards: refused, never a silent no-match
  });
});

describe('vlmc init', () => {
  it("names the graph after the checkpoint's own name", () => {
    expect(checkpointName('/x/unified', { _name_or_path: 'OpenGVLab/InternVL2_5-1B' })).toBe('InternVL2_5-1B');
    expect(checkpointName('/data/InternVL3-2B', {})).toBe('InternVL3-2B');
    expect(checkpointName('/data/qwen2-tiny/unified', {})).toBe('qwen2-tiny');
    expect(checkpointName(`/h/hub/models--OpenGVLab--InternVL2-4B/snapshots/${'a'.repeat(40)}`, {})).toBe('InternVL2-4B');
    expect(checkpointName('/runs/my-run/checkpoint-500', { _name_or_path: '/runs/base/unified' })).toBe('my-run');
  });

  it('writes graphs/<name>.ts and its lock, so lock --check passes at once', async () => {
    const project = path.join(work, 'init-project');
    mkdirSync(project);
    const ckpt = path.join(work, 'InternVL-Fixture', 'unified');
    cpSync(unified, ckpt, { recursive: true });
    const r = await vlmcInProcess(['init', '--from', ckpt], project);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('wrote graphs/InternVL-Fixture.ts\nwrote graphs/InternVL-Fixture.graph.lock\n');
    const check = await vlmcInProcess(['lock', '--check', 'graphs/InternVL-Fixture.ts'], project);
    expect(check.stdout).toBe('1 lock up to date\n');
    expect(check.status).toBe(0);
  });
});

describe('npm test without the shared fixtures', () => {
  it('stops with one clear message instead of skipping', () => {
    const probe = path.join(ROOT, 'test', `.fixtures-probe-${process.pid}.test.ts`);
    writeFileSync(probe, "import { it } from 'vitest';\nit('runs', () => {});\n");
    try {
      const r = spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', path.relative(ROOT, probe)], {
        cwd: ROOT,
        encoding: 'utf8',
        env: { ...process.env, VLMC_FIXTURES: path.join(work, 'no-fixtures-here'), CI: '1' },
      });
      expect(r.status).not.toBe(0);
      expect(r.stdout + r.stderr).toContain('the reference fixtures are missing: npm test reads them from');
    } finally {
      removeDir(probe);
    }
  });
});

describe('issue 16 defect 7: build flags that would do nothing are refused, naming the flag', () => {
  const refused = async (args: string[], ...parts: string[]) => {
    const out = path.join(work, `nothing-${args.join('-').replace(/[^a-z0-9-]/gi, '')}`);
    const r = await vlmcInProcess(['build', '--weights', unified, '--out', out, ...args]);
    expect({ args, status: r.status }).toEqual({ args, status: 2 });
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    for (const p of parts) expect(r.stderr).toContain(p);
    expect(() => statSync(out)).toThrow();
  };

  it('--quant-block / --quant-zero-points without --quant', async () => {
    await refused(['--quant-block', '64'], '--quant-block shapes --quant int4|int8, which was not given');
    await refused(['--quant-zero-points'], '--quant-zero-points shapes --quant');
    await refused(['--target', 'gpu', '--quant-block', '64', '--quant-zero-points'], '--quant-block and --quant-zero-points shape --quant');
  });

  it('--allow-missing / --ignore-unexpected globs that match nothing', async () => {
    await refused(['--allow-missing', 'mlp2.**'], "--allow-missing 'mlp2.**' matches no parameter of the graph");
    await refused(['--ignore-unexpected', 'extra.**'], "--ignore-unexpected 'extra.**' matches no key of the checkpoint", unified);
    // Globs that match something still work as before (tested in binding.test.ts): the parameter exists, the key is used.
    const ok = await vlmcInProcess(['build', '--weights', unified, '--out', path.join(work, 'globs-ok'), '--allow-missing', 'mlp1.**', '--ignore-unexpected', 'mlp1.**']);
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
  });
});

describe('issue 16 defect 8: a --downsample-ratio that does not fit the checkpoint is blamed on the flag', () => {
  it('the binding report names the flag beside config.json', async () => {
    const r = await vlmcInProcess(['build', '--weights', unified, '--out', path.join(work, 'ratio'), '--downsample-ratio', '0.25']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`the checkpoint does not match the graph from ${path.join(unified, 'config.json')} with --downsample-ratio 0.25 (3 problems)`);
    expect(r.stderr).toContain('mlp1.0.weight: graph [512], checkpoint [128]');
  });
});
