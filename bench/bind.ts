/**
 * bench/bind: how fast `vlmc build` binds a real-sized checkpoint, compared with a plain copy of
 * the same bytes on the same disk.
 *
 *   npx tsx bench/bind.ts [--runs N] [--vlmc path/to/bin/vlmc.js] [--clean]
 *
 * 1. Makes (once, then reuses) a synthetic BF16 unified checkpoint with InternVL2-1B's real shapes
 *    under out/bench/, generated tensor by tensor in 16 MiB chunks and sharded into files of at
 *    most 1 GB with model.safetensors.index.json.
 * 2. Reads the shards once so both measurements run against a warm page cache, copies them once
 *    untimed (the first large write on a VM can be much slower), then per run:
 *    (a) a plain copy of the shard files (read + write through one buffer, no fsync), with buffers
 *        of 1, 4, 16 and 64 MiB, in rotating order: the fastest median is the baseline;
 *    (b) `node bin/vlmc.js build --weights <ckpt> --out <artifact> --dtype fp16 --quiet` as a child
 *        process: wall clock and peak RSS (GNU time's %M, else polling /proc/<pid>/status VmHWM).
 *    Neither side fsyncs (vlmc build does not), outputs are deleted and `sync` runs between runs.
 *    Bind throughput is checkpoint tensor bytes / whole-process wall clock, startup included; the
 *    startup alone (`vlmc --version`) is shown next to it.
 * 3. Prints a markdown table row (medians over the runs) and checks the floors:
 *    bind/copy throughput ratio >= 0.5 (against the fastest copy) and peak RSS <= 512 MiB + the
 *    largest tensor.
 * Exit code 1 when a floor is missed. --vlmc times another checkout's CLI (before/after
 * comparisons); --clean removes the checkpoint afterwards.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, totalmem } from 'node:os';
import * as nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { assignPaths, collectParams, InternVLChatModel } from '../src/index.ts';
import { internvl2OneB } from './shapes.ts';
import { loadGraphFile } from '../src/graph-file.ts';
import { internvlConfigJson } from '../src/models/to-config.ts';
import { withTempSibling } from '../src/fs/atomic.ts';

const ROOT = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), '..');
const BENCH_DIR = nodePath.join(ROOT, 'out', 'bench');
const CKPT_DIR = nodePath.join(BENCH_DIR, 'internvl2-1b-bf16');
const GRAPH_FILE = nodePath.join(ROOT, 'graphs', 'internvl2-1b.ts');
const STAMP_FILE = 'bench-checkpoint.json';
const STAMP_VERSION = 1;
const SHARD_LIMIT = 1_000_000_000;
const GEN_CHUNK = 16 * 1024 * 1024;
const MIB = 1024 * 1024;
const COPY_BUFFERS_MIB = [1, 4, 16, 64];
const WARM_BUFFER = 16 * MIB;
const RSS_ALLOWANCE = 512 * MIB;
const RATIO_FLOOR = 0.5;

interface TensorSpec {
  name: string;
  shape: number[];
  bytes: number;
}

interface Shard {
  file: string;
  tensors: TensorSpec[];
}

export interface CheckpointInfo {
  dir: string;
  files: string[];
  fileBytes: number;
  tensorBytes: number;
  largestTensor: TensorSpec;
  reused: boolean;
}

// ---------------------------------------------------------------------------------------------
// The model

/** graphs/internvl2-1b.ts when present, else the same configuration built here. */
export async function benchModel(): Promise<{ model: InternVLChatModel; from: string }> {
  if (existsSync(GRAPH_FILE)) {
    const model = await loadGraphFile(GRAPH_FILE);
    if (model instanceof InternVLChatModel) return { model, from: nodePath.relative(ROOT, GRAPH_FILE) };
  }
  return { model: internvl2OneB(), from: 'bench/shapes.ts (built in code)' };
}

function tensorsOf(model: InternVLChatModel): TensorSpec[] {
  assignPaths(model);
  const specs = collectParams(model).map((p) => ({ name: p.name, shape: [...p.shape], bytes: p.shape.reduce((a, b) => a * b, 1) * 2 }));
  return specs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

// ---------------------------------------------------------------------------------------------
// The synthetic checkpoint

/** Key-ordered tensors packed greedily into shards of at most SHARD_LIMIT data bytes. */
function planShards(tensors: TensorSpec[]): Shard[] {
  const groups: TensorSpec[][] = [[]];
  let size = 0;
  for (const t of tensors) {
    if (size + t.bytes > SHARD_LIMIT && groups.at(-1)!.length > 0) {
      groups.push([]);
      size = 0;
    }
    groups.at(-1)!.push(t);
    size += t.bytes;
  }
  const n = String(groups.length).padStart(5, '0');
  return groups.map((g, i) => ({ file: `model-${String(i + 1).padStart(5, '0')}-of-${n}.safetensors`, tensors: g }));
}

/** 8-byte length + JSON header padded with spaces to 8 bytes, laid out like writeSafetensors. */
function safetensorsPrefix(tensors: TensorSpec[]): Uint8Array {
  let offset = 0;
  const members = ['"__metadata__":{"format":"pt"}'];
  for (const t of tensors) {
    members.push(`${JSON.stringify(t.name)}:{"dtype":"BF16","shape":${JSON.stringify(t.shape)},"data_offsets":[${offset},${offset + t.bytes}]}`);
    offset += t.bytes;
  }
  const json = new TextEncoder().encode(`{${members.join(',')}}`);
  const headerLength = Math.ceil(json.byteLength / 8) * 8;
  const prefix = new Uint8Array(8 + headerLength).fill(0x20, 8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(headerLength), true);
  prefix.set(json, 8);
  return prefix;
}

/**
 * Weight-like BF16 bit patterns from a xorshift32 stream, two per step: random sign and mantissa,
 * exponent 2^-14 .. 2^-4 (all normal in F16, so the conversion does real rounding work).
 */
function fillBf16(out: Uint16Array, seed: { s: number }): void {
  let s = seed.s;
  for (let i = 0; i < out.length; i += 2) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = bf16Like(s & 0xffff);
    if (i + 1 < out.length) out[i + 1] = bf16Like(s >>> 16);
  }
  seed.s = s;
}

function bf16Like(v: number): number {
  const exponent = 0x71 + ((v >>> 7) & 7) + ((v >>> 10) & 3);
  return (v & 0x8000) | (exponent << 7) | (v & 0x7f);
}

async function writeShard(path: string, shard: Shard, seed: { s: number }): Promise<number> {
  const file = await open(path, 'wx');
  const buffer = new Uint16Array(GEN_CHUNK / 2);
  try {
    const prefix = safetensorsPrefix(shard.tensors);
    let position = await writeAll(file, prefix, 0);
    for (const t of shard.tensors) {
      for (let done = 0; done < t.bytes; done += GEN_CHUNK) {
        const chunk = buffer.subarray(0, Math.min(GEN_CHUNK, t.bytes - done) / 2);
        fillBf16(chunk, seed);
        position = await writeAll(file, new Uint8Array(chunk.buffer, 0, chunk.byteLength), position);
      }
    }
    return position;
  } finally {
    await file.close();
  }
}

async function writeAll(file: Awaited<ReturnType<typeof open>>, bytes: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < bytes.byteLength) done += (await file.write(bytes, done, bytes.byteLength - done, position + done)).bytesWritten;
  return position + done;
}

function stampOf(shards: Shard[], sizes: number[]): Record<string, unknown> {
  return { version: STAMP_VERSION, files: Object.fromEntries(shards.map((s, i) => [s.file, sizes[i]])) };
}

async function existingMatches(expected: Record<string, unknown>): Promise<boolean> {
  const stampPath = nodePath.join(CKPT_DIR, STAMP_FILE);
  if (!existsSync(stampPath)) return false;
  const stamp = JSON.parse(await readFile(stampPath, 'utf8')) as { version?: number; files?: Record<string, number> };
  if (JSON.stringify(stamp) !== JSON.stringify(expected)) return false;
  for (const [file, size] of Object.entries(stamp.files ?? {})) {
    const info = await stat(nodePath.join(CKPT_DIR, file)).catch(() => undefined);
    if (info?.size !== size) return false;
  }
  return true;
}

export async function ensureCheckpoint(model: InternVLChatModel): Promise<CheckpointInfo> {
  const tensors = tensorsOf(model);
  const shards = planShards(tensors);
  const sizes = shards.map((s) => safetensorsPrefix(s.tensors).byteLength + s.tensors.reduce((n, t) => n + t.bytes, 0));
  const stamp = stampOf(shards, sizes);
  const reused = await existingMatches(stamp);
  if (!reused) await generateCheckpoint(model, tensors, shards, stamp);
  const info = {
    dir: CKPT_DIR,
    files: shards.map((s) => nodePath.join(CKPT_DIR, s.file)),
    fileBytes: sizes.reduce((a, b) => a + b, 0),
    tensorBytes: tensors.reduce((n, t) => n + t.bytes, 0),
    largestTensor: tensors.reduce((a, b) => (b.bytes > a.bytes ? b : a)),
    reused,
  };
  return info;
}

async function generateCheckpoint(model: InternVLChatModel, tensors: TensorSpec[], shards: Shard[], stamp: Record<string, unknown>): Promise<void> {
  const total = tensors.reduce((n, t) => n + t.bytes, 0);
  console.error(`generating ${(total / 1e9).toFixed(2)} GB BF16 checkpoint in ${shards.length} shards under ${nodePath.relative(ROOT, CKPT_DIR)} ...`);
  const started = performance.now();
  const seed = { s: 0x9e3779b9 | 0 };
  await rm(CKPT_DIR, { recursive: true, force: true });
  await withTempSibling(CKPT_DIR, async (tmp) => {
    for (const shard of shards) await writeShard(nodePath.join(tmp, shard.file), shard, seed);
    const weightMap = Object.fromEntries(shards.flatMap((s) => s.tensors.map((t) => [t.name, s.file])));
    await writeFile(nodePath.join(tmp, 'model.safetensors.index.json'), `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`);
    await writeFile(nodePath.join(tmp, 'config.json'), `${JSON.stringify(internvlConfigJson(model), null, 2)}\n`);
    await writeFile(nodePath.join(tmp, 'added_tokens.json'), `${JSON.stringify({ '<IMG_CONTEXT>': 151648 }, null, 2)}\n`);
    await writeFile(nodePath.join(tmp, STAMP_FILE), JSON.stringify(stamp));
  });
  console.error(`  done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

// ---------------------------------------------------------------------------------------------
// Measurements

/** Reads every shard once so the page cache holds them for both measurements. */
async function warmCache(files: string[]): Promise<void> {
  const buffer = new Uint8Array(WARM_BUFFER);
  for (const path of files) {
    const file = await open(path, 'r');
    try {
      while ((await file.read(buffer, 0, buffer.byteLength, null)).bytesRead > 0);
    } finally {
      await file.close();
    }
  }
}

/** (a) Plain copy: each shard read and written sequentially through one buffer. */
async function plainCopy(files: string[], destDir: string, bufferBytes: number): Promise<number> {
  await mkdir(destDir, { recursive: true });
  const buffer = new Uint8Array(bufferBytes);
  const started = performance.now();
  for (const path of files) {
    const src = await open(path, 'r');
    const dst = await open(nodePath.join(destDir, nodePath.basename(path)), 'w');
    try {
      let position = 0;
      for (;;) {
        const { bytesRead } = await src.read(buffer, 0, buffer.byteLength, position);
        if (bytesRead === 0) break;
        position = await writeAll(dst, buffer.subarray(0, bytesRead), position);
      }
    } finally {
      await src.close();
      await dst.close();
    }
  }
  return (performance.now() - started) / 1000;
}

interface BindRun {
  seconds: number;
  peakRssBytes: number;
  rssVia: string;
}

const GNU_TIME = '/usr/bin/time';

/** (b) `vlmc build` as a child process: wall clock and peak resident set. */
async function bindOnce(vlmc: string, ckpt: string, out: string): Promise<BindRun> {
  const args = [vlmc, 'build', '--weights', ckpt, '--out', out, '--dtype', 'fp16', '--quiet'];
  const useTime = hasGnuTime();
  const rssFile = `${out}.rss`;
  const command = useTime ? GNU_TIME : process.execPath;
  const argv = useTime ? ['-f', '%M', '-o', rssFile, process.execPath, ...args] : args;
  const started = performance.now();
  const child = spawn(command, argv, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  const poll = useTime ? undefined : pollVmHWM(child.pid!);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (c) => resolve(c));
  });
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`vlmc build exited with ${code}`);
  if (useTime) {
    const kib = Number(readFileSync(rssFile, 'utf8').trim().split('\n').at(-1));
    await rm(rssFile, { force: true });
    return { seconds, peakRssBytes: kib * 1024, rssVia: 'GNU time %M' };
  }
  return { seconds, peakRssBytes: poll!.stop(), rssVia: '/proc VmHWM polling' };
}

function hasGnuTime(): boolean {
  if (!existsSync(GNU_TIME)) return false;
  const probe = spawnSync(GNU_TIME, ['-f', '%M', 'true'], { encoding: 'utf8' });
  return probe.status === 0 && /^\d+\s*$/.test(probe.stderr.trim().split('\n').at(-1) ?? '');
}

/** Polls the child's high-water mark every 20 ms; the last successful read wins. */
function pollVmHWM(pid: number): { stop: () => number } {
  let peak = 0;
  const read = () => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) peak = Math.max(peak, Number(m[1]) * 1024);
    } catch {
      // the process has exited
    }
  };
  const timer = setInterval(read, 20);
  return { stop: () => (clearInterval(timer), peak) };
}

/** Wall clock of `vlmc --version`: the fixed cost (node, tsx, CLI imports) inside every bind time. */
function startupSeconds(vlmc: string): number {
  const times = [0, 1, 2].map(() => {
    const started = performance.now();
    const r = spawnSync(process.execPath, [vlmc, '--version'], { cwd: ROOT, stdio: 'ignore' });
    if (r.status !== 0) throw new Error(`${vlmc} --version exited with ${r.status}`);
    return (performance.now() - started) / 1000;
  });
  return median(times);
}

/** Removes `path` and flushes dirty pages, so the next run starts from the same state. */
async function settle(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
  spawnSync('sync');
}

// ---------------------------------------------------------------------------------------------
// Report

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function machine(): string {
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  return `${availableParallelism()} CPU (${cpu}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, node ${process.version}`;
}

interface Args {
  runs: number;
  vlmc: string;
  clean: boolean;
}

function parseArgs(argv: string[]): Args {
  const value = (flag: string) => {
    const at = argv.indexOf(flag);
    return at >= 0 ? argv[at + 1] : undefined;
  };
  const runs = Number(value('--runs') ?? 3);
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs needs a positive integer');
  const vlmc = nodePath.resolve(value('--vlmc') ?? nodePath.join(ROOT, 'bin', 'vlmc.js'));
  if (!existsSync(vlmc)) throw new Error(`${vlmc}: no such CLI`);
  return { runs, vlmc, clean: argv.includes('--clean') };
}

/** Per run: one copy per buffer size, then one bind; outputs removed and flushed between steps. */
async function measure(args: Args, ckpt: CheckpointInfo): Promise<{ copySeconds: Map<number, number[]>; binds: BindRun[] }> {
  const copySeconds = new Map<number, number[]>(COPY_BUFFERS_MIB.map((mib) => [mib, []]));
  const binds: BindRun[] = [];
  for (let i = 0; i < args.runs; i++) {
    const copies: string[] = [];
    for (const mib of rotate(COPY_BUFFERS_MIB, i)) {
      const copyDir = nodePath.join(BENCH_DIR, `copy-${process.pid}`);
      const seconds = await plainCopy(ckpt.files, copyDir, mib * MIB);
      await settle(copyDir);
      copySeconds.get(mib)!.push(seconds);
      copies.push(`${mib} MiB ${seconds.toFixed(2)} s`);
    }
    const artifact = nodePath.join(BENCH_DIR, `artifact-${process.pid}`);
    const bind = await bindOnce(args.vlmc, ckpt.dir, artifact);
    await settle(artifact);
    binds.push(bind);
    console.error(`run ${i + 1}/${args.runs}: copy ${copies.join(', ')}; bind ${bind.seconds.toFixed(2)} s, peak RSS ${(bind.peakRssBytes / MIB).toFixed(0)} MiB`);
  }
  return { copySeconds, binds };
}

/** `xs` started at position `by`, so no buffer size always runs first. */
function rotate<T>(xs: readonly T[], by: number): T[] {
  const at = by % xs.length;
  return [...xs.slice(at), ...xs.slice(0, at)];
}

/**
 * One untimed copy: on a VM the first large write after a quiet spell can be several times
 * slower (guest memory handed back to the host is faulted in again), which would skew run 1.
 */
async function warmWrites(files: string[]): Promise<void> {
  const dir = nodePath.join(BENCH_DIR, `warmup-${process.pid}`);
  await plainCopy(files, dir, WARM_BUFFER);
  await settle(dir);
}

function command(args: Args): string {
  const vlmc = nodePath.relative(ROOT, args.vlmc);
  return `npx tsx bench/bind.ts --runs ${args.runs}${vlmc === nodePath.join('bin', 'vlmc.js') ? '' : ` --vlmc ${vlmc}`}`;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const { model, from } = await benchModel();
  const ckpt = await ensureCheckpoint(model);
  console.error(`checkpoint ${nodePath.relative(ROOT, ckpt.dir)}: ${ckpt.files.length} shards, ${(ckpt.fileBytes / 1e9).toFixed(3)} GB${ckpt.reused ? ' (reused)' : ''}; model from ${from}`);
  spawnSync('sync');
  await warmCache(ckpt.files);
  await warmWrites(ckpt.files);
  const { copySeconds, binds } = await measure(args, ckpt);
  const startup = startupSeconds(args.vlmc);

  const copyGBs = (mib: number) => ckpt.fileBytes / 1e9 / median(copySeconds.get(mib)!);
  const bestMib = COPY_BUFFERS_MIB.reduce((a, b) => (copyGBs(b) > copyGBs(a) ? b : a));
  const largeMib = COPY_BUFFERS_MIB.at(-1)!;
  const bindSeconds = median(binds.map((b) => b.seconds));
  const bindGBs = ckpt.tensorBytes / 1e9 / bindSeconds;
  const ratio = bindGBs / copyGBs(bestMib);
  const peakRss = Math.max(...binds.map((b) => b.peakRssBytes));
  const bound = RSS_ALLOWANCE + ckpt.largestTensor.bytes;
  const ok = ratio >= RATIO_FLOOR && peakRss <= bound;

  console.log('| command | checkpoint | copy GB/s (fastest buffer) | copy GB/s (64 MiB) | bind s (startup) | bind GB/s | bind/copy | bind/copy (64 MiB) | peak RSS | RSS bound | floors | machine | date |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  console.log(
    `| \`${command(args)}\` | ${(ckpt.tensorBytes / 1e9).toFixed(2)} GB BF16 -> fp16, ${ckpt.files.length} shards ` +
      `| ${copyGBs(bestMib).toFixed(2)} (${bestMib} MiB) | ${copyGBs(largeMib).toFixed(2)} | ${bindSeconds.toFixed(2)} (${startup.toFixed(2)}) | ${bindGBs.toFixed(2)} ` +
      `| ${ratio.toFixed(2)} (floor ${RATIO_FLOOR}) | ${(bindGBs / copyGBs(largeMib)).toFixed(2)} ` +
      `| ${(peakRss / MIB).toFixed(0)} MiB (${binds[0]!.rssVia}) | ${(bound / MIB).toFixed(0)} MiB | ${ok ? 'met' : 'MISSED'} | ${machine()} | ${new Date().toISOString().slice(0, 10)} |`,
  );
  const perSize = COPY_BUFFERS_MIB.map((mib) => `${mib} MiB ${copyGBs(mib).toFixed(2)}`).join(', ');
  console.error(`medians over ${args.runs} runs, warm page cache, no fsync. Copy GB/s by buffer: ${perSize}. Largest tensor ${ckpt.largestTensor.name} ${(ckpt.largestTensor.bytes / MIB).toFixed(0)} MiB`);
  if (args.clean) await rm(ckpt.dir, { recursive: true, force: true });
  if (!ok) process.exitCode = 1;
}

// bench/infer imports the checkpoint maker; only a direct run benchmarks binding.
if (process.argv[1] && fileURLToPath(import.meta.url) === nodePath.resolve(process.argv[1])) await main();
