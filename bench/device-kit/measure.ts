/**
 * The device kit's measurement (bench/device-kit/README.md): a random-weight model of a given shape,
 * its split artifact in each variant, each measured on each execution provider in its own process.
 *
 *   measure [--shape internvl2-1b|tiny] [--eps cpu,webgpu] [--variants portable,fp32,int4,fp16]
 *           [--steps N] [--prompt-tokens N] [--work DIR] [--out FILE] [--vlmc CLI] [--budget-s S] [--keep]
 *   child --artifact DIR --ep cpu|webgpu --inputs FILE --steps N --result FILE --logits FILE
 *
 * Per variant and provider (child): session creation, vision (first call and warm), prefill =
 * vision + embedding + decoder over the prompt (first and warm: time to first token), decode ms per
 * token (median of N steps after one warm-up, each step feeding the previous step's cache), greedy
 * tokens, where the KV cache lives between steps, peak RSS; GPU memory from nvidia-smi where there
 * is one. Per variant (parent): logits parity of the warm prefill's next-token logits between the
 * providers, greedy tokens equal, each provider against the portable CPU run. JSON on stdout.
 *
 * It runs from source (`npx tsx bench/device-kit/measure.ts`, as test/device-kit.test.ts does) and
 * bundled in the kit (app/kit.mjs, started by run.sh).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import * as nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeRandomCheckpoint } from '../../src/demo.ts';
import { writeSafetensors } from '../../src/checkpoint/safetensors-write.ts';
import { initialValues, mulberry32 } from '../../src/bind/init.ts';
import { UserError } from '../../src/errors.ts';
import type { InternVLChatModel } from '../../src/models/internvl.ts';
import { internvl2OneB, internvlTinyShape } from '../shapes.ts';
import { median, peakRssMiB } from '../process-stats.ts';
import { VLMC_VERSION } from '../../src/version.ts';

const SHAPES: Record<string, () => InternVLChatModel> = { 'internvl2-1b': internvl2OneB, tiny: internvlTinyShape };
/** The `vlmc build` flags of each variant of the split artifact. */
const VARIANTS: Record<string, string[]> = {
  portable: [],
  fp32: ['--target', 'gpu'],
  int4: ['--target', 'gpu', '--quant', 'int4'],
  // Last: on a CPU without fp16 arithmetic its CPU half is the slowest run.
  fp16: ['--target', 'gpu', '--dtype', 'fp16'],
};
const EPS = ['cpu', 'webgpu'] as const;
/** One process may take at most this long (an fp16 graph on a CPU without fp16 arithmetic can take minutes). */
const CHILD_SECONDS = 150;
type Ep = (typeof EPS)[number];
const NO_ADAPTER = /no WebGPU adapter/;

const now = () => performance.now() / 1000;
const round = (x: number, digits = 4) => Number(x.toPrecision(digits));

// ---------------------------------------------------------------------------------------------
// Arguments

interface Options {
  shape: string;
  eps: Ep[];
  variants: string[];
  steps: number;
  promptTokens: number;
  work: string;
  out?: string;
  vlmc: string;
  budgetSeconds: number;
  keep: boolean;
}

function flagValue(argv: string[], flag: string): string | undefined {
  const at = argv.indexOf(flag);
  return at >= 0 ? argv[at + 1] : undefined;
}

function listOf<T extends string>(value: string | undefined, allowed: readonly T[], flag: string, fallback: readonly T[]): T[] {
  if (value === undefined) return [...fallback];
  const items = value.split(',').filter(Boolean);
  for (const i of items) if (!allowed.includes(i as T)) throw new UserError(`${flag}: '${i}' is not one of ${allowed.join(', ')}`);
  return items as T[];
}

function positiveInt(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`${flag} must be a positive integer (got '${value}')`);
  return n;
}

/** The vlmc CLI: the kit's bundled vlmc.mjs beside this script, else this checkout's bin/vlmc.js. */
function defaultVlmc(): string {
  const here = nodePath.dirname(fileURLToPath(import.meta.url));
  const bundled = nodePath.join(here, 'vlmc.mjs');
  return existsSync(bundled) ? bundled : nodePath.resolve(here, '..', '..', 'bin', 'vlmc.js');
}

function parseOptions(argv: string[]): Options {
  const shape = flagValue(argv, '--shape') ?? 'internvl2-1b';
  if (!SHAPES[shape]) throw new UserError(`--shape: '${shape}' is not one of ${Object.keys(SHAPES).join(', ')}`);
  return {
    shape,
    eps: listOf(flagValue(argv, '--eps'), EPS, '--eps', EPS),
    variants: listOf(flagValue(argv, '--variants'), Object.keys(VARIANTS), '--variants', Object.keys(VARIANTS)),
    steps: positiveInt(flagValue(argv, '--steps'), '--steps', 8),
    promptTokens: positiveInt(flagValue(argv, '--prompt-tokens'), '--prompt-tokens', 64),
    work: nodePath.resolve(flagValue(argv, '--work') ?? nodePath.join('out', 'device-kit-run')),
    out: flagValue(argv, '--out'),
    vlmc: nodePath.resolve(flagValue(argv, '--vlmc') ?? defaultVlmc()),
    budgetSeconds: positiveInt(flagValue(argv, '--budget-s'), '--budget-s', 420),
    keep: argv.includes('--keep'),
  };
}

// ---------------------------------------------------------------------------------------------
// The model and its inputs

/** One tile and a prompt of `promptTokens` ordinary tokens around its image block. */
async function writeInputs(model: InternVLChatModel, file: string, promptTokens: number): Promise<number> {
  const size = model.options.imageSize;
  const ctx = model.options.imgContextTokenId!;
  const vocab = model.language_model.config.vocab;
  const rand = mulberry32(11);
  const text = () => {
    let id = ctx;
    while (id === ctx) id = Math.floor(rand() * Math.min(vocab, ctx));
    return id;
  };
  const before = Math.floor(promptTokens / 2);
  const ids = [...Array.from({ length: before }, text), ...new Array<number>(model.tokensPerTile).fill(ctx), ...Array.from({ length: promptTokens - before }, text)];
  const pixels = initialValues({ kind: 'uniform', bound: 1 }, 3 * size * size, 7, 'pixel_values');
  const bytes = (a: Float32Array | BigInt64Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  await writeSafetensors(file, [
    { name: 'pixel_values', dtype: 'F32', shape: [1, 3, size, size], data: bytes(pixels) },
    { name: 'input_ids', dtype: 'I64', shape: [1, ids.length], data: bytes(BigInt64Array.from(ids, BigInt)) },
    { name: 'image_flags', dtype: 'I64', shape: [1], data: bytes(BigInt64Array.of(1n)) },
    { name: 'attention_mask', dtype: 'I64', shape: [1, ids.length], data: bytes(new BigInt64Array(ids.length).fill(1n)) },
  ]);
  return ids.length;
}

function buildVariant(o: Options, checkpoint: string, variant: string): { dir: string; seconds: number } {
  const dir = nodePath.join(o.work, variant);
  rmSync(dir, { recursive: true, force: true });
  const t = now();
  const r = spawnSync(process.execPath, [o.vlmc, 'build', '--weights', checkpoint, '--out', dir, '--split', '--quiet', ...VARIANTS[variant]!], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`vlmc build (${variant}) failed: ${r.stderr || r.stdout}`);
  return { dir, seconds: now() - t };
}

/** Bytes of the LLM weights a decode step reads: every language_model tensor but the token embedding table (a Gather reads one row). */
function decodeWeightBytes(dir: string): number {
  const manifest = JSON.parse(readFileSync(nodePath.join(dir, 'manifest.json'), 'utf8')) as { parameters: { name: string; length: number; quant?: { tensors: { length: number }[] } }[] };
  return manifest.parameters
    .filter((p) => p.name.startsWith('language_model.') && !/(embed_tokens|tok_embeddings)\.weight$/.test(p.name))
    .reduce((sum, p) => sum + p.length + (p.quant?.tensors.reduce((s, t) => s + t.length, 0) ?? 0), 0);
}

// ---------------------------------------------------------------------------------------------
// One artifact on one provider, in its own process

interface ChildOptions {
  artifact: string;
  ep: Ep;
  inputs: string;
  steps: number;
  result: string;
  logits: string;
}

export interface ChildResult {
  sessions_s: number;
  vision_first_s: number;
  vision_s: number;
  prefill_first_s: number;
  prefill_s: number;
  decode_ms: number;
  decode_max_ms: number;
  decode_tokens_per_s: number;
  tokens: number[];
  kv_cache: string;
  peak_rss_mib: number;
}

async function measureChild(o: ChildOptions): Promise<ChildResult> {
  const { SplitSession } = await import('../../src/generate/session.ts');
  const { readInputs } = await import('../../src/runtime/tensor-files.ts');
  const { argmax } = await import('../../src/generate/generate.ts');
  const inputs = await readInputs(o.inputs);
  let t = now();
  const s = await SplitSession.open(o.artifact, { ep: o.ep });
  try {
    const sessions = now() - t;
    const pixel = s.tensor(inputs.pixel_values!);
    const timed = async <T>(f: () => Promise<T>): Promise<[T, number]> => {
      const t0 = now();
      const value = await f();
      return [value, now() - t0];
    };
    const [, visionFirst] = await timed(() => s.vision(pixel));
    const [, vision] = await timed(() => s.vision(pixel));
    const seq = inputs.input_ids!.shape[1]!;
    const prefill = async () => {
      const features = await s.vision(pixel);
      const embeds = await s.embed(s.tensor(inputs.input_ids!), features, s.tensor(inputs.image_flags!));
      return s.decode(embeds, s.tensor(inputs.attention_mask!), s.int64(Array.from({ length: seq }, (_, i) => i), [1, seq]), s.emptyCache(1), false);
    };
    const [, prefillFirst] = await timed(prefill);
    const [out, prefillWarm] = await timed(prefill);
    const logits = out.logits.data as Float32Array;
    writeFileSync(o.logits, new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength));
    const kvCache = out.present[0]?.key.location ?? 'none';
    const none = s.noImageFeatures();
    const tokens = [argmax(logits)];
    let cache = out.present;
    const times: number[] = [];
    for (let i = 0; i <= o.steps; i++) {
      const past = seq + i;
      const [next, seconds] = await timed(async () => {
        const e = await s.embed(s.int64([tokens.at(-1)!], [1, 1]), none.features, none.flags);
        return s.decode(e, s.int64(new Array<number>(past + 1).fill(1), [1, past + 1]), s.int64([past], [1, 1]), cache, false);
      });
      cache = next.present;
      tokens.push(argmax(next.logits.data as Float32Array));
      if (i > 0) times.push(seconds); // step 0 is the warm-up
    }
    const decode = median(times);
    return {
      sessions_s: round(sessions),
      vision_first_s: round(visionFirst),
      vision_s: round(vision),
      prefill_first_s: round(prefillFirst),
      prefill_s: round(prefillWarm),
      decode_ms: round(decode * 1000),
      decode_max_ms: round(Math.max(...times) * 1000),
      decode_tokens_per_s: round(1 / decode),
      tokens,
      kv_cache: kvCache,
      peak_rss_mib: Math.round(peakRssMiB()),
    };
  } finally {
    await s.release();
  }
}

function parseChild(argv: string[]): ChildOptions {
  const need = (flag: string) => {
    const v = flagValue(argv, flag);
    if (v === undefined) throw new UserError(`child: ${flag} is required`);
    return v;
  };
  const ep = need('--ep');
  if (!EPS.includes(ep as Ep)) throw new UserError(`--ep: '${ep}' is not one of ${EPS.join(', ')}`);
  return { artifact: need('--artifact'), ep: ep as Ep, inputs: need('--inputs'), steps: positiveInt(need('--steps'), '--steps', 8), result: need('--result'), logits: need('--logits') };
}

// ---------------------------------------------------------------------------------------------
// The parent: children, GPU memory, parity

interface ChildOutcome {
  result?: ChildResult & { gpu_memory_mib?: number; wall_s: number };
  /** Exit 2: the provider cannot run this artifact here (the message says why). */
  refused?: string;
  error?: string;
}

/** nvidia-smi's memory.used, sampled every 200 ms while a child runs; undefined without nvidia-smi. */
function gpuMemorySampler(): { stop: () => number | undefined } {
  const samples: number[] = [];
  let p: ReturnType<typeof spawn> | undefined;
  try {
    p = spawn('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits', '-lms', '200'], { stdio: ['ignore', 'pipe', 'ignore'] });
    p.on('error', () => (p = undefined));
    p.stdout!.on('data', (b: Buffer) => samples.push(...b.toString().split('\n').map(Number).filter((n) => Number.isFinite(n) && n > 0)));
  } catch {
    p = undefined;
  }
  return {
    stop: () => {
      p?.kill();
      return samples.length > 1 ? Math.max(...samples) - samples[0]! : undefined;
    },
  };
}

async function runChild(o: Options, artifact: string, ep: Ep, inputs: string, tag: string, seconds: number): Promise<ChildOutcome> {
  const result = nodePath.join(o.work, `${tag}-${ep}.json`);
  const logits = logitsFile(o, tag, ep);
  const args = [...process.execArgv, process.argv[1]!, 'child', '--artifact', artifact, '--ep', ep, '--inputs', inputs, '--steps', String(o.steps), '--result', result, '--logits', logits];
  const gpu = ep === 'webgpu' ? gpuMemorySampler() : undefined;
  const t = now();
  const r = await new Promise<{ status: number | null; stderr: string; timedOut: boolean }>((resolve) => {
    const p = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      p.kill('SIGKILL');
    }, seconds * 1000);
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    p.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stderr, timedOut });
    });
  });
  const gpuMemory = gpu?.stop();
  if (r.timedOut) return { refused: `stopped after ${Math.round(seconds)} s (the kit's limit for one run)` };
  const lastLine = r.stderr.trimEnd().split('\n').at(-1) ?? '';
  if (r.status === 2) return { refused: lastLine.replace(/^vlmc: /, '') };
  if (r.status !== 0 || !existsSync(result)) return { error: `exit ${r.status}: ${r.stderr.trimEnd().split('\n').slice(-5).join(' | ')}` };
  const measured = JSON.parse(readFileSync(result, 'utf8')) as ChildResult;
  return { result: { ...measured, wall_s: round(now() - t), ...(gpuMemory !== undefined ? { gpu_memory_mib: gpuMemory } : {}) } };
}

const logitsFile = (o: Options, tag: string, ep: Ep) => nodePath.join(o.work, `${tag}-${ep}.logits.f32`);

function readLogits(file: string): Float32Array {
  const b = readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** Max abs difference of two logits vectors, and relative to the largest |reference| logit. */
function logitsParity(got: Float32Array, want: Float32Array): { max_abs: number; max_abs_over_max_logit: number } {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return { max_abs: round(diff, 3), max_abs_over_max_logit: round(diff / (scale || 1), 3) };
}

function tokensParity(got: number[], want: number[]): { greedy_tokens_equal: boolean; first_difference?: number } {
  const at = got.findIndex((t, i) => t !== want[i]);
  return at < 0 ? { greedy_tokens_equal: true } : { greedy_tokens_equal: false, first_difference: at };
}

// ---------------------------------------------------------------------------------------------
// Report

function machineInfo(): Record<string, unknown> {
  const gpu = spawnSync('nvidia-smi', ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader'], { encoding: 'utf8' });
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    memory_gib: Math.round(totalmem() / 2 ** 30),
    gpu: gpu.status === 0 ? gpu.stdout.trim().split('\n') : null,
    node: process.version,
  };
}

/** What run.sh found for Vulkan (it exports these); the process's own environment otherwise. */
function vulkanInfo(): Record<string, unknown> {
  return {
    icd_files: process.env.VK_ICD_FILENAMES?.split(':').filter(Boolean) ?? null,
    icd_source: process.env.VLMC_KIT_ICD_SOURCE ?? (process.env.VK_ICD_FILENAMES ? 'VK_ICD_FILENAMES' : 'loader default paths'),
    loader: process.env.VLMC_KIT_LIBVULKAN ?? 'system',
  };
}

interface VariantReport {
  build_s: number;
  decode_weight_bytes: number;
  cpu?: ChildOutcome['result'] | { skipped: string } | { error: string };
  webgpu?: ChildOutcome['result'] | { skipped: string } | { error: string };
  parity?: Record<string, unknown>;
  vs_portable_cpu?: Record<string, unknown>;
}

function cell(outcome: ChildOutcome): NonNullable<VariantReport['cpu']> {
  if (outcome.result) return outcome.result;
  if (outcome.refused) return { skipped: outcome.refused };
  return { error: outcome.error! };
}

function progress(line: string): void {
  process.stderr.write(`[kit] ${line}\n`);
}

async function measureAll(o: Options): Promise<Record<string, unknown>> {
  const started = now();
  mkdirSync(o.work, { recursive: true });
  const model = SHAPES[o.shape]!();
  const checkpoint = nodePath.join(o.work, 'checkpoint');
  rmSync(checkpoint, { recursive: true, force: true });
  let t = now();
  await writeRandomCheckpoint(model, checkpoint, 0);
  const checkpointSeconds = now() - t;
  progress(`random ${o.shape} checkpoint in ${checkpointSeconds.toFixed(1)} s`);
  const inputs = nodePath.join(o.work, 'inputs.safetensors');
  const seq = await writeInputs(model, inputs, o.promptTokens);
  let webgpuRefusal: string | undefined;
  const variants: Record<string, VariantReport> = {};
  for (const variant of o.variants) {
    const { dir, seconds } = buildVariant(o, checkpoint, variant);
    progress(`${variant}: built in ${seconds.toFixed(1)} s`);
    const report: VariantReport = { build_s: round(seconds), decode_weight_bytes: decodeWeightBytes(dir) };
    // WebGPU first: on a GPU machine its numbers are the point, should the time budget run out.
    for (const ep of [...o.eps].sort((a, b) => Number(b === 'webgpu') - Number(a === 'webgpu'))) {
      const left = o.budgetSeconds - (now() - started);
      if (ep === 'webgpu' && webgpuRefusal) report[ep] = { skipped: webgpuRefusal };
      else if (left <= 0) report[ep] = { skipped: `time budget (${o.budgetSeconds} s) spent` };
      else {
        const outcome = await runChild(o, dir, ep, inputs, variant, Math.min(CHILD_SECONDS, left + 30));
        if (ep === 'webgpu' && outcome.refused && NO_ADAPTER.test(outcome.refused)) webgpuRefusal = outcome.refused;
        report[ep] = cell(outcome);
        progress(`${variant} on ${ep}: ${outcome.result ? `prefill ${outcome.result.prefill_s} s, decode ${outcome.result.decode_ms} ms/token` : (outcome.refused ?? outcome.error)}`);
      }
    }
    Object.assign(report, compare(o, variant, report));
    variants[variant] = report;
    if (!o.keep) rmSync(dir, { recursive: true, force: true });
  }
  return {
    kit: { vlmc: VLMC_VERSION, commit: vlmcCommit(), onnxruntime_node: ortVersion(), date: new Date().toISOString() },
    machine: machineInfo(),
    vulkan: vulkanInfo(),
    webgpu: webgpuRefusal ? { adapter: false, reason: webgpuRefusal } : { adapter: o.eps.includes('webgpu') ? true : 'not measured' },
    shape: o.shape,
    sequence: { prompt_tokens: o.promptTokens, tokens_with_image: seq, decode_steps: o.steps },
    checkpoint_s: round(checkpointSeconds),
    variants,
    elapsed_s: round(now() - started),
  };
}

/** Parity between the providers of one variant, and of each against the portable CPU run. */
function compare(o: Options, variant: string, r: VariantReport): Pick<VariantReport, 'parity' | 'vs_portable_cpu'> {
  const ok = (ep: Ep) => Boolean(r[ep] && 'tokens' in r[ep]!);
  const tokens = (ep: Ep) => (r[ep] as ChildResult).tokens;
  const out: Pick<VariantReport, 'parity' | 'vs_portable_cpu'> = {};
  if (ok('cpu') && ok('webgpu')) {
    out.parity = { webgpu_vs_cpu: { ...logitsParity(readLogits(logitsFile(o, variant, 'webgpu')), readLogits(logitsFile(o, variant, 'cpu'))), ...tokensParity(tokens('webgpu'), tokens('cpu')) } };
  }
  const reference = logitsFile(o, 'portable', 'cpu');
  if (variant !== 'portable' && existsSync(reference)) {
    const want = readLogits(reference);
    const portable = JSON.parse(readFileSync(nodePath.join(o.work, 'portable-cpu.json'), 'utf8')) as ChildResult;
    out.vs_portable_cpu = Object.fromEntries(o.eps.filter(ok).map((ep) => [ep, { ...logitsParity(readLogits(logitsFile(o, variant, ep)), want), ...tokensParity(tokens(ep), portable.tokens) }]));
  }
  return out;
}

/** The kit's package.json records the commit it was built from; from source, ask git. */
function vlmcCommit(): string {
  try {
    const kit = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { vlmc_commit?: string };
    if (kit.vlmc_commit) return kit.vlmc_commit;
  } catch {
    // not in a kit
  }
  const git = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: nodePath.dirname(fileURLToPath(import.meta.url)), encoding: 'utf8' });
  return git.status === 0 ? git.stdout.trim() : 'unknown';
}

function ortVersion(): string {
  try {
    const file = nodePath.join(nodePath.dirname(fileURLToPath(import.meta.resolve('onnxruntime-node'))), '..', 'package.json');
    return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

// ---------------------------------------------------------------------------------------------

async function main(argv: string[]): Promise<number> {
  try {
    if (argv[0] === 'child') {
      const o = parseChild(argv.slice(1));
      writeFileSync(o.result, JSON.stringify(await measureChild(o)));
      return 0;
    }
    const o = parseOptions(argv[0] === 'measure' ? argv.slice(1) : argv);
    const report = JSON.stringify(await measureAll(o), null, 2);
    if (o.out) writeFileSync(o.out, `${report}\n`);
    process.stdout.write(`${report}\n`);
    if (!o.keep) rmSync(nodePath.join(o.work, 'checkpoint'), { recursive: true, force: true });
    return 0;
  } catch (e) {
    if (e instanceof UserError) {
      process.stderr.write(`vlmc: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`kit: ${(e as Error)?.stack ?? String(e)}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
