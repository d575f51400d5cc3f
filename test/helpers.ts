/** Shared test helpers: fixture paths, temp dirs, the CLI, error metrics. */
import { mkdtempSync, readdirSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { SafetensorsFile } from '../src/checkpoint/safetensors.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The shared reference fixtures; VLMC_FIXTURES points elsewhere (the suite's own test of a missing folder uses it). */
export const FIXTURES = path.resolve(ROOT, process.env.VLMC_FIXTURES ?? '../shared/fixtures');

/** Why the suite cannot run without the shared fixtures; thrown, never a silent skip. */
export const MISSING_FIXTURES = `the reference fixtures are missing: npm test reads them from ${FIXTURES} (the shared/fixtures folder next to this checkout; see README.md)`;

/** Every fixture case folder (those with a case.json). */
export function fixtureCases(): string[] {
  if (!existsSync(FIXTURES)) throw new Error(MISSING_FIXTURES);
  return readdirSync(FIXTURES)
    .filter((d) => existsSync(path.join(FIXTURES, d, 'case.json')))
    .sort();
}

export function tempDir(prefix = 'vlmc-test-'): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

import { runCli, type CliResult } from '../src/cli/main.ts';
export type { CliResult };

/**
 * The CLI in this process (runCli of src/cli/main.ts): the exit code, stdout and stderr that vlmc()
 * gives, without starting Node, tsx and onnxruntime-node again (about 1.4 s a call). Graph files load
 * through vitest's module loader (the `vlmc` alias of vitest.config.ts stands in for the graph-file
 * hooks) and stay cached for the rest of the test file, as in any long-lived process: a test that
 * edits a graph file it has loaded, or whose build must not see what an earlier build left on the
 * graph's model, uses vlmc(). So do tests of the process itself: bin/vlmc.js starting, signals,
 * an installed package, another checkout's CLI.
 */
export async function vlmcInProcess(args: string[], cwd = ROOT): Promise<CliResult> {
  return runCli(args, { cwd });
}

/** Runs the real CLI entry point (bin/vlmc.js) in a child process. */
export function vlmc(args: string[], cwd = ROOT): CliResult {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/vlmc.js'), ...args], { cwd, encoding: 'utf8', env: { ...process.env, CI: '1' } });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function maxAbsError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** ||got - want|| / ||want|| (the absolute norm when want is all zero): the gradient tolerance's measure. */
export function relativeL2(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    num += (got[i]! - want[i]!) ** 2;
    den += want[i]! ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** Debian's python3 with the onnx package (the ONNX checker), if installed. */
export const ONNX_PYTHON = '/usr/bin/python3';
export function hasOnnxChecker(): boolean {
  return spawnSync(ONNX_PYTHON, ['-c', 'import onnx'], { encoding: 'utf8' }).status === 0;
}

export function onnxCheck(model: string): { ok: boolean; message: string } {
  const r = spawnSync(ONNX_PYTHON, ['-c', 'import onnx,sys; onnx.checker.check_model(sys.argv[1], full_check=True)', model], { encoding: 'utf8' });
  return { ok: r.status === 0, message: r.stderr };
}

/** One tensor of a safetensors file as float32 (F32 / F16 / BF16). */
export async function readFloats(file: string, key: string): Promise<Float32Array> {
  const st = await SafetensorsFile.open(file);
  try {
    return await st.readAsFloat32(st.entry(key));
  } finally {
    await st.close();
  }
}

/**
 * stderr that holds only `vlmc: warning:` lines, each matching one of `expected` (a build of a
 * fixture, which has no tokenizer.json, warns that generate / train will lack one), and at least one each.
 */
export function expectOnlyWarnings(stderr: string, ...expected: RegExp[]): void {
  const lines = stderr.split('\n').filter((l) => l !== '');
  for (const l of lines) {
    if (!l.startsWith('vlmc: warning: ') || !expected.some((re) => re.test(l))) throw new Error(`unexpected stderr line: ${l}`);
  }
  for (const re of expected) if (!lines.some((l) => re.test(l))) throw new Error(`no warning matching ${re} in: ${stderr}`);
}

/** The warning a split or training build of a checkpoint without tokenizer.json gives. */
export const NO_TOKENIZER = /has no tokenizer\.json/;

/** The checkpoint `npm start` writes (random weights, tiny tokenizer, Hermes-2 template), at `dir`. */
export async function demoCheckpoint(dir: string): Promise<string> {
  const { writeRandomCheckpoint, DEFAULT_GRAPH } = await import('../src/demo.ts');
  const { loadGraphFile } = await import('../src/graph-file.ts');
  const { InternVLChatModel } = await import('../src/models/internvl.ts');
  const model = await loadGraphFile(DEFAULT_GRAPH);
  if (!(model instanceof InternVLChatModel)) throw new Error(`${DEFAULT_GRAPH}: not an InternVL model`);
  await writeRandomCheckpoint(model, dir, 0);
  return dir;
}

/** A `vlmc generate --out` file (or the fixtures' generation.safetensors): tokens [batch, N] row-major, logits [batch, N, vocab]. */
export async function readGeneration(file: string): Promise<{ tokens: number[]; logits: Float32Array }> {
  const st = await SafetensorsFile.open(file);
  try {
    const bytes = await st.readAll(st.entry('tokens'));
    const tokens = Array.from(new BigInt64Array(bytes.slice().buffer), Number);
    return { tokens, logits: await st.readAsFloat32(st.entry('logits')) };
  } finally {
    await st.close();
  }
}
