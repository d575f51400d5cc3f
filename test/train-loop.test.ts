/**
 * `vlmc train` end to end on a fixture: Path B (vision + LLM, new projector) -> stage 1 -> saved
 * unified checkpoint -> Path A -> stage 2, the loss falling in both; resume; the answer-only labels.
 * The fixture LLM has no tokenizer.json, so a character-level one is written into a temporary
 * copy of its folder, with the fixture's own <img>/</img>/<IMG_CONTEXT> ids.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { cpSync, readFileSync, readdirSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { FIXTURES, tempDir, removeDir, vlmc, vlmcInProcess } from './helpers.ts';
import { SafetensorsFile } from '../src/checkpoint/safetensors.ts';
import { encodeSample, readJsonl } from '../src/train/data.ts';
import { readRequestConfig } from '../src/inputs/config.ts';
import { loadTokenizer } from '../src/tokenizer/index.ts';
import type { Manifest } from '../src/artifact/format.ts';
import { charTokenizer } from './char-tokenizer.ts';

const fx = path.join(FIXTURES, 'qwen2-tiny');
const IMAGE = path.join(FIXTURES, 'preprocess/images/png_rgb_47x31.png');

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('vlmc train: Path B -> stage 1 -> Path A -> stage 2', () => {
  let work: string;
  let data: string;
  beforeAll(() => {
    work = tempDir();
    cpSync(path.join(fx, 'vision'), path.join(work, 'vision'), { recursive: true });
    cpSync(path.join(fx, 'llm'), path.join(work, 'llm'), { recursive: true });
    writeFileSync(path.join(work, 'llm/tokenizer.json'), JSON.stringify(charTokenizer()));
    cpSync(IMAGE, path.join(work, 'cat.png'));
    data = path.join(work, 'data.jsonl');
    const lines = [
      { image: 'cat.png', conversations: [{ from: 'human', value: '<image>\nwhat is it?' }, { from: 'gpt', value: 'a cat.' }] },
      { image: 'cat.png', conversations: [{ from: 'human', value: 'colour?' }, { from: 'gpt', value: 'red' }, { from: 'human', value: 'sure?' }, { from: 'gpt', value: 'yes' }] },
    ];
    writeFileSync(data, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  });
  afterAll(() => removeDir(work));

  it('labels only the answers (and their end-of-turn token), as the dataset code masks them', async () => {
    const a = path.join(work, 'labels-artifact');
    const b = await vlmcInProcess(['build', '--vision', path.join(work, 'vision'), '--llm', path.join(work, 'llm'), '--out', a, '--train', '--preset', 'stage1', '--quiet']);
    expect(b.stderr).toBe('');
    const config = readRequestConfig(a);
    const tokenizer = loadTokenizer(a);
    const [first, second] = readJsonl(data);
    const e1 = await encodeSample(first!, { config, tokenizer, imageRoot: work });
    const labelled = e1.labels.filter((l) => l !== -100);
    expect(labelled).toEqual(tokenizer.encodeRaw('a cat.<|im_end|>'));
    expect(e1.inputIds.filter((id) => id === 153).length).toBe(e1.tiles * config.tokensPerTile);
    // No <image> in the text: the image goes before the first question.
    const e2 = await encodeSample(second!, { config, tokenizer, imageRoot: work });
    expect(e2.labels.filter((l) => l !== -100)).toEqual(tokenizer.encodeRaw('red<|im_end|>yes<|im_end|>'));
    // The prompt: system, then the image block before the first question.
    expect(tokenizer.decode(e2.inputIds, { skipSpecialTokens: false }).replace(/ /g, '')).toContain('user\n<img><IMG_CONTEXT>');
    expect(e2.inputIds.filter((id) => id === 153).length).toBe(e2.tiles * config.tokensPerTile);
  });

  it('trains, saves a checkpoint Path A builds, trains stage 2 from it, and resumes', async () => {
    const a1 = path.join(work, 'stage1-artifact');
    expect((await vlmcInProcess(['build', '--vision', path.join(work, 'vision'), '--llm', path.join(work, 'llm'), '--seed', '3', '--out', a1, '--train', '--preset', 'stage1', '--quiet'])).status).toBe(0);
    const t1 = path.join(work, 'stage1');
    // A process of its own: its stderr is the whole process's, onnxruntime's native logging included.
    const r1 = vlmc(['train', a1, '--data', data, '--steps', '6', '--lr', '1e-2', '--grad-accum', '2', '--out', t1]);
    expect(r1.stderr).toBe('');
    expect(r1.status).toBe(0);
    const losses1 = [...r1.stdout.matchAll(/loss (\S+)/g)].map((m) => Number(m[1]));
    expect(losses1).toHaveLength(6);
    expect(losses1[5]!).toBeLessThan(losses1[0]!);

    const ckpt = path.join(t1, 'checkpoint-6');
    for (const f of ['model.safetensors', 'config.json', 'tokenizer.json', 'added_tokens.json', 'optimizer.safetensors', 'trainer_state.json']) expect(existsSync(path.join(ckpt, f)), f).toBe(true);

    // Path A from the saved checkpoint binds the trained projector byte for byte.
    const a2 = path.join(work, 'stage2-artifact');
    const b2 = await vlmcInProcess(['build', '--weights', ckpt, '--out', a2, '--train', '--preset', 'stage2', '--quiet']);
    expect(b2.stderr).toBe('');
    expect(b2.status).toBe(0);
    const manifest = JSON.parse(readFileSync(path.join(a2, 'manifest.json'), 'utf8')) as Manifest;
    const saved = await SafetensorsFile.open(path.join(ckpt, 'model.safetensors'));
    for (const p of manifest.parameters.filter((q) => q.name.startsWith('mlp1.'))) {
      expect(p.sha256, p.name).toBe(sha256(await saved.readAll(saved.entry(p.name))));
    }
    expect(saved.keys().length).toBe(manifest.parameters.length);
    await saved.close();

    const t2 = path.join(work, 'stage2');
    const r2 = await vlmcInProcess(['train', a2, '--data', data, '--steps', '3', '--lr', '1e-3', '--out', t2]);
    expect(r2.status).toBe(0);
    const losses2 = [...r2.stdout.matchAll(/loss (\S+)/g)].map((m) => Number(m[1]));
    expect(losses2[2]!).toBeLessThan(losses2[0]!);

    // Resume: two more steps from checkpoint-3, optimizer state included.
    const r3 = await vlmcInProcess(['train', a2, '--data', data, '--steps', '5', '--lr', '1e-3', '--out', t2, '--resume']);
    expect(r3.stderr).toBe('');
    expect(r3.stdout).toMatch(/^step 4 loss/);
    expect(r3.stdout).toContain('checkpoint-5');
    expect(JSON.parse(readFileSync(path.join(t2, 'trainer_state.json'), 'utf8'))).toEqual({ step: 5, last_checkpoint: 'checkpoint-5' });
  });

  it('issue 16 defect 6: --out at an earlier run without --resume is refused, its checkpoints and state left as they were', () => {
    const t1 = path.join(work, 'stage1');
    const before = readdirSync(t1).sort().map((f) => [f, statSync(path.join(t1, f)).isFile() ? readFileSync(path.join(t1, f)).toString('hex') : readdirSync(path.join(t1, f)).join()]);
    const ckptBytes = readFileSync(path.join(t1, 'checkpoint-6', 'model.safetensors'));
    const r = vlmc(['train', path.join(work, 'stage1-artifact'), '--data', data, '--steps', '6', '--out', t1]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`vlmc: --out ${t1}: holds an earlier training run (trainer_state.json); pass --resume to continue it, or give a new path (a new run would replace its checkpoints)\n`);
    expect(readdirSync(t1).sort().map((f) => [f, statSync(path.join(t1, f)).isFile() ? readFileSync(path.join(t1, f)).toString('hex') : readdirSync(path.join(t1, f)).join()])).toEqual(before);
    expect(readFileSync(path.join(t1, 'checkpoint-6', 'model.safetensors')).equals(ckptBytes)).toBe(true);
  });

  it('issue 16 defect 7: AdamW settings torch refuses are refused, naming the flag', () => {
    const a1 = path.join(work, 'stage1-artifact');
    const cases: [string[], string][] = [
      [['--beta1', '1.5'], '--beta1 must be from 0 up to (not including) 1 (got 1.5), as torch.optim.AdamW requires'],
      [['--beta2', '1'], '--beta2 must be from 0 up to (not including) 1 (got 1)'],
      [['--weight-decay', '-1'], "--weight-decay must be a number >= 0 (got '-1')"],
      [['--eps', 'abc'], "--eps must be a number >= 0 (got 'abc')"],
    ];
    for (const [flags, message] of cases) {
      const out = path.join(work, 'never');
      const r = vlmc(['train', a1, '--data', data, '--steps', '1', '--out', out, ...flags]);
      expect(r.status, flags.join(' ')).toBe(2);
      expect(r.stderr).toContain(message);
      expect(existsSync(out)).toBe(false);
    }
  });

  it('bad input exits 2 naming the problem', async () => {
    const bad = path.join(work, 'bad.jsonl');
    writeFileSync(bad, '{"conversations": [{"from": "human", "value": "hi"}]}\n');
    const r = await vlmcInProcess(['train', path.join(work, 'stage1-artifact'), '--data', bad, '--steps', '1', '--out', path.join(work, 'x')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`vlmc: ${bad}:1: no 'gpt' turn: nothing to learn\n`);
    const noTrain = await vlmcInProcess(['train', path.join(work, 'nothing'), '--data', data, '--steps', '1', '--out', path.join(work, 'y')]);
    expect(noTrain.status).toBe(2);
    const odd = path.join(work, 'odd.jsonl');
    writeFileSync(odd, '{"conversations": [{"from": "human", "value": "caf\u00e9?"}, {"from": "gpt", "value": "no"}]}\n');
    const r2 = await vlmcInProcess(['train', path.join(work, 'stage1-artifact'), '--data', odd, '--steps', '1', '--out', path.join(work, 'z')]);
    expect(r2.status).toBe(2);
    expect(r2.stderr).toContain(`${odd}:1: the tokenizer cannot encode`);
    const frozen = path.join(work, 'frozen-artifact');
    expect((await vlmcInProcess(['build', '--vision', path.join(work, 'vision'), '--llm', path.join(work, 'llm'), '--out', frozen, '--train', '--preset', 'inference', '--quiet'])).status).toBe(0);
    const r3 = await vlmcInProcess(['train', frozen, '--data', data, '--steps', '1', '--out', path.join(work, 'w')]);
    expect(r3.status).toBe(2);
    expect(r3.stderr).toContain('no parameter is trainable');
  });
});
