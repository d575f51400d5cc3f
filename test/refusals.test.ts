/**
 * Bad input across every command is refused cleanly: nothing hangs on a FIFO or a folder where a
 * file belongs, nothing is written where it must not be, and nothing is silently accepted or
 * explained wrongly (the defects of issue 8's second campaign: ~900 malformed inputs). In-process
 * library calls, no CLI spawns.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { exportHF } from '../src/export/hf.ts';
import { runArtifact } from '../src/run.ts';
import { readManifest } from '../src/artifact/format.ts';
import { summaryFromArtifact, manifestTrainable } from '../src/review/operand.ts';
import { checkLocks } from '../src/review/lock.ts';
import { Checkpoint } from '../src/checkpoint/checkpoint.ts';
import { buildInputs, readHistoryFile } from '../src/inputs/index.ts';
import { preprocessImage } from '../src/preprocess/index.ts';
import { writeFileAtomic } from '../src/fs/atomic.ts';
import { build } from '../src/build.ts';
import { loadGraphFile } from '../src/graph-file.ts';
import { FIXTURES, ROOT, removeDir, tempDir } from './helpers.ts';
import { QWEN, editedCheckpoint, expectUserError, f32Bytes, noise, writeInputs, type Json } from './validation-helpers.ts';

const work = tempDir('vlmc-campaign-');
afterAll(() => removeDir(work));
let n = 0;
const fresh = (name: string) => path.join(work, `${name}-${n++}`);
const UNIFIED = path.join(QWEN, 'unified');
const IMAGE = path.join(FIXTURES, 'preprocess/images/png_rgb_47x31.png');
const TOKENIZER = path.join(FIXTURES, 'prompts/tokenizers/internvl2_5-qwen2_5');

const fifo = (file: string) => {
  mkdirSync(path.dirname(file), { recursive: true });
  execFileSync('mkfifo', [file]);
  return file;
};

/** The qwen2-tiny unified config beside the real InternVL2.5 tokenizer (vocabulary widened to fit it). */
function requestFolder(edit: (cfg: Json) => void = () => {}): string {
  const dir = fresh('request');
  cpSync(TOKENIZER, dir, { recursive: true });
  const cfg = JSON.parse(readFileSync(path.join(UNIFIED, 'config.json'), 'utf8')) as Json;
  cfg.llm_config.vocab_size = 151674;
  edit(cfg);
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
  return dir;
}

/** One real build of the qwen2-tiny checkpoint, copied and damaged per test. */
let artifact: string | undefined;
async function builtArtifact(): Promise<string> {
  if (!artifact) {
    artifact = fresh('artifact');
    await build({ weights: UNIFIED, out: artifact });
  }
  return artifact;
}
async function damagedArtifact(damage: (dir: string) => void): Promise<string> {
  const dir = fresh('damaged');
  cpSync(await builtArtifact(), dir, { recursive: true });
  damage(dir);
  return dir;
}

describe('vlmc export writes by the output-path rules', () => {
  it('refuses --out at a user folder and leaves its files', async () => {
    const out = fresh('user-folder');
    mkdirSync(out);
    writeFileSync(path.join(out, 'keep.txt'), 'mine');
    await expectUserError(exportHF({ checkpoint: UNIFIED, out }), `--out ${out}`, 'a folder vlmc did not write', 'keep.txt');
    expect(readdirSync(out)).toEqual(['keep.txt']);
  });

  it('refuses --out inside the input checkpoint, writing nothing there', async () => {
    const ckpt = editedCheckpoint(work, `ck-${n++}`, UNIFIED);
    const out = path.join(ckpt, 'hf');
    await expectUserError(exportHF({ checkpoint: ckpt, out }), 'lies inside the input folder', ckpt);
    expect(existsSync(out)).toBe(false);
  });

  it('replaces its own earlier export', async () => {
    const out = fresh('export');
    await exportHF({ checkpoint: UNIFIED, out });
    const again = await exportHF({ checkpoint: UNIFIED, out, spelling: 'transformers-5' });
    expect(again.tensors).toBe(72);
    expect(readdirSync(out)).toContain('.vlmc-checkpoint');
  });
});

describe('nothing hangs on a FIFO where a file belongs', () => {
  it('an artifact whose manifest.json is a FIFO (run and diff)', async () => {
    const dir = await damagedArtifact((d) => {
      rmSync(path.join(d, 'manifest.json'));
      fifo(path.join(d, 'manifest.json'));
    });
    await expectUserError(() => readManifest(dir), 'manifest.json', 'is a FIFO, not a regular file');
    await expectUserError(() => summaryFromArtifact(dir), 'manifest.json', 'is a FIFO');
  });

  it('an artifact whose model.onnx is a FIFO (diff)', async () => {
    const dir = await damagedArtifact((d) => {
      rmSync(path.join(d, 'model.onnx'));
      fifo(path.join(d, 'model.onnx'));
    });
    await expectUserError(() => summaryFromArtifact(dir), 'model.onnx', 'is a FIFO, not a regular file');
  });

  it('a tokenizer.json, an image or a --history file that is a FIFO (vlmc inputs)', async () => {
    const dir = requestFolder();
    rmSync(path.join(dir, 'tokenizer.json'));
    fifo(path.join(dir, 'tokenizer.json'));
    await expectUserError(buildInputs({ checkpoint: dir, prompts: ['x'] }), 'tokenizer.json', 'is a FIFO');
    const image = fifo(fresh('image.png'));
    await expectUserError(preprocessImage(image, { imageSize: 56 }), image, 'is a FIFO', 'PNG, JPEG, WebP or GIF');
    const history = fifo(fresh('history.json'));
    await expectUserError(() => readHistoryFile(history), history, 'is a FIFO');
  });

  it('a lock file that is a FIFO (lock --check)', async () => {
    const dir = fresh('graphs');
    mkdirSync(dir);
    const graph = path.join(dir, 'g.ts');
    writeFileSync(graph, 'export default 1;\n');
    fifo(path.join(dir, 'g.graph.lock'));
    await expectUserError(checkLocks([graph]), 'g.graph.lock', 'is a FIFO');
  });

  it.runIf(existsSync('/proc/self'))('--out under procfs is an error, not an endless mkdir', async () => {
    await expectUserError(writeFileAtomic('/proc/vlmc-no-such/x/out.safetensors', 'x'), '/proc/vlmc-no-such');
  });
});

describe('checkpoint files that are not regular files are named as such', () => {
  const variant = (name: string, damage: (dir: string) => void) => {
    const dir = editedCheckpoint(work, `ck-${name}-${n++}`, UNIFIED);
    damage(dir);
    return dir;
  };

  it('config.json a folder or a FIFO (was "missing")', async () => {
    const folder = variant('cfgdir', (d) => {
      rmSync(path.join(d, 'config.json'));
      mkdirSync(path.join(d, 'config.json'));
    });
    await expectUserError(Checkpoint.open(folder), 'config.json: is a folder, not a regular file');
    const pipe = variant('cfgfifo', (d) => {
      rmSync(path.join(d, 'config.json'));
      fifo(path.join(d, 'config.json'));
    });
    await expectUserError(Checkpoint.open(pipe), 'config.json: is a FIFO, not a regular file');
  });

  it('model.safetensors a dangling link or a FIFO (was "no weights found")', async () => {
    const dangling = variant('dangling', (d) => {
      rmSync(path.join(d, 'model.safetensors'));
      symlinkSync('/nonexistent/model.safetensors', path.join(d, 'model.safetensors'));
    });
    await expectUserError(Checkpoint.open(dangling), 'model.safetensors: a symbolic link to /nonexistent/model.safetensors, which does not exist');
    const pipe = variant('stfifo', (d) => {
      rmSync(path.join(d, 'model.safetensors'));
      fifo(path.join(d, 'model.safetensors'));
    });
    await expectUserError(Checkpoint.open(pipe), 'model.safetensors: is a FIFO');
  });

  it('an index that is a FIFO is an error, not silently skipped for model.safetensors', async () => {
    const dir = variant('idxfifo', (d) => fifo(path.join(d, 'model.safetensors.index.json')));
    await expectUserError(Checkpoint.open(dir), 'model.safetensors.index.json: is a FIFO');
  });
});

describe('vlmc inputs bounds the tiling before searching grids', () => {
  it('max_dynamic_patch 1e9 is an error naming config.json (was an endless grid search)', async () => {
    const dir = requestFolder((c) => void (c.max_dynamic_patch = 1e9));
    await expectUserError(buildInputs({ checkpoint: dir, prompts: ['<image>\nx'], images: [IMAGE] }), 'config.json', "'max_dynamic_patch' must be at most 256");
  });

  it('min_dynamic_patch above max_dynamic_patch names both fields', async () => {
    const dir = requestFolder((c) => Object.assign(c, { min_dynamic_patch: 20, max_dynamic_patch: 2 }));
    await expectUserError(buildInputs({ checkpoint: dir, prompts: ['x'], images: [IMAGE] }), 'config.json', "'min_dynamic_patch' (20) is greater than 'max_dynamic_patch' (2)");
  });

  it("use_thumbnail: 'yes' is an error naming the field, not a silent false", async () => {
    const dir = requestFolder((c) => void (c.use_thumbnail = 'yes'));
    await expectUserError(buildInputs({ checkpoint: dir, prompts: ['x'], images: [IMAGE] }), 'config.json', "'use_thumbnail' must be true or false (got \"yes\")");
  });

  it('--max-num beyond the bound names the flag', async () => {
    const dir = requestFolder();
    await expectUserError(buildInputs({ checkpoint: dir, prompts: ['x'], images: [IMAGE], maxNum: 1_000_000_000 }), '--max-num 1000000000', 'to 256');
    const ok = await buildInputs({ checkpoint: dir, prompts: ['x'], images: [IMAGE], maxNum: 40 });
    expect(ok.inputs.pixel_values.shape).toEqual([7, 3, 56, 56]); // 47x31 -> 3x2 grid + thumbnail
  });

  it("a tokenizer.json whose 'added_tokens' is not a list is refused, not repaired from tokenizer_config.json", async () => {
    const dir = requestFolder();
    const file = path.join(dir, 'tokenizer.json');
    writeFileSync(file, JSON.stringify({ ...(JSON.parse(readFileSync(file, 'utf8')) as Json), added_tokens: 'x' }));
    await expectUserError(buildInputs({ checkpoint: dir, prompts: ['x'] }), file, "'added_tokens' must be a list");
  });

  it('a damaged JPEG is one line, not libvips repeating itself', async () => {
    const jpeg = fresh('damaged.jpg');
    writeFileSync(jpeg, readFileSync(path.join(FIXTURES, 'preprocess/images/jpeg420_q90_800x600.jpg')).subarray(0, 200));
    const message = await expectUserError(preprocessImage(jpeg, { imageSize: 56 }), jpeg, 'not a readable image');
    expect(message).not.toContain('\n');
  });
});

describe('smaller refusals', () => {
  it('lock --check on a graph file that does not exist is bad input, not a missing lock', async () => {
    await expectUserError(checkLocks([path.join(work, 'no-such-graph.ts')]), 'no-such-graph.ts: graph file not found');
  });

  it('--allow-missing globs the language cannot mean are refused, not matched against nothing', async () => {
    for (const [glob, why] of [['mlp*', "segment 'mlp*' mixes '*'"], ['', 'empty segment'], ['mlp1..0', 'empty segment']]) {
      const out = fresh('glob');
      await expectUserError(build({ weights: UNIFIED, out, allowMissing: [glob!] }), `--allow-missing '${glob}'`, why!);
      expect(existsSync(out)).toBe(false);
    }
    await expectUserError(build({ weights: UNIFIED, out: fresh('glob'), ignoreUnexpected: ['vision*'] }), "--ignore-unexpected 'vision*'");
  });

  it('vlmc run refuses NaN pixel values (every logit would be NaN, silently)', async () => {
    const inputs = fresh('nan.safetensors');
    const pixels = noise(2 * 3 * 56 * 56, 3);
    pixels[17] = Number.NaN;
    await writeInputs(inputs, { tiles: 2, size: 56, tokensPerTile: 4, contextId: 153, override: { pixel_values: { name: 'pixel_values', dtype: 'F32', shape: [2, 3, 56, 56], data: f32Bytes(pixels) } } });
    const out = fresh('nan-out.safetensors');
    await expectUserError(runArtifact(await builtArtifact(), inputs, out), inputs, "input 'pixel_values' holds NaN at flat position 17");
    expect(existsSync(out)).toBe(false);
  });

  it('a graph file with a syntax error is one message line naming the file', async () => {
    const graph = `${fresh('syntax')}.ts`;
    writeFileSync(graph, 'export default (((;\n');
    const message = await expectUserError(loadGraphFile(graph), `${graph}: could not load the graph file`);
    expect(message).not.toContain('\n');
  });

  it('vlmc diff refuses an artifact manifest that is null or an array', async () => {
    for (const text of ['null', '[]']) {
      const dir = await damagedArtifact((d) => writeFileSync(path.join(d, 'manifest.json'), text));
      await expectUserError(() => manifestTrainable(path.join(dir, 'manifest.json')), 'manifest.json: not a vlmc manifest');
    }
  });
});

describe('vlmc init --out', () => {
  it('refuses a graph file name that is not TypeScript (.ts / .mts) and writes nothing', async () => {
    const { init } = await import('../src/init/init.ts');
    const { existsSync, mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const pathMod = await import('node:path');
    const dir = mkdtempSync(pathMod.join(tmpdir(), 'vlmc-init-ext-'));
    const out = pathMod.join(dir, 'x.json');
    await expect(init({ from: pathMod.join(FIXTURES, 'qwen2-tiny/unified'), out })).rejects.toThrow(/x\.json: a graph file is TypeScript; give a path ending in \.ts/);
    expect(existsSync(out)).toBe(false);
  });
});

describe('vlmc build --train --split', () => {
  it('is refused before anything is built (the split artifact has no place for training graphs)', async () => {
    const { build } = await import('../src/build.ts');
    const { existsSync, mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const pathMod = await import('node:path');
    const out = pathMod.join(mkdtempSync(pathMod.join(tmpdir(), 'vlmc-train-split-')), 'art');
    await expect(build({ weights: pathMod.join(FIXTURES, 'qwen2-tiny/unified'), out, split: true, train: true })).rejects.toThrow(/--train and --split/);
    expect(existsSync(out)).toBe(false);
  });
});

describe('vlmc build <graph> --split without weights', () => {
  it('is structure-only like the single-graph build, and generate refuses it', async () => {
    const { build } = await import('../src/build.ts');
    const { generateCommand } = await import('../src/generate/cli.ts');
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const pathMod = await import('node:path');
    const out = pathMod.join(mkdtempSync(pathMod.join(tmpdir(), 'vlmc-split-structure-')), 'split');
    const { manifest } = await build({ graph: pathMod.join(ROOT, 'graphs/internvl-tiny.ts'), out, split: true });
    expect(manifest.build.structure_only).toBe(true);
    await expect(generateCommand({ artifact: out, inputs: pathMod.join(FIXTURES, 'qwen2-tiny/gen_inputs.safetensors'), maxNewTokens: 1, write: () => {} })).rejects.toThrow(/structure-only artifact/);
  });
});
