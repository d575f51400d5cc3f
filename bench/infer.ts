/**
 * bench/infer: inference on the InternVL2-1B-shaped model in onnxruntime-node (CPU), the split
 * artifact (vision / embedding / decoder with a KV cache) against the single forward graph.
 *
 *   npx tsx bench/infer.ts [--steps N] [--keep]
 *
 * 1. The BF16 checkpoint of bench/bind (made once under out/bench, reused), built twice as fp32:
 *    a single-graph artifact and a split one (`vlmc build --split`), under out/bench/infer/.
 * 2. Inputs: one 448 tile and 64 prompt tokens around its image block (64 + 258 = 322 tokens).
 * 3. Each artifact is measured in its own child process (so peak RSS is its own): session creation,
 *    vision, prefill (vision + embedding + decoder prefill = time to first token), decode step
 *    (median of N; for the single graph a step is a whole forward over seq + 1, which is what it
 *    costs there), peak RSS (VmHWM).
 * 4. The decode limit, in the split child, after its RSS is read: the machine's streaming-read
 *    bandwidth (bench/bandwidth.ts: worker threads streaming their own buffers, no ORT kernel in
 *    it), measured between the N decode steps (so both see the same load on a shared machine);
 *    the limit is the decoder graph's weight bytes (what a step streams once) over it, and the
 *    decode step's ratio to that limit is reported.
 * 5. `vlmc generate` as a whole process (node start, sessions, vision, prefill): time until the
 *    first token is printed.
 * Prints a markdown table and checks the floors: decode <= 1.2x the decode limit, sessions
 * <= 5 s, generate's first token <= 12 s. Exit code 1 when one is missed.
 *
 * With --gpu, also the --target gpu split artifacts, each in its own child like the portable one:
 * fused fp32 (floor: faster than portable in every phase) and fused + int4 MatMulNBits (floor:
 * decode >= 2.5x faster than the portable fp32 decode step).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import * as nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchModel, ensureCheckpoint, machine } from './bind.ts';
import { initializerBytes, openBandwidthProbe } from './bandwidth.ts';
import { median, peakRssMiB } from './process-stats.ts';
import { build } from '../src/build.ts';
import { PROMPT_TOKENS, writeInputs } from './inputs.ts';
import type { InternVLChatModel } from '../src/models/internvl.ts';

const ROOT = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), '..');
const WORK = nodePath.join(ROOT, 'out', 'bench', 'infer');
const SINGLE = nodePath.join(WORK, 'single');
const SPLIT = nodePath.join(WORK, 'split');
const INPUTS = nodePath.join(WORK, 'inputs.safetensors');
const FLOORS = { decodeOverLimit: 1.2, sessionsSeconds: 5, firstTokenSeconds: 12, int4DecodeSpeedup: 2.5 };
/** --gpu: the --target gpu split artifacts, fused fp32 and fused + int4. */
const FUSED = nodePath.join(WORK, 'split-gpu');
const INT4 = nodePath.join(WORK, 'split-gpu-int4');

// ---------------------------------------------------------------------------------------------
// Child processes: one artifact each

interface Measured {
  sessions: number;
  vision?: number;
  prefill: number;
  decode: number;
  rssMiB: number;
  /** Streaming-read bandwidth measured between the decode steps, GB/s (portable split only). */
  bandwidth?: number;
  /** The decoder graph's weight bytes. */
  decoderBytes?: number;
}

const now = () => performance.now() / 1000;

async function childSplit(steps: number, dir = SPLIT): Promise<Measured> {
  const { SplitSession } = await import('../src/generate/session.ts');
  const { readInputs } = await import('../src/runtime/tensor-files.ts');
  const { argmax } = await import('../src/generate/generate.ts');
  const inputs = await readInputs(INPUTS);
  let t = now();
  const s = await SplitSession.open(dir, process.argv.includes('--prepack') ? { prepackWeights: true } : {});
  const sessions = now() - t;
  const seq = inputs.input_ids!.shape[1]!;
  const pixel = s.tensor(inputs.pixel_values!);
  let features = await s.vision(pixel); // warm-up
  t = now();
  features = await s.vision(pixel);
  const vision = now() - t;
  const prefillOnce = async () => {
    const t0 = now();
    const f = await s.vision(pixel);
    const embeds = await s.embed(s.tensor(inputs.input_ids!), f, s.tensor(inputs.image_flags!));
    const out = await s.decode(embeds, s.tensor(inputs.attention_mask!), s.int64(Array.from({ length: seq }, (_, i) => i), [1, seq]), s.emptyCache(1), false);
    return { seconds: now() - t0, out };
  };
  let { out } = await prefillOnce();
  const second = await prefillOnce();
  out = second.out;
  const none = s.noImageFeatures();
  let cache = out.present;
  let token = argmax(out.logits.data as Float32Array);
  let past = seq;
  const step = async () => {
    const t0 = now();
    const e = await s.embed(s.int64([token], [1, 1]), none.features, none.flags);
    const next = await s.decode(e, s.int64(new Array(past + 1).fill(1), [1, past + 1]), s.int64([past], [1, 1]), cache, false);
    cache = next.present;
    token = argmax(next.logits.data as Float32Array);
    past += 1;
    return now() - t0;
  };
  await step(); // warm-up
  const rssMiB = peakRssMiB();
  // Decode steps and bandwidth probes alternate, so both see the same machine (it is shared and noisy).
  // The limit belongs to the portable split; the --gpu variants are compared to that one.
  const probe = dir === SPLIT ? await openBandwidthProbe(2, 512) : undefined;
  const times: number[] = [];
  const rates: number[] = [];
  for (let i = 0; i < steps; i++) {
    times.push(await step());
    if (probe) rates.push((await probe.run()).gbPerSecond);
  }
  void features;
  await probe?.close();
  await s.release();
  const limit = probe ? { bandwidth: median(rates), decoderBytes: initializerBytes(nodePath.join(dir, 'decoder.onnx')) } : {};
  return { sessions, vision, prefill: second.seconds, decode: median(times), rssMiB, ...limit };
}

async function childSingle(steps: number): Promise<Measured> {
  const { openSession, run } = await import('../src/runtime/session.ts');
  const { readInputs } = await import('../src/runtime/tensor-files.ts');
  const inputs = await readInputs(INPUTS);
  let t = now();
  const session = await openSession(SINGLE);
  const sessions = now() - t;
  const feeds = { pixel_values: inputs.pixel_values!, input_ids: inputs.input_ids!, image_flags: inputs.image_flags! };
  await run(session, feeds); // warm-up
  t = now();
  await run(session, feeds);
  const prefill = now() - t;
  // Without a cache every new token is a whole forward over the longer sequence.
  const ids = inputs.input_ids!;
  const longer = { ...feeds, input_ids: { dtype: 'int64' as const, shape: [1, ids.shape[1]! + 1], data: BigInt64Array.from([...(ids.data as BigInt64Array), 1000n]) } };
  const times: number[] = [];
  for (let i = 0; i < Math.max(1, Math.min(steps, 2)); i++) {
    const t0 = now();
    await run(session, longer);
    times.push(now() - t0);
  }
  const rssMiB = peakRssMiB();
  await session.release();
  return { sessions, prefill, decode: median(times), rssMiB };
}

function runChild(kind: 'split' | 'single', steps: number, dir?: string): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const args = ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', kind, '--steps', String(steps), ...(dir ? ['--dir', dir] : [])];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1)!) as Measured) : reject(new Error(`${kind} child exited ${code}`))));
  });
}

/** `vlmc generate` from node start to the first token on stdout. */
function firstTokenSeconds(): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const child = spawn(process.execPath, [nodePath.join(ROOT, 'bin/vlmc.js'), 'generate', SPLIT, '--inputs', INPUTS, '--max-new-tokens', '2'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let first: number | undefined;
    child.stdout.on('data', (d: Buffer) => {
      if (first === undefined && d.toString().trim() !== '') first = now() - t0;
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 && first !== undefined ? resolve(first) : reject(new Error(`vlmc generate exited ${code}`))));
  });
}

// ---------------------------------------------------------------------------------------------

function parseArgs(argv: string[]): { steps: number; keep: boolean; gpu: boolean; dir?: string; child?: 'split' | 'single' } {
  const steps = argv.includes('--steps') ? Number(argv[argv.indexOf('--steps') + 1]) : 8;
  const child = argv.includes('--child') ? (argv[argv.indexOf('--child') + 1] as 'split' | 'single') : undefined;
  const dir = argv.includes('--dir') ? argv[argv.indexOf('--dir') + 1] : undefined;
  return { steps, keep: argv.includes('--keep'), gpu: argv.includes('--gpu'), ...(child ? { child } : {}), ...(dir ? { dir } : {}) };
}

/** --gpu: fused fp32 and fused + int4 split artifacts against the portable split, with their floors. */
async function compareTargets(ckptDir: string, steps: number, portable: Measured): Promise<boolean> {
  let t = now();
  await build({ weights: ckptDir, out: FUSED, split: true, target: 'gpu' });
  const fusedBuild = now() - t;
  t = now();
  await build({ weights: ckptDir, out: INT4, split: true, target: 'gpu', quant: { bits: 4, blockSize: 32, symmetric: true } });
  const int4Build = now() - t;
  const fused = await runChild('split', steps, FUSED);
  const int4 = await runChild('split', steps, INT4);
  const s = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(3));
  const row = (name: string, m: Measured) => `| ${name} | ${s(m.sessions)} | ${s(m.vision)} | ${s(m.prefill)} | ${s(m.decode)} | ${m.rssMiB.toFixed(0)} |`;
  console.log('\n--target gpu (split artifacts, CPU EP):\n');
  console.log('| split artifact | sessions (s) | vision (s) | prefill = first token (s) | decode step (s) | peak RSS (MiB) |');
  console.log('|---|---|---|---|---|---|');
  console.log(row('portable fp32', portable));
  console.log(row('gpu fp32 (fused)', fused));
  console.log(row('gpu fp32 fused + int4 (block 32, symmetric)', int4));
  const phases = ['sessions', 'vision', 'prefill', 'decode'] as const;
  const faster = phases.filter((p) => fused[p]! < portable[p]!);
  const speedup = portable.decode / int4.decode;
  console.log(`\nfused faster than portable in ${faster.length}/${phases.length} phases (${phases.map((p) => `${p} ${(portable[p]! / fused[p]!).toFixed(2)}x`).join(', ')})`);
  console.log(`int4 decode ${speedup.toFixed(2)}x faster than portable fp32 (>= ${FLOORS.int4DecodeSpeedup}), ${(fused.decode / int4.decode).toFixed(2)}x than fused fp32; builds: fused ${fusedBuild.toFixed(1)} s, int4 ${int4Build.toFixed(1)} s`);
  return faster.length === phases.length && speedup >= FLOORS.int4DecodeSpeedup;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.child) {
    const m = args.child === 'split' ? await childSplit(args.steps, args.dir) : await childSingle(args.steps);
    console.log(JSON.stringify(m));
    return;
  }
  const { model } = await benchModel();
  const ckpt = await ensureCheckpoint(model);
  console.error(`building fp32 artifacts from ${nodePath.relative(ROOT, ckpt.dir)} ...`);
  let t = now();
  if (!existsSync(nodePath.join(SINGLE, 'manifest.json'))) await build({ weights: ckpt.dir, out: SINGLE });
  const built = await build({ weights: ckpt.dir, out: SPLIT, split: true });
  console.error(`  built in ${(now() - t).toFixed(1)} s`);
  const seq = await writeInputs(built.model as InternVLChatModel, INPUTS);
  t = now();
  const split = await runChild('split', args.steps);
  const single = await runChild('single', args.steps);
  const firstToken = await firstTokenSeconds();
  const limit = split.decoderBytes! / 1e9 / split.bandwidth!;
  const ratio = split.decode / limit;
  const ok = ratio <= FLOORS.decodeOverLimit && split.sessions <= FLOORS.sessionsSeconds && firstToken <= FLOORS.firstTokenSeconds;
  const s = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(3));
  console.log(`InternVL2-1B-shaped, fp32, 1 tile 448 + ${PROMPT_TOKENS} prompt tokens (seq ${seq}), onnxruntime-node CPU; ${machine()}; ${new Date().toISOString().slice(0, 10)}\n`);
  console.log('| artifact | sessions (s) | vision (s) | prefill = first token (s) | decode step (s) | peak RSS (MiB) |');
  console.log('|---|---|---|---|---|---|');
  console.log(`| split (vision + embedding + decoder, KV cache) | ${s(split.sessions)} | ${s(split.vision)} | ${s(split.prefill)} | ${s(split.decode)} | ${split.rssMiB.toFixed(0)} |`);
  console.log(`| single graph (a step = a whole forward) | ${s(single.sessions)} | - | ${s(single.prefill)} | ${s(single.decode)} | ${single.rssMiB.toFixed(0)} |`);
  console.log(`\ndecode limit: the decoder's ${(split.decoderBytes! / 1e9).toFixed(2)} GB of weights / the streaming-read bandwidth measured between the steps (${split.bandwidth!.toFixed(1)} GB/s) = ${s(limit)} s; decode / limit ${ratio.toFixed(2)} (<= ${FLOORS.decodeOverLimit})`);
  console.log(`vlmc generate, whole process to the first token: ${firstToken.toFixed(2)} s (<= ${FLOORS.firstTokenSeconds}); split sessions ${split.sessions.toFixed(2)} s (<= ${FLOORS.sessionsSeconds}); decode speed-up over the single graph ${(single.decode / split.decode).toFixed(0)}x`);
  const gpuOk = args.gpu ? await compareTargets(ckpt.dir, args.steps, split) : true;
  console.log(`floors ${ok && gpuOk ? 'met' : 'MISSED'}; measured in ${(now() - t).toFixed(0)} s`);
  if (!args.keep) await rm(WORK, { recursive: true, force: true });
  if (!ok || !gpuOk) process.exitCode = 1;
}

await main();
