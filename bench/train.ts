/**
 * bench/train: one training step of the InternVL2-1B-shaped model (InternViT-300M-448px + Qwen2-0.5B,
 * fp32) on CPU under each freeze preset: stage 1 (projector), stage 2 (projector + LLM) and full
 * (nothing frozen). Batch 1, one 448 tile (256 image tokens), 320 tokens.
 *
 *   npx tsx bench/train.ts [--clean]
 *
 * 1. Builds (once, then reuses) out/bench/internvl2-1b-train from graphs/internvl2-1b.ts with
 *    seeded random weights (as bench/bind's model, without a checkpoint: the step's cost does not
 *    depend on the values), then writes train-<preset>.onnx and the optimizer (in chunks of at
 *    most 256 MiB of parameters) beside model.onnx for each preset, over the same model.onnx.data.
 * 2. Per preset, a child process opens the sessions and runs one step: train.onnx (forward, loss,
 *    pruned backward) then optimizer.onnx (AdamW over the trainable parameters). It reports
 *    session creation, train and optimizer times and its peak RSS (VmHWM).
 * 3. Prints a markdown table and checks the floor: stage-1 step <= 0.6 x full step (exit 1 if not).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus } from 'node:os';
import * as nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from '../src/build.ts';
import { loadGraphFile } from '../src/graph-file.ts';
import { buildModelProto, encodeModel } from '../src/onnx/emit.ts';
import { openSession, run, type HostTensor } from '../src/runtime/session.ts';
import { preset as presetRules } from '../src/dsl/freeze.ts';
import { compileTrain } from '../src/train/compile-train.ts';
import { compileOptimizer } from '../src/train/optimizer.ts';
import { readBound } from '../src/train/weights.ts';
import { VLMC_VERSION } from '../src/version.ts';
import { DATA_FILE, readManifest, type Manifest } from '../src/artifact/format.ts';

const ROOT = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), '..');
const ARTIFACT = nodePath.join(ROOT, 'out', 'bench', 'internvl2-1b-train');
const GRAPH_FILE = nodePath.join(ROOT, 'graphs', 'internvl2-1b.ts');
const PRESETS = ['stage1', 'stage2', 'full'] as const;
const SEQ = 320;
const IMAGE_TOKENS = 256;
const FLOOR = 0.6;
const CHUNK_BYTES = 256 * 1024 * 1024;

interface StepReport {
  preset: string;
  trainableTensors: number;
  trainableParams: number;
  createS: number;
  trainS: number;
  optimizerS: number;
  stepS: number;
  loss: number;
  peakRssMiB: number;
  backwardNodes: number;
  backwardGflop: number;
}

async function prepare(): Promise<Record<string, { nodes: number; gflop: number }>> {
  if (!existsSync(nodePath.join(ARTIFACT, 'manifest.json'))) {
    console.error(`building ${nodePath.relative(ROOT, ARTIFACT)} (random weights, fp32) ...`);
    await build({ graph: GRAPH_FILE, out: ARTIFACT, seed: 0, dtype: 'float32', init: 'random' });
  }
  const manifest = readManifest(ARTIFACT);
  const entries = new Map(manifest.parameters.map((p) => [p.name, { offset: p.offset, length: p.length, dtype: p.dtype }]));
  const pruning: Record<string, { nodes: number; gflop: number }> = {};
  for (const name of PRESETS) {
    const model = await loadGraphFile(GRAPH_FILE);
    model.train = presetRules(name);
    const t = compileTrain(model, { sizes: { tiles: 1, batch: 1, seq: SEQ } });
    await writeFile(nodePath.join(ARTIFACT, `train-${name}.onnx`), encodeModel(buildModelProto(t.graph, { location: DATA_FILE, entries }, { producerVersion: VLMC_VERSION })));
    // The optimizer in chunks of <= 256 MiB of parameters: one graph over all of them would hold
    // seven copies of the trainable weights at once (param, grad, m, v in; three out).
    const chunks = chunkParams(t.trainable);
    for (const [i, chunk] of chunks.entries()) {
      await writeFile(nodePath.join(ARTIFACT, `optimizer-${name}-${i}.onnx`), encodeModel(buildModelProto(compileOptimizer(chunk), { location: DATA_FILE, entries: new Map() }, { producerVersion: VLMC_VERSION })));
    }
    await writeFile(nodePath.join(ARTIFACT, `optimizer-${name}.json`), JSON.stringify(chunks.map((c) => c.map((p) => p.name))));
    pruning[name] = { nodes: t.pruning.backwardNodes, gflop: t.pruning.backwardFlops / 1e9 };
  }
  return pruning;
}

function chunkParams<T extends { shape: number[] }>(params: T[]): T[][] {
  const chunks: T[][] = [[]];
  let bytes = 0;
  for (const p of params) {
    const n = p.shape.reduce((a, d) => a * d, 1) * 4;
    if (bytes + n > CHUNK_BYTES && chunks.at(-1)!.length > 0) {
      chunks.push([]);
      bytes = 0;
    }
    chunks.at(-1)!.push(p);
    bytes += n;
  }
  return chunks;
}

/** The sample: text, one tile's 256 <IMG_CONTEXT>, a question, an answer of 40 labelled tokens. */
function sampleInputs(manifest: Manifest): Record<string, HostTensor> {
  const context = Number(manifest.metadata['vlmc.img_context_token_id']);
  let seed = 1;
  const rand = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  const ids = new BigInt64Array(SEQ);
  const labels = new BigInt64Array(SEQ).fill(-100n);
  for (let i = 0; i < SEQ; i++) ids[i] = i >= 10 && i < 10 + IMAGE_TOKENS ? BigInt(context) : BigInt(Math.floor(rand() * 150_000));
  for (let i = SEQ - 40; i < SEQ; i++) labels[i] = ids[i]!;
  return {
    pixel_values: { dtype: 'float32', shape: [1, 3, 448, 448], data: Float32Array.from({ length: 3 * 448 * 448 }, () => rand() * 2 - 1) },
    input_ids: { dtype: 'int64', shape: [1, SEQ], data: ids },
    image_flags: { dtype: 'int64', shape: [1], data: BigInt64Array.of(1n) },
    labels: { dtype: 'int64', shape: [1, SEQ], data: labels },
  };
}

async function child(name: string): Promise<void> {
  const manifest = readManifest(ARTIFACT);
  const t0 = performance.now();
  const trainSession = await openSession(ARTIFACT, ['cpu'], `train-${name}`);
  let createS = (performance.now() - t0) / 1000;
  const byName = new Map(manifest.parameters.map((p) => [p.name, p]));
  const trainable = trainSession.inputNames.filter((n) => byName.has(n)).map((n) => byName.get(n)!);
  const feeds = sampleInputs(manifest);
  const values: Record<string, HostTensor> = {};
  for (const p of trainable) values[p.name] = { dtype: 'float32', shape: p.shape, data: await readBound(ARTIFACT, p) };
  const t1 = performance.now();
  const out = await run(trainSession, { ...feeds, ...values });
  const trainS = (performance.now() - t1) / 1000;
  await trainSession.release();
  const scalar = (v: number): HostTensor => ({ dtype: 'float32', shape: [], data: Float32Array.of(v) });
  const chunks = JSON.parse(readFileSync(nodePath.join(ARTIFACT, `optimizer-${name}.json`), 'utf8')) as string[][];
  let optimizerS = 0;
  for (const [i, chunk] of chunks.entries()) {
    const t2 = performance.now();
    const optSession = await openSession(ARTIFACT, ['cpu'], `optimizer-${name}-${i}`);
    const t3 = performance.now();
    createS += (t3 - t2) / 1000;
    const opt: Record<string, HostTensor> = { lr: scalar(1e-4), beta1: scalar(0.9), beta2: scalar(0.999), eps: scalar(1e-8), weight_decay: scalar(0), step: { dtype: 'int64', shape: [], data: BigInt64Array.of(1n) } };
    for (const n of chunk) {
      const p = byName.get(n)!;
      const zeros = (): HostTensor => ({ dtype: 'float32', shape: p.shape, data: new Float32Array(values[n]!.data.length) });
      opt[`param.${n}`] = values[n]!;
      opt[`grad.${n}`] = out[`grad.${n}`]!;
      opt[`exp_avg.${n}`] = zeros();
      opt[`exp_avg_sq.${n}`] = zeros();
    }
    const result = await run(optSession, opt);
    optimizerS += (performance.now() - t3) / 1000;
    for (const n of chunk) values[n] = result[`new_param.${n}`]!;
    await optSession.release();
  }
  const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;
  const report = {
    preset: name,
    trainableTensors: trainable.length,
    trainableParams: trainable.reduce((n, p) => n + p.shape.reduce((a, d) => a * d, 1), 0),
    createS,
    trainS,
    optimizerS,
    stepS: trainS + optimizerS,
    loss: (out.loss!.data as Float32Array)[0]!,
    peakRssMiB: hwm,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const childAt = args.indexOf('--child');
  if (childAt >= 0) return child(args[childAt + 1]!);
  const pruning = await prepare();
  const reports: StepReport[] = [];
  for (const name of PRESETS) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', name], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 24 });
    if (r.status !== 0) throw new Error(`step ${name} failed (${r.status}): ${r.stderr}`);
    const report = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as StepReport;
    reports.push({ ...report, backwardNodes: pruning[name]!.nodes, backwardGflop: pruning[name]!.gflop });
    console.error(`${name}: step ${report.stepS.toFixed(2)} s, peak RSS ${report.peakRssMiB.toFixed(0)} MiB`);
  }
  const full = reports.find((r) => r.preset === 'full')!;
  const cpu = `${cpus()[0]?.model ?? 'cpu'} (${availableParallelism()} threads)`;
  console.log(`InternVL2-1B-shaped, fp32, batch 1, one 448 tile, ${SEQ} tokens; onnxruntime-node CPU; ${cpu}\n`);
  console.log('| preset | trainable params | backward nodes | backward GFLOP | session create (s) | train.onnx (s) | optimizer.onnx (s) | step (s) | step / full | peak RSS (MiB) |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of reports) {
    console.log(`| ${r.preset} | ${r.trainableParams.toLocaleString('en-US')} | ${r.backwardNodes} | ${r.backwardGflop.toFixed(0)} | ${r.createS.toFixed(1)} | ${r.trainS.toFixed(2)} | ${r.optimizerS.toFixed(2)} | ${r.stepS.toFixed(2)} | ${(r.stepS / full.stepS).toFixed(2)} | ${r.peakRssMiB.toFixed(0)} |`);
  }
  const ratio = reports[0]!.stepS / full.stepS;
  console.log(`\nfloor: stage-1 step <= ${FLOOR} x full step: ${ratio.toFixed(2)} ${ratio <= FLOOR ? 'ok' : 'MISSED'}`);
  if (args.includes('--clean')) await rm(ARTIFACT, { recursive: true, force: true });
  if (ratio > FLOOR) process.exitCode = 1;
}

await main();
