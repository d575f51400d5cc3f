/**
 * Defect 12 of issue 8: vlmc works as an installed package and on graph files anywhere.
 * `npm pack` the package, install the tarball offline in a fresh folder (its dependencies are this
 * checkout's installed ones, linked in), write a graph file there importing `vlmc`, and run
 * `npx vlmc build` / `lock` / `diff` in it. Also: graph files outside any project, and a graph that
 * imports vlmc from another copy than the one compiling it.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { FIXTURES, ROOT, removeDir, tempDir, vlmc } from './helpers.ts';
import { compile } from '../src/index.ts';

const work = tempDir('vlmc-package-');
afterAll(() => removeDir(work));
const project = path.join(work, 'user-project');

const GRAPH = `import { internvl, internViT, qwen2, preset } from 'vlmc';

export default internvl({
  name: 'user-tiny',
  vision: internViT({ hidden: 32, heads: 4, layers: 2, intermediate: 64, imageSize: 56, patchSize: 14, norm: 'layer_norm', qkvBias: true, qkNorm: false, eps: 1e-6 }),
  llm: qwen2({ hidden: 48, heads: 4, kvHeads: 2, layers: 2, intermediate: 96, vocab: 160, rmsNormEps: 1e-6, ropeTheta: 1e6, maxPositions: 32768, tieEmbeddings: true }),
  downsampleRatio: 0.5,
  psVersion: 'v2',
  selectLayer: -1,
  imgContextTokenId: 153,
  train: preset('stage1'),
});
`;

const env = { ...process.env, CI: '1', npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };

function run(cmd: string, args: string[], cwd = project) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const git = (...args: string[]) => execFileSync('git', args, { cwd: project, encoding: 'utf8', env: { ...env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' } });

beforeAll(() => {
  const pack = run('npm', ['pack', '--pack-destination', work, '--silent'], ROOT);
  expect(pack.status, pack.stderr).toBe(0);
  const tarball = path.join(work, pack.stdout.trim().split('\n').pop()!);
  mkdirSync(project);
  writeFileSync(path.join(project, 'package.json'), `${JSON.stringify({ name: 'user-project', version: '1.0.0', private: true }, null, 2)}\n`);
  // Offline: vlmc's dependencies are this checkout's installed ones, linked in (npm keeps a link that
  // satisfies the range and never fetches it).
  const deps = Object.keys((JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies);
  const installed = realpathSync(path.join(ROOT, 'node_modules'));
  for (const dep of deps) {
    mkdirSync(path.dirname(path.join(project, 'node_modules', dep)), { recursive: true });
    symlinkSync(path.join(installed, dep), path.join(project, 'node_modules', dep), 'dir');
  }
  const install = run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball]);
  expect(install.status, install.stderr).toBe(0);
  writeFileSync(path.join(project, 'model.ts'), GRAPH);
}, 300_000);

describe('an installed vlmc package', () => {
  it('installs the files vlmc needs and its bin', () => {
    const pkg = path.join(project, 'node_modules', 'vlmc');
    expect(existsSync(path.join(pkg, 'bin', 'vlmc.js'))).toBe(true);
    expect(existsSync(path.join(pkg, 'src', 'index.ts'))).toBe(true);
    expect(existsSync(path.join(pkg, 'src', 'loader', 'graph-hooks.mjs'))).toBe(true);
    expect(existsSync(path.join(project, 'node_modules', '.bin', 'vlmc'))).toBe(true);
    // Tests, benchmarks and lock files stay out of the package.
    expect(readdirSync(pkg).sort()).toEqual(['README.md', 'bin', 'docs', 'graphs', 'package.json', 'src']);
  });

  it('npx vlmc build / lock / diff / view work on a graph file in the project', () => {
    const build = run('npx', ['--offline', 'vlmc', 'build', 'model.ts', '--out', 'art', '--init', 'random']);
    expect(build.stderr).toBe('');
    expect(build.status).toBe(0);
    expect(JSON.parse(readFileSync(path.join(project, 'art', 'manifest.json'), 'utf8')).model).toBe('user-tiny');

    const lock = run('npx', ['--offline', 'vlmc', 'lock', 'model.ts']);
    expect(lock.stderr).toBe('');
    expect(lock.status).toBe(0);
    expect(readFileSync(path.join(project, 'model.graph.lock'), 'utf8')).toContain('name user-tiny');
    expect(run('npx', ['--offline', 'vlmc', 'lock', '--check', 'model.ts']).status).toBe(0);

    const same = run('npx', ['--offline', 'vlmc', 'diff', 'model.ts', 'art']);
    expect(same.stderr).toBe('');
    expect(same.status).toBe(0);
    expect(same.stdout).toBe('');

    // The page's script and styles ship with the package and are read from it.
    const view = run('npx', ['--offline', 'vlmc', 'view', 'art', '--out', 'view.html']);
    expect(view.stderr).toBe('');
    expect(view.status).toBe(0);
    expect(readFileSync(path.join(project, 'view.html'), 'utf8')).toContain('squarify');
  });

  it('npx vlmc diff REV:model.ts model.ts in the project', () => {
    writeFileSync(path.join(project, '.gitignore'), 'node_modules\nart\n');
    git('init', '-q');
    git('add', '-A');
    git('commit', '-qm', 'model');
    writeFileSync(path.join(project, 'model.ts'), GRAPH.replace('layers: 2, intermediate: 96', 'layers: 3, intermediate: 96'));
    const r = run('npx', ['--offline', 'vlmc', 'diff', 'HEAD:model.ts', 'model.ts']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('added    language_model.model.layers.2');
    writeFileSync(path.join(project, 'model.ts'), GRAPH);
  });

  it("this checkout's CLI builds the project's graph, whose 'vlmc' is another copy", () => {
    const r = vlmc(['build', path.join(project, 'model.ts'), '--out', path.join(work, 'by-checkout'), '--init', 'random']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('a model made with another copy of vlmc compiles with this one (one graph being traced)', async () => {
    const other = (await import(path.join(project, 'node_modules', 'vlmc', 'src', 'index.ts'))) as typeof import('../src/index.ts');
    const model = other.internvl({
      name: 'other-copy',
      vision: other.internViT({ hidden: 32, heads: 4, layers: 1, intermediate: 64, imageSize: 56, patchSize: 14, norm: 'layer_norm', qkvBias: true, qkNorm: false, eps: 1e-6 }),
      llm: other.qwen2({ hidden: 48, heads: 4, kvHeads: 2, layers: 1, intermediate: 96, vocab: 160, rmsNormEps: 1e-6, ropeTheta: 1e6, maxPositions: 32768, tieEmbeddings: true }),
      downsampleRatio: 0.5,
      psVersion: 'v2',
      selectLayer: -1,
      imgContextTokenId: 153,
    });
    const graph = compile(model);
    expect(graph.outputs.map((v) => v.name)).toEqual(['logits', 'vit_embeds']);
  });
});

describe('graph files outside any project', () => {
  it('vlmc init --out ../elsewhere/x.ts, then build and lock it', () => {
    const elsewhere = path.join(work, 'elsewhere');
    const graph = path.join(elsewhere, 'x.ts');
    const init = vlmc(['init', '--from', path.join(FIXTURES, 'qwen2-tiny', 'unified'), '--out', path.relative(ROOT, graph)]);
    expect(init.stderr).toBe('');
    expect(init.status).toBe(0);
    const build = vlmc(['build', graph, '--weights', path.join(FIXTURES, 'qwen2-tiny', 'unified'), '--out', path.join(elsewhere, 'art')]);
    expect(build.stderr).toBe('');
    expect(build.status).toBe(0);
    expect(vlmc(['lock', graph]).status).toBe(0);
    expect(existsSync(path.join(elsewhere, 'x.graph.lock'))).toBe(true);
  });
});
