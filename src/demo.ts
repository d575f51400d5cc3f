/**
 * The default run (`npm start`): make a tiny random-weight InternVL checkpoint under out/ (no
 * download) with a tiny tokenizer and a template, the same weights as Path B parts, a LoRA adapter,
 * a sample image and training file, build graphs/internvl-tiny.ts from the checkpoint, run one forward with
 * onnxruntime-node and report the I/O signature, parameter counts and a logits checksum. The
 * README's and docs/training.md's commands run on what it writes (test/walkthrough.test.ts).
 */
import { createHash } from 'node:crypto';
import * as nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSafetensors, type TensorToWrite } from './checkpoint/safetensors-write.ts';
import { existsSync, lstatSync, readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { deflateSync } from 'node:zlib';
import { makeFolders, writeFileAtomic, withTempSibling } from './fs/atomic.ts';
import { checkOutputPath, CHECKPOINT_MARK } from './fs/output-path.ts';
import { assignPaths, collectParams } from './dsl/module.ts';
import { initialValues } from './bind/init.ts';
import { elementCount } from './ir/dims.ts';
import { InternVLChatModel } from './models/internvl.ts';
import { WRITTEN_TEMPLATE, internvlConfigJson, llmConfigJson, visionConfigJson } from './models/to-config.ts';
import { tinyTokenizerFiles } from './tokenizer/tiny.ts';
import { loadGraphFile } from './graph-file.ts';
import { build } from './build.ts';
import { openSession, run, type HostTensor } from './runtime/session.ts';
import { UserError } from './errors.ts';

export const DEFAULT_GRAPH = nodePath.join(nodePath.dirname(fileURLToPath(import.meta.url)), '..', 'graphs', 'internvl-tiny.ts');

/** A unified (Path A) checkpoint with the model's declared init, as released checkpoints lay it out, with a tiny tokenizer (src/tokenizer/tiny.ts). */
export async function writeRandomCheckpoint(model: InternVLChatModel, dir: string, seed: number): Promise<void> {
  assignPaths(model);
  const tensors = collectParams(model).map((p) => {
    const values = initialValues(p.init, elementCount(p.shape), seed, p.name);
    return { name: p.name, dtype: 'F32' as const, shape: p.shape, data: new Uint8Array(values.buffer) };
  });
  checkOutputPath(dir, { kind: 'checkpoint' });
  await writeMarkedFolder(dir, 'a random checkpoint written by vlmc demo', {
    'model.safetensors': tensors,
    'config.json': `${JSON.stringify(internvlConfigJson(model), null, 2)}\n`,
    ...tokenizerFilesOf(model),
  });
}

/** tokenizer.json, tokenizer_config.json and added_tokens.json for the model's vocabulary and <IMG_CONTEXT> id. */
function tokenizerFilesOf(model: InternVLChatModel): Record<string, string> {
  const ctx = model.options.imgContextTokenId;
  if (ctx === undefined) return {};
  return { ...tinyTokenizerFiles(model.language_model.config.vocab, ctx), 'added_tokens.json': `${JSON.stringify({ '<IMG_CONTEXT>': ctx }, null, 2)}\n` };
}

type FolderFile = string | Uint8Array | TensorToWrite[];

/** A folder written atomically, marked as vlmc's (so a later demo may replace it): safetensors for tensor lists, bytes or text otherwise. */
async function writeMarkedFolder(dir: string, mark: string, files: Record<string, FolderFile>): Promise<void> {
  await withTempSibling(dir, async (tmp) => {
    await writeFile(nodePath.join(tmp, CHECKPOINT_MARK), `${mark}\n`);
    for (const [name, content] of Object.entries(files)) {
      if (Array.isArray(content)) await writeSafetensors(nodePath.join(tmp, name), content);
      else await writeFile(nodePath.join(tmp, name), content);
    }
  });
}

/**
 * Path B parts of the same random weights: a standalone InternViT (keys without `vision_model.`)
 * and a standalone LLM with the tokenizer (keys without `language_model.`); the projector is left
 * out, as Path B initialises it.
 */
async function writePartCheckpoints(model: InternVLChatModel, visionDir: string, llmDir: string, seed: number): Promise<void> {
  const part = (prefix: string): TensorToWrite[] =>
    collectParams(model)
      .filter((p) => p.name.startsWith(prefix))
      .map((p) => ({ name: p.name.slice(prefix.length), dtype: 'F32' as const, shape: p.shape, data: new Uint8Array(initialValues(p.init, elementCount(p.shape), seed, p.name).buffer) }));
  const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;
  await writeMarkedFolder(visionDir, 'a random InternViT written by vlmc demo', { 'model.safetensors': part('vision_model.'), 'config.json': json(visionConfigJson(model.vision_model)) });
  await writeMarkedFolder(llmDir, 'a random LLM written by vlmc demo', { 'model.safetensors': part('language_model.'), 'config.json': json(llmConfigJson(model.language_model)), ...tokenizerFilesOf(model) });
}

/**
 * A random PEFT LoRA adapter for the demo's LLM (what `PeftModel.save_pretrained` writes for the
 * standalone LLM: rank 4, alpha 8, the family's targets, keys `base_model.model.<module>.lora_{A,B}.weight`),
 * for the walkthrough's adapters at run time. lora_B is not zero, so the adapter changes the logits.
 */
async function writeSampleAdapter(model: InternVLChatModel, dir: string, seed: number): Promise<void> {
  const rank = 4;
  const llm = model.language_model;
  const targets = llm.loraTargets();
  const tensors: TensorToWrite[] = [];
  const linear = (module: string) => collectParams(model).find((p) => p.name === `language_model.${module}.weight`)!;
  for (let layer = 0; layer < llm.config.layers; layer++) {
    for (const target of targets) {
      const module = `model.layers.${layer}.${target}`;
      const [out, inp] = linear(module).shape as [number, number];
      const init = (name: string, n: number) => new Uint8Array(initialValues({ kind: 'uniform', bound: 0.1 }, n, seed, name).buffer);
      tensors.push({ name: `base_model.model.${module}.lora_A.weight`, dtype: 'F32', shape: [rank, inp], data: init(`${module}.lora_A`, rank * inp) });
      tensors.push({ name: `base_model.model.${module}.lora_B.weight`, dtype: 'F32', shape: [out, rank], data: init(`${module}.lora_B`, out * rank) });
    }
  }
  const config = { peft_type: 'LORA', task_type: 'CAUSAL_LM', r: rank, lora_alpha: 2 * rank, lora_dropout: 0.05, bias: 'none', target_modules: [...targets].sort(), fan_in_fan_out: false, use_dora: false, use_rslora: false, modules_to_save: null, inference_mode: true };
  await writeMarkedFolder(dir, 'a random LoRA adapter written by vlmc demo', { 'adapter_model.safetensors': tensors, 'adapter_config.json': `${JSON.stringify(config, null, 2)}\n` });
}

/** A sample image and a two-sample training file (one with the image, one text-only) for the walkthrough. */
async function writeSamples(dir: string): Promise<void> {
  const samples = [
    { image: SAMPLE_IMAGE, conversations: [{ from: 'human', value: '<image>\nWhat is in the picture?' }, { from: 'gpt', value: 'An orange cat.' }] },
    { conversations: [{ from: 'human', value: 'Say hello.' }, { from: 'gpt', value: 'Hello!' }] },
  ];
  await writeMarkedFolder(dir, 'sample inputs written by vlmc demo', {
    [SAMPLE_IMAGE]: samplePng(),
    [SAMPLE_DATA]: samples.map((x) => `${JSON.stringify(x)}\n`).join(''),
  });
}

const SAMPLE_IMAGE = 'cat.png';
const SAMPLE_DATA = 'data.jsonl';

/** An 80 x 56 RGB picture (an orange disc on a blue gradient), encoded as PNG by hand so its bytes never change. */
function samplePng(): Uint8Array {
  const [w, h] = [80, 56];
  const raw = Buffer.alloc(h * (1 + 3 * w));
  for (let y = 0; y < h; y++) {
    raw[y * (1 + 3 * w)] = 0; // filter: none
    for (let x = 0; x < w; x++) {
      const inDisc = (x - 40) ** 2 + (y - 28) ** 2 < 20 ** 2;
      const px = inDisc ? [230, 130, 40] : [40, 60 + y * 2, 120 + x];
      raw.set(px, y * (1 + 3 * w) + 1 + 3 * x);
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(w, 0);
  header.writeUInt32BE(h, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, deflate, no filter, no interlace
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', header), pngChunk('IDAT', deflateSync(raw, { level: 9 })), pngChunk('IEND', Buffer.alloc(0))]);
}

function pngChunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** Deterministic demo inputs: `tiles` tiles, one prompt with an image span per tile. */
export function demoInputs(model: InternVLChatModel, tiles: number): Record<string, HostTensor> {
  const s = model.options.imageSize;
  const pixels = initialValues({ kind: 'uniform', bound: 1 }, tiles * 3 * s * s, 7, 'pixel_values');
  const ctx = model.options.imgContextTokenId!;
  const ids = [1, 5, 9, ...Array<number>(model.tokensPerTile * tiles).fill(ctx), 11, 12, 13, 14];
  return {
    pixel_values: { dtype: 'float32', shape: [tiles, 3, s, s], data: pixels },
    input_ids: { dtype: 'int64', shape: [1, ids.length], data: BigInt64Array.from(ids, BigInt) },
    image_flags: { dtype: 'int64', shape: [tiles], data: new BigInt64Array(tiles).fill(1n) },
  };
}

export interface DemoReport {
  lines: string[];
  logitsSha256: string;
}

/** Where the demo writes, under its output folder. */
export function demoPaths(outRoot: string) {
  const at = (name: string) => nodePath.join(outRoot, name);
  return { root: outRoot, checkpoint: at('internvl-tiny-checkpoint'), vision: at('internvl-tiny-vit'), llm: at('internvl-tiny-llm'), adapter: at('internvl-tiny-adapter'), samples: at('samples'), artifact: at('internvl-tiny') };
}

/** Marks a folder `vlmc demo` made, so a later demo may write into it again (the walkthrough's outputs may sit beside its own). */
export const DEMO_MARK = '.vlmc-demo';

/**
 * Every path the demo writes, checked before anything is written: the folder must be new, empty, or
 * one vlmc demo made; each entry it replaces an earlier demo's entry of the same kind.
 */
function checkDemoOutputs(p: ReturnType<typeof demoPaths>): void {
  const problem = demoFolderProblem(p.root, p.checkpoint);
  if (problem) throw new UserError(`--out ${p.root}: ${problem}`);
  for (const dir of [p.checkpoint, p.vision, p.llm, p.adapter, p.samples]) checkOutputPath(dir, { kind: 'checkpoint', flag: '--out' });
  checkOutputPath(p.artifact, { kind: 'artifact', flag: '--out' });
}

function demoFolderProblem(root: string, checkpoint: string): string | undefined {
  let st;
  try {
    st = lstatSync(root);
  } catch {
    return undefined;
  }
  if (st.isSymbolicLink()) return 'is a symbolic link; vlmc replaces only what it wrote itself, so give the real path or a new one';
  if (!st.isDirectory()) return 'is not a folder; give a new path';
  const entries = readdirSync(root);
  // An earlier demo's folder: marked, or (written before the mark existed) holding its marked checkpoint.
  if (entries.length === 0 || entries.includes(DEMO_MARK) || existsSync(nodePath.join(checkpoint, CHECKPOINT_MARK))) return undefined;
  return `is a folder vlmc demo did not write (it holds ${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''}); give a new path`;
}

export async function demo(outRoot = 'out', graphFile = DEFAULT_GRAPH): Promise<DemoReport> {
  const paths = demoPaths(outRoot);
  checkDemoOutputs(paths);
  const model = await loadGraphFile(graphFile);
  if (!(model instanceof InternVLChatModel)) throw new UserError(`${graphFile}: the demo needs an InternVL model`);
  const { checkpoint, artifact } = paths;
  await makeFolders(outRoot);
  await writeFileAtomic(nodePath.join(outRoot, DEMO_MARK), 'a folder vlmc demo writes its checkpoints, samples and artifact into\n');
  await writeRandomCheckpoint(model, checkpoint, 0);
  await writePartCheckpoints(model, paths.vision, paths.llm, 0);
  await writeSampleAdapter(model, paths.adapter, 0);
  await writeSamples(paths.samples);
  const { manifest } = await build({ graph: graphFile, weights: checkpoint, out: artifact });
  const session = await openSession(artifact);
  const outputs = await run(session, demoInputs(model, 2));
  await session.release();
  const logits = outputs.logits!.data as Float32Array;
  const sum = logits.reduce((a, b) => a + b, 0);
  const sha = createHash('sha256').update(new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength)).digest('hex');
  const sig = (io: { name: string; dtype: string; shape: (number | string)[] }) => `  ${io.name.padEnd(13)} ${io.dtype}[${io.shape.join(', ')}]`;
  const lines = [
    `checkpoint  ${checkpoint} (random weights, seed 0; tokenizer.json, template ${WRITTEN_TEMPLATE})`,
    `parts       ${paths.vision}, ${paths.llm} (Path B: the same weights, no projector)`,
    `adapter     ${paths.adapter} (a random PEFT LoRA adapter for the LLM, rank 4)`,
    `samples     ${nodePath.join(paths.samples, SAMPLE_IMAGE)}, ${nodePath.join(paths.samples, SAMPLE_DATA)}`,
    `artifact    ${artifact}`,
    'inputs',
    ...manifest.inputs.map(sig),
    'outputs',
    ...manifest.outputs.map(sig),
    `parameters  ${manifest.counts.total.toLocaleString('en-US')} total, ${manifest.counts.trainable.toLocaleString('en-US')} trainable (${manifest.parameters.length} tensors)`,
    `logits      [${outputs.logits!.shape.join(', ')}] sum ${sum.toFixed(6)} sha256 ${sha.slice(0, 16)}`,
  ];
  return { lines, logitsSha256: sha };
}
