/**
 * bench/moe: decode and prefill cost of a Qwen3-30B-A3B-shaped decoder layer (128 experts, top-8,
 * moe_intermediate 768, hidden 2048; 623M parameters, 2.5 GB fp32) on the CPU EP, portable against
 * --target gpu, with the active-parameter bandwidth as the floor.
 *
 *   npx tsx bench/moe.ts [--prefill N] [--steps N] [--keep]
 *
 * 1. Builds (once, reused; random weights) under out/bench/moe/: the layer portable, --target gpu
 *    without the `moe` fusion (the sparse block as the portable lowering), --target gpu (ONNX
 *    Runtime's MoE kernel), --target gpu --quant int4 (attention and router int4, the experts still
 *    fp32 in the MoE kernel), and the floor graph: one M = 1 Gemm over each weight a decode step must read
 *    (attention q/k/v/o, the router, 8 experts' gate/up/down: 57M parameters, 228 MB).
 * 2. Per artifact, in this process: session creation; decode (1 token: the gathered union is the 8
 *    chosen experts), median of --steps (default 5); prefill of --prefill tokens (default 256: the
 *    union is every expert), median of 2.
 * 3. Prints a markdown table: decode / floor (how far from reading each active byte once) and
 *    prefill per token against decode (the E / k = 16 extra FLOPs of the dense-union lowering).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import * as nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from '../src/build.ts';
import { FUSION_NAMES } from '../src/passes/fusion/index.ts';
import { openSession, run, type HostTensor } from '../src/runtime/session.ts';
import { machine } from './bind.ts';
import { QWEN3_30B_A3B_LAYER } from './moe-layer.ts';

const ROOT = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), '..');
const WORK = nodePath.join(ROOT, 'out', 'bench', 'moe');

function arg(flag: string, fallback: number): number {
  const i = process.argv.indexOf(flag);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
}

/** A graph file under out/bench/moe that default-exports one of bench/moe-layer.ts's models. */
function graphFile(name: string, factory: string): string {
  const file = nodePath.join(WORK, `${name}.ts`);
  const from = nodePath.relative(WORK, nodePath.join(ROOT, 'bench', 'moe-layer.ts')).split(nodePath.sep).join('/');
  writeFileSync(file, `import { ${factory} } from '${from}';\nexport default new ${factory}();\n`);
  return file;
}

async function ensureArtifact(name: string, factory: string, extra: Parameters<typeof build>[0] extends infer O ? Partial<O> : never): Promise<string> {
  const out = nodePath.join(WORK, name);
  if (!existsSync(nodePath.join(out, 'manifest.json'))) await build({ graph: graphFile(name, factory), out, init: 'random', seed: 1, ...extra });
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timed(f: () => Promise<unknown>, runs: number): Promise<number> {
  await f(); // warm-up: first-run allocations, lazy kernel init
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await f();
    times.push(performance.now() - t0);
  }
  return median(times) / 1000;
}

function embeds(seq: number): Record<string, HostTensor> {
  const h = QWEN3_30B_A3B_LAYER.hidden;
  let s = 12345;
  const data = Float32Array.from({ length: seq * h }, () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1);
  return { inputs_embeds: { dtype: 'float32', shape: [1, seq, h], data } };
}

async function measureLayer(dir: string, steps: number, prefill: number): Promise<{ session: number; decode: number; prefill: number }> {
  const t0 = performance.now();
  const session = await openSession(dir);
  const created = (performance.now() - t0) / 1000;
  try {
    const one = embeds(1);
    const many = embeds(prefill);
    return { session: created, decode: await timed(() => run(session, one), steps), prefill: await timed(() => run(session, many), 2) };
  } finally {
    await session.release();
  }
}

async function measureFloor(dir: string, steps: number): Promise<number> {
  const session = await openSession(dir);
  try {
    const feeds = Object.fromEntries(session.inputNames.map((n) => {
      const w = Number(n.slice(1));
      return [n, { dtype: 'float32', shape: [1, w], data: new Float32Array(w).fill(0.5) } as HostTensor];
    }));
    return await timed(() => run(session, feeds), steps);
  } finally {
    await session.release();
  }
}

async function main(): Promise<void> {
  const steps = arg('--steps', 5);
  const prefill = arg('--prefill', 256);
  mkdirSync(WORK, { recursive: true });
  const variants: [string, string][] = [
    ['portable', await ensureArtifact('layer', 'MoeLayerBench', {})],
    // The other fusions, the sparse block left as the portable lowering.
    ['--target gpu --fuse all but moe (fp32)', await ensureArtifact('layer-gpu-nomoe', 'MoeLayerBench', { target: 'gpu', fuse: FUSION_NAMES.filter((f) => f !== 'moe').join(',') })],
    ['--target gpu (fp32, MoE kernel)', await ensureArtifact('layer-gpu', 'MoeLayerBench', { target: 'gpu' })],
    // --quant int4 packs the Linear weights (attention, router) for MatMulNBits; the experts stay fp32 in the MoE kernel (QMoE is not wired).
    ['--target gpu --quant int4 (MoE kernel, experts fp32)', await ensureArtifact('layer-gpu-int4', 'MoeLayerBench', { target: 'gpu', quant: { bits: 4, blockSize: 32, symmetric: true } })],
  ];
  const floorDir = await ensureArtifact('floor', 'ActiveWeightsFloor', {});
  const floor = await measureFloor(floorDir, steps);
  const rows: string[] = [];
  for (const [label, dir] of variants) {
    const m = await measureLayer(dir, steps, prefill);
    rows.push(`| ${label} | ${m.session.toFixed(1)} s | ${(m.decode * 1000).toFixed(1)} ms | ${(m.decode / floor).toFixed(2)}x | ${(m.prefill * 1000).toFixed(0)} ms | ${((m.prefill / prefill) * 1000).toFixed(2)} ms |`);
  }
  console.log(`bench/moe on ${machine()}: one Qwen3-30B-A3B-shaped layer, fp32; floor (active weights read once, 228 MB): ${(floor * 1000).toFixed(1)} ms`);
  console.log(`| graph | session | decode (1 token) | decode / floor | prefill (${prefill} tokens) | prefill per token |`);
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
  if (!process.argv.includes('--keep')) await rm(WORK, { recursive: true, force: true });
}

await main();
