/**
 * `vlmc train`: a training loop in onnxruntime-node over an artifact built with --train. Each step
 * runs train.onnx on `gradAccum` micro-batches (gradients averaged, as the loss of each is a mean),
 * then optimizer.onnx (AdamW). Checkpoints are unified InternVL checkpoints (model.safetensors with
 * every parameter, config.json, tokenizer files) that `vlmc build --weights` takes, plus the
 * optimizer state and step (optimizer.safetensors, trainer_state.json) to resume from.
 */
import { checkAgainstInputs } from '../fs/output-path.ts';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { writeFile, copyFile } from 'node:fs/promises';
import { readBound, readRange } from './weights.ts';
import * as nodePath from 'node:path';
import type ort from 'onnxruntime-node';
import { UserError } from '../errors.ts';
import { loadOrt, openSession, openSessionFromBytes, run, type ExecutionProvider, type HostTensor } from '../runtime/session.ts';
import { providerList } from '../runtime/providers.ts';
import { buildModelProto, encodeModel } from '../onnx/emit.ts';
import { VLMC_VERSION } from '../version.ts';
import { withTempSibling, writeFileAtomic } from '../fs/atomic.ts';
import { DATA_FILE, readManifest, type Manifest, type ManifestParameter } from '../artifact/format.ts';
import { SafetensorsFile } from '../checkpoint/safetensors.ts';
import { writeSafetensors, type TensorToWrite } from '../checkpoint/safetensors-write.ts';
import { readRequestConfig } from '../inputs/config.ts';
import { loadTokenizer } from '../tokenizer/index.ts';
import { eosToken } from '../prompt/templates.ts';
import { collate, encodeSample, readJsonl, type EncodedSample } from './data.ts';
import { compileOptimizer, NEW_PREFIXES, STATE_PREFIXES } from './optimizer.ts';
import { TOKENIZER_FILE_NAMES } from './artifact.ts';
import { loraCheckpointLayout } from './lora-checkpoint.ts';

export interface TrainOptions {
  artifact: string;
  data: string;
  steps: number;
  out: string;
  lr: number;
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Micro-batches per optimizer step. */
  gradAccum?: number;
  /** Samples per micro-batch. */
  batchSize?: number;
  /** Save a checkpoint every N steps (and always after the last). */
  saveEvery?: number;
  /** Continue from the last checkpoint in `out`. */
  resume?: boolean;
  /** Folder image names are relative to (default: the jsonl's folder). */
  imageRoot?: string;
  onStep?: (step: number, steps: number, loss: number) => void;
  /** Execution provider of train.onnx and the AdamW step (default cpu). */
  ep?: ExecutionProvider;
}

export interface TrainResult {
  losses: number[];
  /** The last checkpoint written. */
  checkpoint: string;
  startStep: number;
}

export const STATE_FILE = 'trainer_state.json';
export const OPTIMIZER_STATE_FILE = 'optimizer.safetensors';

interface ParamState {
  meta: ManifestParameter;
  value: Float32Array;
  expAvg: Float32Array;
  expAvgSq: Float32Array;
}

export async function train(o: TrainOptions): Promise<TrainResult> {
  checkOptions(o);
  const manifest = readManifest(o.artifact);
  if (!manifest.train) throw new UserError(`${o.artifact}: has no training graphs (build it with vlmc build --train)`);
  if (manifest.train.trainable.length === 0) throw new UserError(`${o.artifact}: no parameter is trainable (freeze rules: ${manifest.train.rules.map((r) => `${r.action}('${r.pattern}')`).join(', ') || 'none'})`);
  const config = readRequestConfig(o.artifact);
  const tokenizer = loadTokenizer(o.artifact);
  const padTokenId = tokenizer.padTokenId ?? config.padTokenId ?? tokenizer.requireTokenId(eosToken(config.template), 'the pad id');
  const samples = readJsonl(o.data);
  const ctx = { config, tokenizer, imageRoot: o.imageRoot ?? nodePath.dirname(nodePath.resolve(o.data)) };

  const byName = new Map(manifest.parameters.map((p) => [p.name, p]));
  const params: ParamState[] = [];
  for (const t of manifest.train.trainable) {
    const meta = byName.get(t.name)!;
    const n = meta.shape.reduce((a, d) => a * d, 1);
    params.push({ meta, value: await readBound(o.artifact, meta), expAvg: new Float32Array(n), expAvgSq: new Float32Array(n) });
  }
  let startStep = 0;
  if (o.resume) startStep = await restore(o.out, params, manifest.parameters);
  if (startStep >= o.steps) throw new UserError(`${o.out}: already at step ${startStep}; ask for more than ${startStep} --steps to continue`);

  const providers = providerList(await loadOrt(), o.ep ?? 'cpu');
  const trainSession = await openSession(o.artifact, providers, 'train');
  const optimizers = await optimizerSessions(o.artifact, params, providers);
  const losses: number[] = [];
  let checkpoint = '';
  const accum = o.gradAccum ?? 1;
  const batchSize = o.batchSize ?? 1;
  const saveEvery = o.saveEvery ?? o.steps;
  const encoded = new Map<number, EncodedSample>();
  const sampleAt = async (i: number) => {
    const k = i % samples.length;
    if (!encoded.has(k)) encoded.set(k, await encodeSample(samples[k]!, ctx));
    return encoded.get(k)!;
  };
  try {
    for (let step = startStep + 1; step <= o.steps; step++) {
      const grads = params.map((p) => new Float32Array(p.value.length));
      let loss = 0;
      for (let micro = 0; micro < accum; micro++) {
        const first = ((step - 1) * accum + micro) * batchSize;
        const batch = [];
        for (let b = 0; b < batchSize; b++) batch.push(await sampleAt(first + b));
        const out = await run(trainSession, { ...collate(batch, padTokenId, config.imageSize), ...paramFeeds(params), ...dropoutFeeds(manifest) });
        loss += (out.loss!.data as Float32Array)[0]! / accum;
        params.forEach((p, i) => addScaled(grads[i]!, out[manifest.train!.trainable[i]!.grad]!.data as Float32Array, 1 / accum));
      }
      for (const { session, members } of optimizers) await optimizerStep(session, members.map((i) => params[i]!), members.map((i) => grads[i]!), step, o);
      losses.push(loss);
      o.onStep?.(step, o.steps, loss);
      if (step % saveEvery === 0 || step === o.steps) checkpoint = await saveCheckpoint(o, manifest, params, step);
    }
  } finally {
    await trainSession.release();
    for (const { session } of optimizers) await session.release();
  }
  return { losses, checkpoint, startStep };
}

/** Parameters per optimizer call: beyond this the update is split, so it never holds seven copies of every trainable weight. */
const OPTIMIZER_CHUNK_BYTES = 256 * 1024 * 1024;

/**
 * The artifact's optimizer.onnx when the trainable parameters are small; otherwise the same AdamW
 * step compiled for consecutive groups of at most OPTIMIZER_CHUNK_BYTES, run one after another.
 */
async function optimizerSessions(artifact: string, params: ParamState[], providers: string[]): Promise<{ session: ort.InferenceSession; members: number[] }[]> {
  const groups: number[][] = [[]];
  let bytes = 0;
  params.forEach((p, i) => {
    if (bytes + p.value.byteLength > OPTIMIZER_CHUNK_BYTES && groups.at(-1)!.length > 0) {
      groups.push([]);
      bytes = 0;
    }
    groups.at(-1)!.push(i);
    bytes += p.value.byteLength;
  });
  if (groups.length === 1) return [{ session: await openSession(artifact, providers, 'optimizer'), members: groups[0]! }];
  const out = [];
  for (const members of groups) {
    const graph = compileOptimizer(members.map((i) => ({ name: params[i]!.meta.name, shape: params[i]!.meta.shape })));
    const bytesOf = encodeModel(buildModelProto(graph, { location: DATA_FILE, entries: new Map() }, { producerVersion: VLMC_VERSION }));
    out.push({ session: await openSessionFromBytes(bytesOf, providers), members });
  }
  return out;
}

function checkOptions(o: TrainOptions): void {
  const positiveInt = (v: number | undefined, flag: string) => {
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new UserError(`${flag} must be a positive integer (got ${v})`);
  };
  positiveInt(o.steps, '--steps');
  positiveInt(o.gradAccum, '--grad-accum');
  positiveInt(o.batchSize, '--batch-size');
  positiveInt(o.saveEvery, '--save-every');
  if (!(o.lr > 0) || !Number.isFinite(o.lr)) throw new UserError(`--lr must be a positive number (got ${o.lr})`);
  checkAdamW(o);
  if (!existsSync(o.data)) throw new UserError(`${o.data}: training data not found`);
  checkAgainstInputs(o.out, `--out ${o.out}`, { inputs: [o.artifact, o.data, o.imageRoot] });
  checkRunFolder(o.out, Boolean(o.resume));
}

/** The ranges torch.optim.AdamW accepts; anything else it refuses (a beta of 1 or more never forgets, a negative decay grows the weights). */
function checkAdamW(o: TrainOptions): void {
  const inRange = (v: number | undefined, flag: string, ok: (v: number) => boolean, range: string) => {
    if (v !== undefined && (!Number.isFinite(v) || !ok(v))) throw new UserError(`${flag} must be ${range} (got ${v}), as torch.optim.AdamW requires`);
  };
  inRange(o.beta1, '--beta1', (v) => v >= 0 && v < 1, 'from 0 up to (not including) 1');
  inRange(o.beta2, '--beta2', (v) => v >= 0 && v < 1, 'from 0 up to (not including) 1');
  inRange(o.eps, '--eps', (v) => v >= 0, '>= 0');
  inRange(o.weightDecay, '--weight-decay', (v) => v >= 0, '>= 0');
}

/**
 * `--out` is new or empty; an earlier `vlmc train` run's folder (it has trainer_state.json) only
 * with --resume, which continues it: without it, a new run would replace that run's checkpoints.
 * Nothing else is written into.
 */
function checkRunFolder(out: string, resume: boolean): void {
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) throw new UserError(`--out ${out}: is not a folder; give a new path`);
  const entries = readdirSync(out);
  if (entries.length === 0) return;
  if (!entries.includes(STATE_FILE)) throw new UserError(`--out ${out}: is a folder vlmc train did not write (no ${STATE_FILE}); give a new path`);
  if (!resume) throw new UserError(`--out ${out}: holds an earlier training run (${STATE_FILE}); pass --resume to continue it, or give a new path (a new run would replace its checkpoints)`);
}

function paramFeeds(params: ParamState[]): Record<string, HostTensor> {
  return Object.fromEntries(params.map((p) => [p.meta.name, { dtype: 'float32', shape: p.meta.shape, data: p.value } as HostTensor]));
}

/** Each LoRA part's dropout at its declared ratio (InternVL trains with 0.05). */
function dropoutFeeds(manifest: Manifest): Record<string, HostTensor> {
  return Object.fromEntries((manifest.train?.lora_dropout ?? []).map((d) => [d.input, { dtype: 'float32', shape: [], data: Float32Array.of(d.ratio) } as HostTensor]));
}

function addScaled(into: Float32Array, g: Float32Array, k: number): void {
  for (let i = 0; i < into.length; i++) into[i]! += g[i]! * k;
}

async function optimizerStep(session: ort.InferenceSession, params: ParamState[], grads: Float32Array[], step: number, o: TrainOptions): Promise<void> {
  const scalar = (v: number): HostTensor => ({ dtype: 'float32', shape: [], data: Float32Array.of(v) });
  const feeds: Record<string, HostTensor> = {
    lr: scalar(o.lr),
    beta1: scalar(o.beta1 ?? 0.9),
    beta2: scalar(o.beta2 ?? 0.999),
    eps: scalar(o.eps ?? 1e-8),
    weight_decay: scalar(o.weightDecay ?? 0),
    step: { dtype: 'int64', shape: [], data: BigInt64Array.of(BigInt(step)) },
  };
  params.forEach((p, i) => {
    const t = (data: Float32Array): HostTensor => ({ dtype: 'float32', shape: p.meta.shape, data });
    feeds[`${STATE_PREFIXES.param}${p.meta.name}`] = t(p.value);
    feeds[`${STATE_PREFIXES.grad}${p.meta.name}`] = t(grads[i]!);
    feeds[`${STATE_PREFIXES.expAvg}${p.meta.name}`] = t(p.expAvg);
    feeds[`${STATE_PREFIXES.expAvgSq}${p.meta.name}`] = t(p.expAvgSq);
  });
  const out = await run(session, feeds);
  for (const p of params) {
    // Copies: ORT's output buffers are not ours to keep across runs.
    p.value = Float32Array.from(out[`${NEW_PREFIXES.param}${p.meta.name}`]!.data as Float32Array);
    p.expAvg = Float32Array.from(out[`${NEW_PREFIXES.expAvg}${p.meta.name}`]!.data as Float32Array);
    p.expAvgSq = Float32Array.from(out[`${NEW_PREFIXES.expAvgSq}${p.meta.name}`]!.data as Float32Array);
  }
}


const ST_DTYPE = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' } as const;

/**
 * out/checkpoint-<step>/: every parameter under its checkpoint key (trained ones as they are now,
 * frozen ones as bound), config.json, tokenizer files, optimizer state; then out/trainer_state.json
 * names it. Each checkpoint folder appears atomically.
 */
async function saveCheckpoint(o: TrainOptions, manifest: Manifest, params: ParamState[], step: number): Promise<string> {
  const dir = nodePath.join(o.out, `checkpoint-${step}`);
  const trained = new Map(params.map((p) => [p.meta.name, p]));
  const lora = loraCheckpointLayout(manifest.parameters);
  await withTempSibling(dir, async (tmp) => {
    const tensors: TensorToWrite[] = [];
    for (const p of manifest.parameters) {
      const t = trained.get(p.name);
      const data = t ? new Uint8Array(t.value.buffer, t.value.byteOffset, t.value.byteLength) : await readRange(nodePath.join(o.artifact, DATA_FILE), p.offset, p.length);
      // Saved in the unified layout (every parameter under its graph name = unified key), or InternVL's with LoRA unmerged.
      tensors.push({ name: lora?.keyOf(p.name) ?? p.name, dtype: t ? 'F32' : ST_DTYPE[p.dtype], shape: p.shape, data });
    }
    for (const head of lora?.untiedHeads ?? []) tensors.push({ ...tensors[manifest.parameters.findIndex((p) => p.name === head.from)]!, name: head.key });
    await writeSafetensors(nodePath.join(tmp, 'model.safetensors'), tensors, { format: 'pt' });
    const state: TensorToWrite[] = params.flatMap((p) => [
      { name: `exp_avg.${p.meta.name}`, dtype: 'F32' as const, shape: p.meta.shape, data: new Uint8Array(p.expAvg.buffer, p.expAvg.byteOffset, p.expAvg.byteLength) },
      { name: `exp_avg_sq.${p.meta.name}`, dtype: 'F32' as const, shape: p.meta.shape, data: new Uint8Array(p.expAvgSq.buffer, p.expAvgSq.byteOffset, p.expAvgSq.byteLength) },
    ]);
    await writeSafetensors(nodePath.join(tmp, OPTIMIZER_STATE_FILE), state);
    for (const name of ['config.json', ...TOKENIZER_FILE_NAMES]) {
      const f = nodePath.join(o.artifact, name);
      if (!existsSync(f)) continue;
      if (name === 'config.json' && lora) await writeFile(nodePath.join(tmp, name), `${JSON.stringify(lora.config(JSON.parse(readFileSync(f, 'utf8'))), null, 2)}\n`);
      else await copyFile(f, nodePath.join(tmp, name));
    }
    await writeFile(nodePath.join(tmp, STATE_FILE), `${JSON.stringify({ step, lr: o.lr, artifact: nodePath.resolve(o.artifact) }, null, 2)}\n`);
  });
  await writeFileAtomic(nodePath.join(o.out, STATE_FILE), `${JSON.stringify({ step, last_checkpoint: `checkpoint-${step}` }, null, 2)}\n`);
  return dir;
}

/** Trained values and optimizer state from the last checkpoint in `out`; returns its step. */
async function restore(out: string, params: ParamState[], all: readonly ManifestParameter[]): Promise<number> {
  const stateFile = nodePath.join(out, STATE_FILE);
  if (!existsSync(stateFile)) throw new UserError(`${out}: nothing to resume (no ${STATE_FILE})`);
  const state = JSON.parse(readFileSync(stateFile, 'utf8')) as { step: number; last_checkpoint: string };
  const dir = nodePath.join(out, state.last_checkpoint);
  const model = await SafetensorsFile.open(nodePath.join(dir, 'model.safetensors'));
  const opt = await SafetensorsFile.open(nodePath.join(dir, OPTIMIZER_STATE_FILE));
  const lora = loraCheckpointLayout(all);
  try {
    for (const p of params) {
      const key = p.meta.name;
      const saved = lora?.keyOf(key) ?? key;
      for (const [file, name] of [[model, saved], [opt, `exp_avg.${key}`], [opt, `exp_avg_sq.${key}`]] as const) {
        if (!file.keys().includes(name)) throw new UserError(`${dir}: cannot resume: '${name}' is missing (was it trained with other freeze rules?)`);
      }
      p.value = await model.readAsFloat32(model.entry(saved));
      p.expAvg = await opt.readAsFloat32(opt.entry(`exp_avg.${key}`));
      p.expAvgSq = await opt.readAsFloat32(opt.entry(`exp_avg_sq.${key}`));
    }
  } finally {
    await model.close();
    await opt.close();
  }
  return state.step;
}
