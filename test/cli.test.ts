/** The acceptance interface of the CLI: exit codes, messages that name the problem, metadata. */
import { describe, it, expect, afterAll } from 'vitest';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { FIXTURES, ROOT, tempDir, removeDir, vlmc, vlmcInProcess } from './helpers.ts';
import { runCli } from '../src/cli/main.ts';
import { VLMC_VERSION } from '../src/version.ts';

const work = tempDir();
afterAll(() => removeDir(work));
const qwen = path.join(FIXTURES, 'qwen2-tiny');

function metadata(artifact: string): Record<string, string> {
  return JSON.parse(readFileSync(path.join(artifact, 'manifest.json'), 'utf8')).metadata;
}

describe('vlmc CLI', () => {
  it('--help exits 0', () => {
    // The one spawn of bin/vlmc.js in a checkout: the entry point starts (tsx, hooks, main).
    const r = vlmc(['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('build');
  });

  it('an unknown flag is bad input (exit 2)', async () => {
    const r = await vlmcInProcess(['build', '--weights', 'x', '--out', 'y', '--bogus']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("unknown option '--bogus'");
  });

  it('a missing checkpoint folder names the folder', async () => {
    const r = await vlmcInProcess(['build', '--weights', path.join(work, 'nope'), '--out', path.join(work, 'a')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('nope');
    expect(existsSync(path.join(work, 'a'))).toBe(false);
  });

  it('an unknown LLM architecture lists the supported ones', async () => {
    const ckpt = path.join(work, 'unknown-arch');
    cpSync(path.join(qwen, 'unified'), ckpt, { recursive: true });
    const cfg = JSON.parse(readFileSync(path.join(ckpt, 'config.json'), 'utf8'));
    cfg.llm_config.architectures = ['MambaForCausalLM'];
    writeFileSync(path.join(ckpt, 'config.json'), JSON.stringify(cfg));
    const r = await vlmcInProcess(['build', '--weights', ckpt, '--out', path.join(work, 'b')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("unknown LLM architecture 'MambaForCausalLM'");
    expect(r.stderr).toContain('Qwen2ForCausalLM, LlamaForCausalLM, InternLM2ForCausalLM, Phi3ForCausalLM');
  });

  describe('the <IMG_CONTEXT> id', () => {
    it('comes from the checkpoint tokenizer files when nothing else names it', async () => {
      const out = path.join(work, 'tok');
      expect((await vlmcInProcess(['build', '--weights', path.join(qwen, 'unified'), '--out', out])).status).toBe(0);
      expect(metadata(out)['vlmc.img_context_token_id']).toBe('153');
    });

    it('--img-context-token-id overrides the tokenizer files', async () => {
      const out = path.join(work, 'flag');
      expect((await vlmcInProcess(['build', '--weights', path.join(qwen, 'unified'), '--out', out, '--img-context-token-id', '99'])).status).toBe(0);
      expect(metadata(out)['vlmc.img_context_token_id']).toBe('99');
    });

    it("tokenizer_config.json's added_tokens_decoder is read when added_tokens.json is absent", async () => {
      const ckpt = path.join(work, 'decoder-only');
      cpSync(path.join(qwen, 'unified'), ckpt, { recursive: true });
      rmSync(path.join(ckpt, 'added_tokens.json'));
      const out = path.join(work, 'dec');
      expect((await vlmcInProcess(['build', '--weights', ckpt, '--out', out])).status).toBe(0);
      expect(metadata(out)['vlmc.img_context_token_id']).toBe('153');
    });

    it('a flag that disagrees with the graph file is an error naming both (never silently ignored)', async () => {
      const out = path.join(work, 'graph');
      const r = await vlmcInProcess(['build', 'graphs/internvl-tiny.ts', '--weights', path.join(qwen, 'unified'), '--out', out, '--img-context-token-id', '99']);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain('--img-context-token-id 99');
      expect(r.stderr).toContain('graphs/internvl-tiny.ts sets imgContextTokenId 153');
      expect(existsSync(out)).toBe(false);
    });

    it('is an error naming the ways to give it when nothing does', async () => {
      const ckpt = path.join(work, 'no-tokens');
      cpSync(path.join(qwen, 'unified'), ckpt, { recursive: true });
      rmSync(path.join(ckpt, 'added_tokens.json'));
      rmSync(path.join(ckpt, 'tokenizer_config.json'));
      const r = await vlmcInProcess(['build', '--weights', ckpt, '--out', path.join(work, 'none')]);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain('<IMG_CONTEXT> token id is unknown');
    });
  });
});

describe('runCli: the CLI inside a process', () => {
  it('leaves process.exitCode and the working folder as they were, and one call does not reach the next', async () => {
    const dir = path.join(work, 'run-cli');
    mkdirSync(dir);
    const graph = path.join(dir, 'g.ts');
    cpSync(path.join(ROOT, 'graphs', 'internvl-tiny.ts'), graph);
    const before = { exitCode: process.exitCode, cwd: process.cwd() };
    const stale = await runCli(['lock', '--check', graph], { cwd: dir });
    expect(stale).toEqual({ status: 1, stdout: `missing  ${path.join(dir, 'g.graph.lock')}\nrun \`npx vlmc lock\` and commit the result\n`, stderr: '' });
    const bad = await runCli(['build', '--weights', path.join(dir, 'nope'), '--out', path.join(dir, 'a')], { cwd: dir });
    expect(bad.status).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/^vlmc: .*nope/);
    expect({ exitCode: process.exitCode, cwd: process.cwd() }).toEqual(before);
    const version = await runCli(['--version']);
    expect(version).toEqual({ status: 0, stdout: `${VLMC_VERSION}\n`, stderr: '' });
  });
});
