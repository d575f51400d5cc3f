/**
 * bench/peer: vlmc against onnxruntime/mobius (the closest other InternVL -> ONNX exporter), side
 * by side in one runtime (onnxruntime-node, CPU EP), from the same checkpoint.
 *
 *   npx tsx bench/peer.ts --mobius DIR [--python PY] [--pairs fused,portable,int4] [--steps 16]
 *                         [--runs 3] [--rebuild] [--no-rss] [--no-generate]
 *
 * 1. The BF16 InternVL2-1B-shaped checkpoint of bench/bind (made once, reused).
 * 2. vlmc's split artifacts, each built by `vlmc build` as a whole process (timed): portable fp32,
 *    `--target gpu` fp32 (fused) and `--target gpu --quant int4` (block 32, symmetric), under
 *    out/bench/peer/. mobius's under DIR/f32 and DIR/int4: built with ../shared/peers'
 *    mobius_build.py / mobius_build_int4.py (mobius's own functions; PY is the venv's python that
 *    has mobius, see ../shared/peers/README.md) when missing, else reused.
 * 3. Each pair (vlmc fused vs mobius fp32, vlmc portable vs mobius fp32, vlmc int4 vs mobius int4)
 *    in one child process, both sides open at once, ALTERNATING run by run (who goes first swaps
 *    every round), so both see the same machine: session creation (--runs rounds), vision (1 tile),
 *    prefill (embedding + decoder over the 322 tokens, after vision), decode step (embedding +
 *    decoder for one token; median of --steps). Between decode rounds, the machine's streaming-read
 *    bandwidth (bench/bandwidth.ts, 2 threads): each side's decode limit = the bytes its decoder
 *    reads per token / that bandwidth.
 * 4. Peak RSS (VmHWM) of each artifact alone in its own child: sessions, vision, prefill, 4 steps.
 * 5. `vlmc generate --max-new-tokens 2` on the fused artifact as a whole process (node start,
 *    sessions, vision, prefill) until its first token is on stdout, against mobius's sessions +
 *    vision + prefill from the fused pair.
 * Prints each pair as absolute medians and vlmc/mobius ratios, and the issue-21 targets.
 *
 * mobius's graphs are driven here as onnxruntime-genai would: vision_encoder(pixel_values) ->
 * embedding(input_ids, image_features [tokens, hidden]) -> decoder(inputs_embeds, attention_mask,
 * past_key_values.*) with its default session options (weight prepacking on); its decoder returns
 * logits for every position, as it is built.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import * as nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import type ort from 'onnxruntime-node';
import { benchModel, ensureCheckpoint, machine } from './bind.ts';
import { writeInputs } from './inputs.ts';
import { median, peakRssMiB } from './process-stats.ts';
import { initializerBytes, openBandwidthProbe, type BandwidthProbe } from './bandwidth.ts';
import { loadOrt, type HostTensor } from '../src/runtime/session.ts';
import { readInputs } from '../src/runtime/tensor-files.ts';
import type { InternVLChatModel } from '../src/models/internvl.ts';
import type { KvPair, SplitSession } from '../src/generate/session.ts';

const ROOT = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), '..');
const WORK = nodePath.join(ROOT, 'out', 'bench', 'peer');
const INPUTS = nodePath.join(WORK, 'inputs.safetensors');
const PEERS = nodePath.resolve(ROOT, '..', 'shared', 'peers');

type VlmcVariant = 'portable' | 'fused' | 'int4';
const VLMC_FLAGS: Record<VlmcVariant, string[]> = {
  portable: ['--split'],
  fused: ['--split', '--target', 'gpu'],
  int4: ['--split', '--target', 'gpu', '--quant', 'int4'],
};
const PEER_OF: Record<VlmcVariant, 'f32' | 'int4'> = { portable: 'f32', fused: 'f32', int4: 'int4' };
/** Issue 21's targets: vlmc / mobius ratios (decode per pair, vision + prefill) and decode / limit. */
const TARGETS = { fused: 0.9, portable: 1.0, int4: 0.7, visionPrefill: 0.9, decodeOverLimit: 1.2 };

const now = () => performance.now() / 1000;

// ---------------------------------------------------------------------------------------------
// The two sides, behind one interface

interface Side {
  readonly name: string;
  /** Bytes the decoder graph's weights take: a decode step streams them once. */
  readonly decodeBytes: number;
  open(): Promise<void>;
  release(): Promise<void>;
  vision(): Promise<void>;
  /** Embedding + decoder over the prompt, from an empty cache, with the last vision's features. */
  prefill(): Promise<void>;
  /** Embedding + decoder for the next (greedy) token. */
  step(): Promise<void>;
}

function argmaxLast(logits: ort.Tensor): number {
  const vocab = logits.dims.at(-1)!;
  const data = logits.data as Float32Array;
  const row = data.subarray(data.length - vocab);
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/** vlmc's own runtime (SplitSession), as `vlmc generate` drives it. */
async function vlmcSide(dir: string, inputs: Record<string, HostTensor>): Promise<Side> {
  const { SplitSession: Split } = await import('../src/generate/session.ts');
  let s: SplitSession | undefined;
  let features: ort.Tensor | undefined;
  let cache: KvPair[] = [];
  let token = 0;
  let past = 0;
  const seq = inputs.input_ids!.shape[1]!;
  return {
    name: `vlmc ${nodePath.basename(dir)}`,
    decodeBytes: initializerBytes(nodePath.join(dir, 'decoder.onnx')),
    async open() {
      s = await Split.open(dir);
    },
    async release() {
      await s?.release();
      s = undefined;
    },
    async vision() {
      features = await s!.vision(s!.tensor(inputs.pixel_values!));
    },
    async prefill() {
      const embeds = await s!.embed(s!.tensor(inputs.input_ids!), features!, s!.tensor(inputs.image_flags!));
      const out = await s!.decode(embeds, s!.tensor(inputs.attention_mask!), s!.int64(Array.from({ length: seq }, (_, i) => i), [1, seq]), s!.emptyCache(1), false);
      cache = out.present;
      token = argmaxLast(out.logits);
      past = seq;
    },
    async step() {
      const none = s!.noImageFeatures();
      const e = await s!.embed(s!.int64([token], [1, 1]), none.features, none.flags);
      const out = await s!.decode(e, s!.int64(new Array(past + 1).fill(1), [1, past + 1]), s!.int64([past], [1, 1]), cache, false);
      cache = out.present;
      token = argmaxLast(out.logits);
      past += 1;
    },
  };
}

/** mobius's three graphs with ORT's default session options, fed as onnxruntime-genai feeds them. */
async function mobiusSide(dir: string, inputs: Record<string, HostTensor>): Promise<Side> {
  const runtime = await loadOrt();
  const T = runtime.Tensor;
  let sessions: { vision: ort.InferenceSession; embedding: ort.InferenceSession; decoder: ort.InferenceSession } | undefined;
  let features: ort.Tensor | undefined;
  let cache: Record<string, ort.Tensor> = {};
  let token = 0;
  let past = 0;
  const ids = inputs.input_ids!;
  const seq = ids.shape[1]!;
  const file = (part: string) => nodePath.join(dir, part, 'model.onnx');
  const cacheNames = () => sessions!.decoder.inputNames.filter((n) => n.startsWith('past_key_values.'));
  const decoder = async (embeds: ort.Tensor, total: number) => {
    const feeds: Record<string, ort.Tensor> = { inputs_embeds: embeds, attention_mask: new T('int64', new BigInt64Array(total).fill(1n), [1, total]), ...cache };
    const out = await sessions!.decoder.run(feeds);
    cache = Object.fromEntries(cacheNames().map((n) => [n, out[n.replace('past_key_values.', 'present.')]!]));
    token = argmaxLast(out.logits!);
  };
  return {
    name: `mobius ${nodePath.basename(dir)}`,
    decodeBytes: initializerBytes(file('decoder')),
    async open() {
      const options = { executionProviders: ['cpu'], logSeverityLevel: 3 as const };
      const vision = await runtime.InferenceSession.create(file('vision_encoder'), options);
      const embedding = await runtime.InferenceSession.create(file('embedding'), options);
      sessions = { vision, embedding, decoder: await runtime.InferenceSession.create(file('decoder'), options) };
    },
    async release() {
      for (const s of Object.values(sessions ?? {})) await s.release();
      sessions = undefined;
    },
    async vision() {
      const pv = inputs.pixel_values!;
      features = (await sessions!.vision.run({ pixel_values: new T('float32', pv.data, pv.shape) })).image_features!;
    },
    async prefill() {
      const [, tokens, hidden] = features!.dims as [number, number, number];
      const flat = new T('float32', features!.data as Float32Array, [features!.dims[0]! * tokens, hidden]);
      const embeds = (await sessions!.embedding.run({ input_ids: new T('int64', ids.data, ids.shape), image_features: flat })).inputs_embeds!;
      cache = Object.fromEntries(cacheNames().map((n) => [n, new T('float32', new Float32Array(0), [1, kvHeadsOf(sessions!.decoder, n), 0, headDimOf(sessions!.decoder, n)])]));
      await decoder(embeds, seq);
      past = seq;
    },
    async step() {
      const hidden = features!.dims[2]!;
      // Its embedding graph gathers from image_features even where no token is an image token, so
      // it needs one row (unused: Where keeps the text embedding).
      const e = (await sessions!.embedding.run({ input_ids: new T('int64', BigInt64Array.of(BigInt(token)), [1, 1]), image_features: new T('float32', new Float32Array(hidden), [1, hidden]) })).inputs_embeds!;
      await decoder(e, past + 1);
      past += 1;
    },
  };
}

/** A cache input's fixed dims ([batch, kv_heads, past, head_dim]) from the session's metadata. */
function cacheDim(session: ort.InferenceSession, name: string, axis: number): number {
  const meta = session.inputMetadata.find((m) => m.name === name);
  const dim = meta && meta.isTensor ? meta.shape[axis] : undefined;
  if (typeof dim !== 'number') throw new Error(`mobius decoder input ${name}: dim ${axis} is not fixed`);
  return dim;
}
const kvHeadsOf = (s: ort.InferenceSession, n: string) => cacheDim(s, n, 1);
const headDimOf = (s: ort.InferenceSession, n: string) => cacheDim(s, n, 3);

// ---------------------------------------------------------------------------------------------
// Child: one pair, alternating

interface Phases {
  sessions: number[];
  vision: number[];
  prefill: number[];
  decode: number[];
}

interface PairResult {
  names: [string, string];
  bytes: [number, number];
  phases: [Phases, Phases];
  bandwidthGBs: number[];
}

async function timed(f: () => Promise<void>): Promise<number> {
  const t0 = now();
  await f();
  return now() - t0;
}

/**
 * ONNX Runtime's pool threads spin for a while after a run; on 2 cores the other side's spinning
 * threads would take the cores from the next run (measured: whichever side ran second was ~1.7x
 * slower). Each timed run starts after this quiet time, so neither side pays for the other.
 */
const SETTLE_MS = 150;
const settle = () => new Promise((r) => setTimeout(r, SETTLE_MS));

/** Runs f for both sides, the order swapped every round; returns each side's time. */
async function alternate(sides: [Side, Side], round: number, f: (s: Side) => Promise<void>): Promise<[number, number]> {
  const order = round % 2 === 0 ? [0, 1] : [1, 0];
  const t: [number, number] = [0, 0];
  for (const i of order) {
    await settle();
    t[i] = await timed(() => f(sides[i]!));
  }
  return t;
}

async function childPair(a: string, b: string, steps: number, runs: number): Promise<PairResult> {
  const inputs = await readInputs(INPUTS);
  const sides: [Side, Side] = [await vlmcSide(a, inputs), await mobiusSide(b, inputs)];
  const phases: [Phases, Phases] = [
    { sessions: [], vision: [], prefill: [], decode: [] },
    { sessions: [], vision: [], prefill: [], decode: [] },
  ];
  const record = (phase: keyof Phases, t: [number, number]) => t.forEach((x, i) => phases[i]![phase].push(x));
  for (let r = 0; r < runs; r++) {
    record('sessions', await alternate(sides, r, (s) => s.open()));
    if (r < runs - 1) for (const s of sides) await s.release();
  }
  for (const s of sides) await s.vision(); // warm-up
  for (let r = 0; r < runs; r++) record('vision', await alternate(sides, r, (s) => s.vision()));
  for (const s of sides) await s.prefill(); // warm-up
  for (let r = 0; r < runs; r++) record('prefill', await alternate(sides, r, (s) => s.prefill()));
  for (const s of sides) await s.step(); // warm-up
  const probe: BandwidthProbe = await openBandwidthProbe(2, 512);
  const bandwidth: number[] = [];
  for (let r = 0; r < steps; r++) {
    record('decode', await alternate(sides, r, (s) => s.step()));
    await settle();
    bandwidth.push((await probe.run()).gbPerSecond);
  }
  await probe.close();
  for (const s of sides) await s.release();
  return { names: [sides[0].name, sides[1].name], bytes: [sides[0].decodeBytes, sides[1].decodeBytes], phases, bandwidthGBs: bandwidth };
}

/** Child: one artifact alone, for its peak RSS. */
async function childRss(side: 'vlmc' | 'mobius', dir: string): Promise<{ rssMiB: number }> {
  const inputs = await readInputs(INPUTS);
  const s = side === 'vlmc' ? await vlmcSide(dir, inputs) : await mobiusSide(dir, inputs);
  await s.open();
  await s.vision();
  await s.prefill();
  for (let i = 0; i < 4; i++) await s.step();
  const rssMiB = peakRssMiB();
  await s.release();
  return { rssMiB };
}

// ---------------------------------------------------------------------------------------------
// Parent: builds, children, report

function runNode(args: string[], onLine?: (t: number) => void): Promise<{ seconds: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      if (out === '' && d.toString().trim() !== '') onLine?.(now() - t0);
      out += d;
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve({ seconds: now() - t0, stdout: out }) : reject(new Error(`node ${args.join(' ')} exited ${code}`))));
  });
}

function runProcess(cmd: string, args: string[], cwd: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(now() - t0) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}`))));
  });
}

function child<T>(args: string[]): Promise<T> {
  return runNode(['--import', 'tsx', fileURLToPath(import.meta.url), ...args]).then((r) => JSON.parse(r.stdout.trim().split('\n').at(-1)!) as T);
}

const vlmcDir = (v: VlmcVariant) => nodePath.join(WORK, `vlmc-${v}`);

async function buildVlmc(v: VlmcVariant, ckpt: string, rebuild: boolean): Promise<number | undefined> {
  const out = vlmcDir(v);
  if (!rebuild && existsSync(nodePath.join(out, 'pipeline.json'))) return undefined;
  await rm(out, { recursive: true, force: true });
  return (await runNode([nodePath.join(ROOT, 'bin', 'vlmc.js'), 'build', '--weights', ckpt, '--out', out, ...VLMC_FLAGS[v], '--quiet'])).seconds;
}

async function buildMobius(kind: 'f32' | 'int4', mobius: string, ckpt: string, python: string | undefined): Promise<number | undefined> {
  const out = nodePath.join(mobius, kind);
  if (existsSync(nodePath.join(out, 'decoder', 'model.onnx'))) return undefined;
  if (!python) throw new Error(`${out}: no mobius artifact; pass --python <venv python with mobius> to build it (../shared/peers/README.md)`);
  await mkdir(mobius, { recursive: true });
  const script = nodePath.join(PEERS, kind === 'f32' ? 'mobius_build.py' : 'mobius_build_int4.py');
  return runProcess(python, [script, '--ckpt', ckpt, '--out', out, '--ep', 'cpu'], mobius);
}

interface Args {
  mobius: string;
  python?: string;
  pairs: VlmcVariant[];
  steps: number;
  runs: number;
  rebuild: boolean;
  rss: boolean;
  generate: boolean;
}

function parseArgs(argv: string[]): Args {
  const value = (flag: string) => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : undefined);
  const mobius = value('--mobius');
  if (!mobius) {
    console.error('bench/peer: --mobius DIR is required (mobius artifacts there, or built there with --python)');
    process.exit(2);
  }
  const pairs = (value('--pairs') ?? 'fused,portable,int4').split(',') as VlmcVariant[];
  for (const p of pairs) {
    if (!(p in VLMC_FLAGS)) {
      console.error(`bench/peer: --pairs: unknown variant '${p}' (portable, fused, int4)`);
      process.exit(2);
    }
  }
  const python = value('--python');
  return {
    mobius: nodePath.resolve(mobius),
    ...(python ? { python } : {}),
    pairs,
    steps: Number(value('--steps') ?? 16),
    runs: Number(value('--runs') ?? 3),
    rebuild: argv.includes('--rebuild'),
    rss: !argv.includes('--no-rss'),
    generate: !argv.includes('--no-generate'),
  };
}

const f3 = (x: number) => x.toFixed(3);

function reportPair(r: PairResult): { decodeRatio: number; pairedDecodeRatio: number; visionPrefillRatio: number; mobiusFirst: number; decodeOverLimit: number } {
  const [a, b] = r.phases;
  const bw = median(r.bandwidthGBs);
  const limits: [number, number] = [r.bytes[0] / 1e9 / bw, r.bytes[1] / 1e9 / bw];
  console.log(`\n### ${r.names[0]} vs ${r.names[1]} (alternating; medians)\n`);
  console.log('| phase | vlmc | mobius | vlmc / mobius | min vlmc / min mobius |');
  console.log('|---|---:|---:|---:|---:|');
  for (const p of ['sessions', 'vision', 'prefill', 'decode'] as const) {
    const min = (x: number[]) => Math.min(...x);
    console.log(`| ${p}${p === 'decode' ? ` (${a.decode.length} steps)` : ` (${a[p].length} runs)`}, s | ${f3(median(a[p]))} | ${f3(median(b[p]))} | **${(median(a[p]) / median(b[p])).toFixed(2)}** | ${(min(a[p]) / min(b[p])).toFixed(2)} |`);
  }
  // Each round ran both sides back to back: the median of the per-round ratios cancels the load's drift between rounds.
  const paired = median(a.decode.map((x, i) => x / b.decode[i]!));
  console.log(`| decode, median of per-round ratios | | | **${paired.toFixed(2)}** | |`);
  const vp = (x: Phases) => median(x.vision) + median(x.prefill);
  console.log(`| vision + prefill, s | ${f3(vp(a))} | ${f3(vp(b))} | **${(vp(a) / vp(b)).toFixed(2)}** | |`);
  console.log(`| decode limit (decoder bytes / streaming read ${bw.toFixed(1)} GB/s), s | ${f3(limits[0])} (${(r.bytes[0] / 1e9).toFixed(2)} GB) | ${f3(limits[1])} (${(r.bytes[1] / 1e9).toFixed(2)} GB) | | |`);
  console.log(`| decode / limit | ${(median(a.decode) / limits[0]).toFixed(2)} | ${(median(b.decode) / limits[1]).toFixed(2)} | | |`);
  console.log(`\nstreaming-read bandwidth between decode rounds: median ${bw.toFixed(1)}, best ${Math.max(...r.bandwidthGBs).toFixed(1)} GB/s; decode rounds vlmc ${a.decode.map((x) => (x * 1000).toFixed(0)).join(' ')} ms; mobius ${b.decode.map((x) => (x * 1000).toFixed(0)).join(' ')} ms`);
  return { decodeRatio: median(a.decode) / median(b.decode), pairedDecodeRatio: paired, visionPrefillRatio: vp(a) / vp(b), mobiusFirst: median(b.sessions) + vp(b), decodeOverLimit: median(a.decode) / limits[0] };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    const value = (flag: string) => argv[argv.indexOf(flag) + 1]!;
    const result = argv[1] === 'pair' ? await childPair(value('--a'), value('--b'), Number(value('--steps')), Number(value('--runs'))) : await childRss(value('--side') as 'vlmc' | 'mobius', value('--dir'));
    console.log(JSON.stringify(result));
    return;
  }
  const args = parseArgs(argv);
  const { model } = await benchModel();
  const ckpt = await ensureCheckpoint(model);
  await mkdir(WORK, { recursive: true });
  const builds: string[] = [];
  for (const v of new Set(args.pairs)) {
    const s = await buildVlmc(v, ckpt.dir, args.rebuild);
    if (s !== undefined) builds.push(`vlmc ${v} ${s.toFixed(2)} s`);
  }
  for (const k of new Set(args.pairs.map((p) => PEER_OF[p]))) {
    const s = await buildMobius(k, args.mobius, ckpt.dir, args.python);
    if (s !== undefined) builds.push(`mobius ${k} ${s.toFixed(1)} s`);
  }
  const seq = await writeInputs((await benchModel()).model as InternVLChatModel, INPUTS);
  console.log(`## vlmc vs mobius, InternVL2-1B shape, 1 tile + 64 prompt tokens (seq ${seq}), onnxruntime-node CPU EP\n`);
  console.log(`${machine()}; ${new Date().toISOString().slice(0, 16)}Z; load average at start ${(await import('node:os')).loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  if (builds.length > 0) console.log(`builds (whole process): ${builds.join(', ')}`);
  const results = new Map<VlmcVariant, ReturnType<typeof reportPair>>();
  for (const v of args.pairs) {
    const r = await child<PairResult>(['--child', 'pair', '--a', vlmcDir(v), '--b', nodePath.join(args.mobius, PEER_OF[v]), '--steps', String(args.steps), '--runs', String(args.runs)]);
    results.set(v, reportPair(r));
  }
  if (args.rss) {
    console.log('\n| artifact | peak RSS (sessions, vision, prefill, 4 steps), MiB |\n|---|---:|');
    for (const v of args.pairs) console.log(`| vlmc ${v} | ${(await child<{ rssMiB: number }>(['--child', 'rss', '--side', 'vlmc', '--dir', vlmcDir(v)])).rssMiB.toFixed(0)} |`);
    for (const k of new Set(args.pairs.map((p) => PEER_OF[p]))) console.log(`| mobius ${k} | ${(await child<{ rssMiB: number }>(['--child', 'rss', '--side', 'mobius', '--dir', nodePath.join(args.mobius, k)])).rssMiB.toFixed(0)} |`);
  }
  console.log('\n### issue 21 targets\n');
  for (const v of args.pairs) {
    const r = results.get(v)!;
    const met = (ok: boolean) => (ok ? 'met' : 'not met');
    console.log(`- ${v}: decode vlmc/mobius ${r.decodeRatio.toFixed(2)}, paired ${r.pairedDecodeRatio.toFixed(2)} (target <= ${TARGETS[v]}): ${met(Math.max(r.decodeRatio, r.pairedDecodeRatio) <= TARGETS[v])}; vision + prefill ${r.visionPrefillRatio.toFixed(2)} (<= ${TARGETS.visionPrefill}): ${met(r.visionPrefillRatio <= TARGETS.visionPrefill)}; decode / limit ${r.decodeOverLimit.toFixed(2)} (<= ${TARGETS.decodeOverLimit}): ${met(r.decodeOverLimit <= TARGETS.decodeOverLimit)}`);
  }
  const fused = results.get('fused');
  if (args.generate && fused) {
    let first = NaN;
    await runNode([nodePath.join(ROOT, 'bin', 'vlmc.js'), 'generate', vlmcDir('fused'), '--inputs', INPUTS, '--max-new-tokens', '2'], (t) => (first = t));
    console.log(`- vlmc generate (fused), whole process to the first token ${first.toFixed(2)} s vs mobius sessions + vision + prefill ${fused.mobiusFirst.toFixed(2)} s: ${first <= fused.mobiusFirst ? 'met' : 'not met'}`);
  }
}

await main();
