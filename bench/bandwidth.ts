/**
 * bench/bandwidth: the machine's streaming-read memory bandwidth, measured directly: `threads`
 * worker threads each stream their own buffer (far larger than any cache) with WebAssembly SIMD
 * loads, started together; bandwidth = bytes read by all / wall time of the slowest. This is the
 * limit a decode step that reads every weight once per token can approach; it measures the
 * machine, not a kernel choice (bench/infer's earlier "floor" was an ORT Gemm, i.e. a kernel).
 *
 *   npx tsx bench/bandwidth.ts [--threads 2] [--mib 1024] [--runs 5]
 *
 * The kernel (assembled with wabt at start-up, bench only): four independent f32x4 accumulators,
 * 64 bytes per iteration, so the loop is bound by loads, not by the add latency.
 */
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import wabt from 'wabt';
import { onnx } from '../src/onnx/proto.ts';

const KERNEL = `(module
  (memory (export "memory") 1 65536)
  (func (export "fill") (param $len i32)
    (local $i i32)
    (loop $l
      (i32.store (local.get $i) (i32.add (local.get $i) (i32.const 1065353216)))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $len)))))
  (func (export "read") (param $len i32) (result f32)
    (local $i i32) (local $a v128) (local $b v128) (local $c v128) (local $d v128)
    (loop $l
      (local.set $a (f32x4.add (local.get $a) (v128.load offset=0 (local.get $i))))
      (local.set $b (f32x4.add (local.get $b) (v128.load offset=16 (local.get $i))))
      (local.set $c (f32x4.add (local.get $c) (v128.load offset=32 (local.get $i))))
      (local.set $d (f32x4.add (local.get $d) (v128.load offset=48 (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 64)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $len))))
    (f32x4.extract_lane 0 (f32x4.add (f32x4.add (local.get $a) (local.get $b)) (f32x4.add (local.get $c) (local.get $d))))))`;

async function assemble(): Promise<Uint8Array> {
  const tools = await wabt();
  const m = tools.parseWat('bandwidth.wat', KERNEL, { simd: true });
  try {
    return m.toBinary({}).buffer.slice();
  } finally {
    m.destroy();
  }
}

/** The worker: grows its memory to `bytes`, touches it, then streams it once per 'go' on the shared flag. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { wasm, bytes, flag } = workerData;
const inst = new WebAssembly.Instance(new WebAssembly.Module(wasm), {});
inst.exports.memory.grow(Math.ceil(bytes / 65536));
inst.exports.fill(bytes);
const sync = new Int32Array(flag);
parentPort.postMessage('ready');
parentPort.on('message', (run) => {
  Atomics.wait(sync, 0, run - 1);
  const t0 = performance.now();
  const s = inst.exports.read(bytes);
  parentPort.postMessage({ ms: performance.now() - t0, end: performance.timeOrigin + performance.now(), s });
});
`;

export interface BandwidthProbe {
  /** One streaming read of every worker's buffer, started together; GB/s over all bytes. */
  run(): Promise<{ seconds: number; gbPerSecond: number }>;
  /** Bytes read by one run (all threads). */
  readonly bytes: number;
  close(): Promise<void>;
}

/** Starts `threads` workers, each holding `mib` MiB, ready to stream it on every run(). */
export async function openBandwidthProbe(threads = 2, mib = 1024): Promise<BandwidthProbe> {
  const wasm = await assemble();
  const bytes = mib * 1024 * 1024;
  const flag = new SharedArrayBuffer(4);
  const sync = new Int32Array(flag);
  const workers = Array.from({ length: threads }, () => new Worker(WORKER_SOURCE, { eval: true, workerData: { wasm, bytes, flag } }));
  await Promise.all(workers.map((w) => new Promise((resolve, reject) => (w.once('message', resolve), w.once('error', reject)))));
  let runs = 0;
  return {
    bytes: bytes * threads,
    async run() {
      runs += 1;
      const done = workers.map((w) => new Promise<{ ms: number; end: number }>((resolve) => w.once('message', resolve)));
      for (const w of workers) w.postMessage(runs);
      // Every worker waits on the flag; releasing it starts them together.
      await new Promise((r) => setTimeout(r, 20));
      const start = performance.timeOrigin + performance.now();
      Atomics.store(sync, 0, runs);
      Atomics.notify(sync, 0);
      const results = await Promise.all(done);
      const seconds = (Math.max(...results.map((r) => r.end)) - start) / 1000;
      return { seconds, gbPerSecond: (bytes * threads) / 1e9 / seconds };
    },
    async close() {
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}

/** Bytes of every initializer of an .onnx file (external or inline): what one forward reads at least once. */
export function initializerBytes(file: string): number {
  const model = onnx.ModelProto.decode(readFileSync(file));
  let bytes = 0;
  for (const t of model.graph?.initializer ?? []) {
    const length = t.externalData?.find((e) => e.key === 'length')?.value;
    bytes += length !== undefined && length !== null ? Number(length) : (t.rawData?.byteLength ?? 0);
  }
  return bytes;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name: string, fallback: number) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : fallback);
  const probe = await openBandwidthProbe(arg('--threads', 2), arg('--mib', 1024));
  const rates: number[] = [];
  for (let i = 0; i < arg('--runs', 5); i++) rates.push((await probe.run()).gbPerSecond);
  await probe.close();
  console.log(`streaming read, ${arg('--threads', 2)} threads x ${arg('--mib', 1024)} MiB: median ${median(rates).toFixed(1)} GB/s, best ${Math.max(...rates).toFixed(1)} GB/s (${rates.map((r) => r.toFixed(1)).join(', ')})`);
}
