/**
 * Defect 2 of issue 8: `vlmc diff REV:graphs/x.ts graphs/x.ts` compiles the REV side with the
 * project files of that revision, so a change to the zoo, to a helper next to the graph, or to the
 * graph itself each shows. Defect 3: identical operands print nothing, in every format.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { ROOT, removeDir, tempDir, vlmcInProcess } from './helpers.ts';

const repo = path.join(tempDir('vlmc-diffrev-'), 'project');
afterAll(() => removeDir(path.dirname(repo)));

const git = (...args: string[]) => execFileSync('git', args, { cwd: repo, encoding: 'utf8', env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' } });
/** The project's own CLI, so the working-tree side uses the project's working-tree zoo. */
function projectVlmc(args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(repo, 'bin', 'vlmc.js'), ...args], { cwd: repo, encoding: 'utf8', env: { ...process.env, CI: '1' } });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function edit(file: string, from: string, to: string): void {
  const p = path.join(repo, file);
  const text = readFileSync(p, 'utf8');
  expect(text).toContain(from);
  writeFileSync(p, text.replace(from, to));
}

beforeAll(() => {
  for (const entry of ['package.json', 'tsconfig.json', 'bin', 'src']) cpSync(path.join(ROOT, entry), path.join(repo, entry), { recursive: true });
  cpSync(path.join(ROOT, 'graphs', 'internvl-tiny.ts'), path.join(repo, 'graphs', 'tiny.ts'));
  writeFileSync(path.join(repo, 'graphs', 'sizes.ts'), 'export const LLM_LAYERS = 2;\n');
  const text = readFileSync(path.join(repo, 'graphs', 'tiny.ts'), 'utf8');
  writeFileSync(path.join(repo, 'graphs', 'tiny.ts'), text.replace("from 'vlmc';", "from 'vlmc';\nimport { LLM_LAYERS } from './sizes.ts';").replace(/(llm: qwen2\(\{[^}]*?)layers: 2,/s, '$1layers: LLM_LAYERS,'));
  symlinkSync(realpathSync(path.join(ROOT, 'node_modules')), path.join(repo, 'node_modules'), 'dir');
  writeFileSync(path.join(repo, '.gitignore'), 'node_modules\n');
  git('init', '-q');
  git('add', '-A');
  git('commit', '-qm', 'base');
});

/**
 * The diff of the last commit against its parent, for graphs/tiny.ts. In this process: both sides
 * are revisions, each compiled by that revision's own vlmc in a child, so nothing of the working
 * tree (whose zoo the checkout's CLI would not see) takes part.
 */
function diffLastCommit(format = 'text') {
  return vlmcInProcess(['diff', 'HEAD~1:graphs/tiny.ts', 'HEAD:graphs/tiny.ts', '--format', format], repo);
}

describe('vlmc diff REV:path', () => {
  it('identical operands: exit 0 and no output, in every format', () => {
    for (const format of ['text', 'markdown']) {
      const r = projectVlmc(['diff', 'HEAD:graphs/tiny.ts', 'graphs/tiny.ts', '--format', format]);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toBe('');
    }
    const json = projectVlmc(['diff', 'graphs/tiny.ts', 'graphs/tiny.ts', '--format', 'json']);
    expect(json.status).toBe(0);
    expect(json.stdout).toBe('{}\n');
  });

  it('a change only to a zoo file (GELU removed from the projector) shows', async () => {
    edit('src/models/projector.ts', 'this[3].call(gelu(this[1].call(this[0].call(x))))', 'this[3].call(this[1].call(this[0].call(x)))');
    edit('src/models/projector.ts', 'import { LayerNorm, Linear, gelu, reshape }', 'import { LayerNorm, Linear, reshape }');
    git('commit', '-qam', 'projector without GELU');
    // Working tree = HEAD: the old revision against it.
    const r = projectVlmc(['diff', 'HEAD~1:graphs/tiny.ts', 'graphs/tiny.ts']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/mlp1: .*Gelu 1->0|mlp1: .*Erf 1->0/);
    // Both sides at revisions.
    expect((await diffLastCommit()).status).toBe(1);
    expect(projectVlmc(['lock', '--check', 'graphs/tiny.ts']).status).toBe(1);
  });

  it('a change only to a helper file next to the graph shows', async () => {
    writeFileSync(path.join(repo, 'graphs', 'sizes.ts'), 'export const LLM_LAYERS = 3;\n');
    git('commit', '-qam', 'one more LLM layer');
    const r = await diffLastCommit();
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('added    language_model.model.layers.2');
  });

  it('a change only to the graph shows', async () => {
    edit('graphs/tiny.ts', 'vocab: 160', 'vocab: 192');
    git('commit', '-qam', 'bigger vocabulary');
    const r = await diffLastCommit('json');
    expect(r.status).toBe(1);
    const d = JSON.parse(r.stdout);
    expect(d.params.reshaped.map((c: { name: string }) => c.name)).toContain('language_model.model.embed_tokens.weight');
  });

  it('a revision that tracked a node_modules link (to another checkout\'s folder) compiles with the installed packages', async () => {
    const link = execFileSync('git', ['hash-object', '-w', '--stdin'], { cwd: repo, input: '/nonexistent/checkout/node_modules', encoding: 'utf8' }).trim();
    git('update-index', '--add', '--cacheinfo', `120000,${link},node_modules`);
    git('commit', '-qm', 'a node_modules link tracked by mistake');
    try {
      const r = await vlmcInProcess(['diff', 'HEAD:graphs/tiny.ts', 'HEAD~1:graphs/tiny.ts'], repo);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    } finally {
      git('update-index', '--force-remove', 'node_modules');
      git('commit', '-qm', 'untracked again');
    }
  });

  it('a bad revision is exit 2 naming it', async () => {
    const r = await vlmcInProcess(['diff', 'no-such-rev:graphs/tiny.ts', 'graphs/tiny.ts'], repo);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('no-such-rev:graphs/tiny.ts');
  });
});
