/**
 * Issue 16: the README's and docs/training.md's commands run verbatim, in order, on what `npm start`
 * writes. Every shell block of both files is read as a user would type it: `npm start` runs the
 * demo, `npx vlmc ...` the CLI (in-process, through runCli), both in a fresh folder that sees this checkout's graphs/; each must
 * exit 0 with nothing on stderr. A block that should not run (a synopsis) is `text`, not `sh`.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, symlinkSync } from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ROOT, removeDir, tempDir, vlmcInProcess } from './helpers.ts';
import { NO_ADAPTER_ENV, SWIFTSHADER_ICD, lastLine, swiftshaderEnv, vlmcWithEnv } from './webgpu-env.ts';

const DOCS = ['README.md', 'docs/training.md'];

/** The commands of a markdown file's ```sh blocks, each split into words as a shell would (quotes; an unquoted # starts a comment). */
export function shellCommands(markdown: string): string[][] {
  const blocks = [...markdown.matchAll(/^```sh\n([\s\S]*?)^```/gm)].map((m) => m[1]!);
  return blocks.flatMap((b) => b.split('\n')).map(words).filter((w) => w.length > 0);
}

function words(line: string): string[] {
  const out: string[] = [];
  let word: string | undefined;
  let quote: string | undefined;
  for (const ch of line) {
    if (quote) {
      if (ch === quote) quote = undefined;
      else word = (word ?? '') + ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      word ??= '';
    } else if (ch === '#' && word === undefined) break;
    else if (/\s/.test(ch)) {
      if (word !== undefined) out.push(word);
      word = undefined;
    } else word = (word ?? '') + ch;
  }
  if (quote) throw new Error(`unclosed quote in: ${line}`);
  if (word !== undefined) out.push(word);
  return out;
}

/** What a documented command runs: vlmc's arguments, or undefined for the npm commands a walkthrough does not repeat (install, test). */
function vlmcArgs(command: string[]): string[] | undefined {
  const [tool, sub, ...rest] = command;
  if (tool === 'npm' && sub === 'start') return ['demo'];
  if (tool === 'npm' && (sub === 'install' || sub === 'ci' || sub === 'test')) return undefined;
  if (tool === 'npx' && sub === 'vlmc') return rest;
  throw new Error(`a documented command that is neither npm nor npx vlmc: ${command.join(' ')} (make its block \`text\` if it is not meant to run)`);
}

const webgpu = (args: string[]) => args.join(' ').includes('--ep webgpu');

describe('the walkthrough (README.md, docs/training.md) on what npm start writes', () => {
  const work = tempDir('vlmc-walkthrough-');
  afterAll(() => removeDir(work));
  symlinkSync(path.join(ROOT, 'graphs'), path.join(work, 'graphs'));

  /**
   * A `--ep webgpu` command runs on SwiftShader's Vulkan adapter (as test/webgpu.test.ts runs them);
   * Dawn's own `Warning:` lines about Vulkan are not vlmc's. Without SwiftShader it must stop with
   * the documented exit 2 naming the missing adapter, which then stands for success here.
   */
  function webgpuRun(args: string[]) {
    if (!SWIFTSHADER_ICD) {
      const r = vlmcWithEnv(NO_ADAPTER_ENV, args);
      expect(lastLine(r.stderr)).toMatch(/--ep webgpu: ONNX Runtime found no WebGPU adapter/);
      return { status: r.status === 2 ? 0 : r.status, stderr: '' };
    }
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/vlmc.js'), ...args], { cwd: work, encoding: 'utf8', env: { ...process.env, CI: '1', ...swiftshaderEnv() } });
    return { status: r.status ?? -1, stderr: r.stderr.split('\n').filter((l) => l !== '' && !/^Warning:|^\s/.test(l)).join('\n') };
  }

  it('the shell blocks are parsed as a shell reads them', () => {
    expect(shellCommands('```sh\nnpx vlmc a --p "b c" # note\n# only a comment\nnpm install   # x\n```\n')).toEqual([['npx', 'vlmc', 'a', '--p', 'b c'], ['npm', 'install']]);
  });

  it('every command runs as written: exit 0, nothing on stderr', async () => {
    const commands = DOCS.flatMap((doc) => shellCommands(readFileSync(path.join(ROOT, doc), 'utf8')).map((c) => ({ doc, c })));
    expect(commands[0]!.c).toEqual(['npm', 'install']);
    const run = commands.map(({ doc, c }) => ({ doc, c, args: vlmcArgs(c) })).filter((x) => x.args !== undefined);
    expect(run[0]!.args).toEqual(['demo']);
    // Each documented output shows up where the docs say.
    for (const { doc, c, args } of run) {
      // In this process (the CLI's own parsing and dispatch, as bin/vlmc.js runs them), but for
      // WebGPU, whose environment must be set before a process starts.
      const r = webgpu(args!) ? webgpuRun(args!) : await vlmcInProcess(args!, work);
      expect({ doc, command: c.join(' '), status: r.status, stderr: r.stderr }).toEqual({ doc, command: c.join(' '), status: 0, stderr: '' });
    }
    for (const f of ['out/internvl-tiny-checkpoint/tokenizer.json', 'out/split/pipeline.json', 'in.safetensors', 'result.safetensors', 'gen.safetensors', 'runs/s1/checkpoint-10/model.safetensors', 'runs/s2/checkpoint-20/model.safetensors']) {
      expect(existsSync(path.join(work, f)), f).toBe(true);
    }
  }, 240_000);

  it('the demo tokenizer loads with @huggingface/tokenizers and carries the template\'s and the image splice\'s special tokens', async () => {
    const { loadTokenizer } = await import('../src/tokenizer/index.ts');
    const tok = loadTokenizer(path.join(work, 'out/internvl-tiny-checkpoint'));
    expect([tok.tokenId('<|im_start|>'), tok.tokenId('<|im_end|>'), tok.tokenId('<img>'), tok.tokenId('</img>'), tok.tokenId('<IMG_CONTEXT>'), tok.tokenId('<|endoftext|>')]).toEqual([154, 155, 151, 152, 153, 150]);
    const ids = tok.encode('<|im_start|>user\nHi<IMG_CONTEXT></img><|im_end|>');
    expect(ids).toEqual([154, 86, 84, 70, 83, 96, 41, 74, 153, 152, 155]);
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('user\nHi');
    const config = JSON.parse(readFileSync(path.join(work, 'out/internvl-tiny-checkpoint/config.json'), 'utf8'));
    expect(config.template).toBe('Hermes-2');
    expect(tok.eosIdFor((await import('../src/prompt/templates.ts')).getTemplate('Hermes-2'))).toBe(155);
  });
});
