/**
 * Every combination of what a build can be asked for either builds (and, where the CPU execution
 * provider runs it, computes the reference's logits / loss and gradients within that dtype's
 * documented tolerance) or is refused with one message naming the flags, having written nothing.
 *
 * Dimensions: fixture x {single, split, train} x {portable, gpu, webgpu} x {fp32, fp16, bf16} x
 * {no quant, int4, int8} x {opset 17, 21, 24} x {Path A, Path B, structure-only}. Every refusal is
 * checked by a build; of the combinations that build, `npm test` builds and runs a set that covers
 * every pair of values (pairwise); VLMC_COMBINATIONS=all builds and runs them all (about 900;
 * `npm run test:combinations`). The table of what combines is in docs/cli.md.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { FIXTURES, fixtureCases, maxAbsError, readFloats, relativeL2, removeDir, tempDir } from './helpers.ts';
import { build, type BuildOptions } from '../src/build.ts';
import { init } from '../src/init/init.ts';
import { openSession, run, type HostTensor } from '../src/runtime/session.ts';
import { readInputs } from '../src/runtime/tensor-files.ts';
import { runArtifact } from '../src/run.ts';
import { runSplit } from '../src/generate/session.ts';
import type { Manifest } from '../src/artifact/format.ts';
import { UserError } from '../src/errors.ts';

const DIMENSIONS = {
  fixture: fixtureCases(),
  kind: ['single', 'split', 'train'],
  target: ['portable', 'gpu', 'webgpu'],
  dtype: ['fp32', 'fp16', 'bf16'],
  quant: ['none', 'int4', 'int8'],
  opset: [17, 21, 24],
  source: ['A', 'B', 'structure'],
} as const;

type Dim = keyof typeof DIMENSIONS;
type Combination = { [K in Dim]: (typeof DIMENSIONS)[K][number] };

/** The documented table (docs/cli.md, "What combines"): why a combination is refused, naming the flags; undefined if it builds. */
export function refusal(c: Combination): RegExp | undefined {
  // model.onnx's options are checked first, then train.onnx's.
  if (c.quant !== 'none' && c.target === 'portable') return /^--quant needs --target gpu or webgpu/;
  if (c.target === 'webgpu' && c.dtype === 'bf16') return /^--target webgpu with --dtype bf16/;
  if (c.quant !== 'none' && c.kind === 'train') return /^--train with --quant/;
  return undefined;
}

/** Largest |logits - reference| accepted, per dtype and quantisation (docs/cli.md tolerances). */
function logitsTolerance(c: Combination): number {
  if (c.quant === 'int4') return 4;
  if (c.quant === 'int8') return 0.5;
  if (c.dtype === 'fp16') return 0.05;
  if (c.dtype === 'bf16') return 0.3;
  return 1e-4;
}

/** The CPU execution provider has no bf16 kernels for what a gpu-target bf16 graph computes. */
const runsOnCpu = (c: Combination) => c.source !== 'structure' && !(c.target !== 'portable' && c.dtype === 'bf16');

function allCombinations(): Combination[] {
  let out: Partial<Combination>[] = [{}];
  for (const dim of Object.keys(DIMENSIONS) as Dim[]) out = out.flatMap((c) => (DIMENSIONS[dim] as readonly unknown[]).map((v) => ({ ...c, [dim]: v })));
  return out as Combination[];
}

/** A deterministic greedy set of combinations in which every pair of values of two dimensions occurs. */
function pairwise(candidates: Combination[]): Combination[] {
  const dims = Object.keys(DIMENSIONS) as Dim[];
  const pairsOf = (c: Combination) => dims.flatMap((a, i) => dims.slice(i + 1).map((b) => `${a}=${c[a]}|${b}=${c[b]}`));
  const uncovered = new Set(candidates.flatMap(pairsOf));
  const chosen: Combination[] = [];
  while (uncovered.size > 0) {
    let best = candidates[0]!;
    let gain = -1;
    for (const c of candidates) {
      const g = pairsOf(c).filter((p) => uncovered.has(p)).length;
      if (g > gain) [best, gain] = [c, g];
    }
    for (const p of pairsOf(best)) uncovered.delete(p);
    chosen.push(best);
  }
  return chosen;
}

const label = (c: Combination) => `${c.fixture} ${c.kind} ${c.target} ${c.dtype} quant=${c.quant} opset=${c.opset} ${c.source}`;

const ALL = allCombinations();
const REFUSED = ALL.filter((c) => refusal(c));
const BUILDS = ALL.filter((c) => !refusal(c));
const CHECKED = process.env.VLMC_COMBINATIONS === 'all' ? BUILDS : pairwise(BUILDS);

let work: string;
const graphFiles = new Map<string, string>();

beforeAll(async () => {
  work = tempDir('vlmc-combinations-');
  // Structure-only builds need a graph file: vlmc init writes one from each fixture's config.
  for (const fixture of DIMENSIONS.fixture) {
    const out = path.join(work, `${fixture}.ts`);
    await init({ from: path.join(FIXTURES, fixture, 'unified'), out });
    graphFiles.set(fixture, out);
  }
});
afterAll(() => removeDir(work));

function buildOptions(c: Combination, out: string): BuildOptions {
  const fx = path.join(FIXTURES, c.fixture);
  const sources: Partial<BuildOptions> =
    c.source === 'A'
      ? { weights: path.join(fx, 'unified') }
      : c.source === 'B'
        ? // The saved projector makes Path B's weights the reference's.
          { vision: path.join(fx, 'vision'), llm: path.join(fx, 'llm'), projector: path.join(fx, 'mlp1.safetensors') }
        : { graph: graphFiles.get(c.fixture)! };
  return {
    ...sources,
    out,
    dtype: c.dtype,
    target: c.target,
    opset: c.opset,
    ...(c.quant === 'none' ? {} : { quant: { bits: c.quant === 'int4' ? 4 : 8, blockSize: 32, symmetric: true } }),
    ...(c.kind === 'split' ? { split: true } : {}),
    ...(c.kind === 'train' ? { train: true, preset: 'stage2' } : {}),
  };
}

describe('combinations that cannot work are refused before anything is written', () => {
  it(`${REFUSED.length} refused combinations: one message naming the flags, nothing written`, async () => {
    expect(REFUSED.length).toBeGreaterThan(0);
    for (const c of REFUSED) {
      const out = path.join(work, 'refused');
      const error = await build(buildOptions(c, out)).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, label(c)).toBeInstanceOf(UserError);
      expect((error as Error).message, label(c)).toMatch(refusal(c)!);
      expect((error as Error).message.split('\n'), label(c)).toHaveLength(1);
      expect(existsSync(out), label(c)).toBe(false);
    }
  });
});

describe(`combinations that build (${CHECKED.length} of ${BUILDS.length}${CHECKED.length < BUILDS.length ? ', every pair of values; VLMC_COMBINATIONS=all for all' : ''})`, () => {
  it.each(CHECKED.map((c) => [label(c), c] as const))('%s', async (_, c) => {
    const out = path.join(work, label(c).replace(/[ =]/g, '_'));
    const { manifest } = await build(buildOptions(c, out));
    expect(manifest.build.opset).toBe(c.opset);
    if (runsOnCpu(c)) await checkNumerics(c, out, manifest);
    removeDir(out);
    rmSync(`${out}.train-out.safetensors`, { force: true });
  });
});

async function checkNumerics(c: Combination, out: string, manifest: Manifest): Promise<void> {
  const fx = path.join(FIXTURES, c.fixture);
  const inputs = await readInputs(path.join(fx, 'inputs.safetensors'));
  const expected = await readFloats(path.join(fx, 'expected.safetensors'), 'logits');
  if (c.kind === 'split') {
    const got = await runSplit(out, inputs);
    expect(maxAbsError(floats(got['logits']!), expected), label(c)).toBeLessThanOrEqual(logitsTolerance(c));
    return;
  }
  if (c.kind === 'single') {
    const got = await runGraph(out, 'model', inputs);
    expect(maxAbsError(floats(got['logits']!), expected), label(c)).toBeLessThanOrEqual(logitsTolerance(c));
    return;
  }
  // train.onnx: the loss, and each trainable parameter's gradient against the reference's (stage2).
  // As `vlmc run --graph train` does: the trainable parameters are fed from the artifact's weights.
  const got = await runArtifact(out, path.join(fx, 'inputs.safetensors'), `${out}.train-out.safetensors`, 'train');
  const loss = (await readFloats(path.join(fx, 'expected.safetensors'), 'loss'))[0]!;
  const halfStorage = c.dtype !== 'fp32';
  expect(Math.abs(floats(got['loss']!)[0]! - loss), label(c)).toBeLessThanOrEqual(halfStorage ? 0.05 : 1e-5);
  const zero = new Set<string>(JSON.parse(readFileSync(path.join(fx, 'case.json'), 'utf8')).zero_grad_params?.stage2 ?? []);
  for (const t of manifest.train!.trainable) {
    if (zero.has(t.key)) continue;
    const want = await readFloats(path.join(fx, 'grads-stage2.safetensors'), t.key);
    expect(relativeL2(floats(got[t.grad]!), want), `${label(c)}: ${t.key}`).toBeLessThanOrEqual(halfStorage ? 0.1 : 1e-4);
  }
}

async function runGraph(dir: string, graph: string, inputs: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
  const session = await openSession(dir, ['cpu'], graph);
  try {
    return await run(session, inputs);
  } finally {
    await session.release();
  }
}

const floats = (t: HostTensor) => t.data as Float32Array;

