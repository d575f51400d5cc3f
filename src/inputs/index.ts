/**
 * `vlmc inputs`: an image (or several) and a question to the tensors `vlmc run` / `vlmc generate`
 * take, built the way InternVL's own load_image() and chat() build them. Reads only config.json
 * and the tokenizer files of the folder it is given.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import * as nodePath from 'node:path';
import { UserError } from '../errors.ts';
import { SafetensorsFile } from '../checkpoint/safetensors.ts';
import { encodeSafetensors, type TensorToWrite } from '../checkpoint/safetensors-write.ts';
import { writeFileAtomic } from '../fs/atomic.ts';
import { checkOutputPath, resultMetadata } from '../fs/output-path.ts';
import { refuseNonRegularFile } from '../fs/errors.ts';
import { explainFs } from '../fs/errors.ts';
import { buildQuery, IMG_CONTEXT_TOKEN, IMAGE_PLACEHOLDER, type History } from '../prompt/query.ts';
import { eosToken } from '../prompt/templates.ts';
import { loadTokenizer, type TextTokenizer } from '../tokenizer/index.ts';
import { readRequestConfig, type RequestConfig } from './config.ts';
import { preprocessImage, type PreprocessedImage, type PreprocessOptions } from '../preprocess/index.ts';
import { MAX_TILES } from '../preprocess/tiling.ts';

export { readRequestConfig, type RequestConfig } from './config.ts';

/** Image file -> tiles (src/preprocess's preprocessImage, or a stand-in). */
export type ImagePreprocessor = (file: string, o: PreprocessOptions) => Promise<PreprocessedImage>;

export interface InputsOptions {
  /** Checkpoint folder, artifact folder, or a folder with config.json and the tokenizer files. */
  checkpoint: string;
  /** Image files, in order; with one prompt they all belong to it, with several prompts one per prompt. */
  images?: readonly string[];
  /** One question per batch row. */
  prompts: readonly string[];
  /** Earlier turns of the conversation (one prompt only). */
  history?: History;
  /** `max_dynamic_patch` override. */
  maxNum?: number;
  /** `use_thumbnail` override. */
  useThumbnail?: boolean;
  /** `config.system_message` override. */
  systemMessage?: string;
  /** `config.template` override. */
  template?: string;
  /** Image preprocessing (default: src/preprocess). */
  preprocess?: ImagePreprocessor;
}

export interface HostTensorF32 { dtype: 'float32'; shape: number[]; data: Float32Array }
export interface HostTensorI64 { dtype: 'int64'; shape: number[]; data: BigInt64Array }

export interface ModelInputs {
  pixel_values: HostTensorF32;
  input_ids: HostTensorI64;
  image_flags: HostTensorI64;
  attention_mask: HostTensorI64;
}

export interface InputsResult {
  inputs: ModelInputs;
  /** The query string of each row, as passed to the tokenizer. */
  queries: string[];
  /** The question of each row as chat() stores it in a history. */
  questions: string[];
  /** Per image: its file, size, grid and tile count. */
  images: Omit<PreprocessedImage, 'pixelValues' | 'tilesU8'>[];
  config: RequestConfig;
  eosTokenId: number;
  padTokenId: number;
  imgContextTokenId: number;
}

export async function buildInputs(o: InputsOptions): Promise<InputsResult> {
  const images = o.images ?? [];
  checkPromptsAndImages(o.prompts, images, o.history);
  const config = readRequestConfig(o.checkpoint, { template: o.template });
  const tokenizer = loadTokenizer(o.checkpoint);
  const imgContextTokenId = tokenizer.requireTokenId(IMG_CONTEXT_TOKEN, 'the image placeholder token InternVL splices image features into');
  crossCheckArtifact(config, imgContextTokenId, o.checkpoint);
  const processed = await preprocessAll(images, config, o);
  const perRow = imagesPerRow(o.prompts.length, processed);
  const rows = o.prompts.map((question, i) => {
    const q = buildQuery({
      template: config.template,
      systemMessage: o.systemMessage ?? config.systemMessage,
      question,
      history: o.history ?? null,
      numPatchesList: perRow[i]!.map((p) => p.tiles),
      numImageToken: config.tokensPerTile,
    });
    const ids = tokenizer.encode(q.query);
    checkImageTokens(ids, perRow[i]!, imgContextTokenId, config, o.prompts.length > 1 ? i : undefined);
    return { ...q, ids };
  });
  const padTokenId = tokenizer.padTokenId ?? config.padTokenId ?? tokenizer.requireTokenId(eosToken(config.template), 'the pad id when the tokenizer names no pad token');
  const eosTokenId = tokenizer.eosIdFor(config.template);
  checkVocabulary(rows.map((r) => r.ids), imgContextTokenId, config, tokenizer);
  return {
    inputs: {
      pixel_values: pixelValues(processed, config.imageSize),
      ...idsAndMask(rows.map((r) => r.ids), padTokenId),
      image_flags: imageFlags(processed),
    },
    queries: rows.map((r) => r.query),
    questions: rows.map((r) => r.question),
    images: processed.map(({ pixelValues: _p, tilesU8: _u, ...rest }) => rest),
    config,
    eosTokenId,
    padTokenId,
    imgContextTokenId,
  };
}

/** One prompt takes every image; several prompts take one image each (batch_chat's pairing) or none. */
function imagesPerRow(rows: number, images: PreprocessedImage[]): PreprocessedImage[][] {
  if (rows === 1) return [images];
  return images.length === 0 ? Array.from({ length: rows }, () => []) : images.map((p) => [p]);
}

/** Marks a safetensors file as vlmc's own inputs file, so a later run may replace it and nothing else. */
export const INPUTS_METADATA = { ...resultMetadata('inputs'), 'vlmc.format': 'vlmc-inputs/1' } as const;

/** `vlmc inputs`: buildInputs, then the tensors written atomically to `out`. */
export async function writeInputs(o: InputsOptions & { out: string }): Promise<InputsResult> {
  checkOutputPath(o.out, { kind: 'result', content: 'inputs', flag: '--out', inputs: [o.checkpoint, ...(o.images ?? [])] });
  const result = await buildInputs(o);
  await writeOutputFile(o.out, inputTensors(result.inputs), { ...INPUTS_METADATA, 'vlmc.template': result.config.template.name });
  return result;
}

function inputTensors(i: ModelInputs): TensorToWrite[] {
  const bytes = (t: { data: Float32Array | BigInt64Array }) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return [
    { name: 'pixel_values', dtype: 'F32', shape: i.pixel_values.shape, data: bytes(i.pixel_values) },
    { name: 'input_ids', dtype: 'I64', shape: i.input_ids.shape, data: bytes(i.input_ids) },
    { name: 'image_flags', dtype: 'I64', shape: i.image_flags.shape, data: bytes(i.image_flags) },
    { name: 'attention_mask', dtype: 'I64', shape: i.attention_mask.shape, data: bytes(i.attention_mask) },
  ];
}

/** The one place the output is written. */
async function writeOutputFile(out: string, tensors: TensorToWrite[], metadata: Record<string, string>): Promise<void> {
  await explainFs(out, () => writeFileAtomic(out, encodeSafetensors(tensors, metadata)));
}

function checkPromptsAndImages(prompts: readonly string[], images: readonly string[], history: History | undefined): void {
  if (prompts.length === 0) throw new UserError('--prompt: at least one prompt is needed');
  if (prompts.length > 1 && images.length > 0 && images.length !== prompts.length) {
    throw new UserError(`--image/--prompt: with ${prompts.length} prompts give one --image per prompt (paired in order) or none; got ${images.length} images`);
  }
  if (prompts.length > 1 && history !== undefined) throw new UserError('--history: a history needs exactly one --prompt (InternVL\'s batch_chat has no multi-turn either)');
  for (const f of images) {
    if (!existsSync(f)) throw new UserError(`--image ${f}: file not found`);
    if (statSync(f).isDirectory()) throw new UserError(`--image ${f}: is a folder; give an image file (PNG, JPEG, WebP or GIF), one --image per image`);
  }
}

function crossCheckArtifact(config: RequestConfig, imgContextTokenId: number, dir: string): void {
  const a = config.artifact;
  if (a?.tokensPerTile !== undefined && a.tokensPerTile !== config.tokensPerTile) {
    throw new UserError(`${dir}: the artifact's graph takes ${a.tokensPerTile} tokens per tile but ${config.file} gives ${config.tokensPerTile}`);
  }
  if (a?.imgContextTokenId !== undefined && a.imgContextTokenId !== imgContextTokenId) {
    throw new UserError(`${dir}: the artifact's graph splices <IMG_CONTEXT> id ${a.imgContextTokenId} but the tokenizer has it as ${imgContextTokenId}`);
  }
}

async function preprocessAll(images: readonly string[], config: RequestConfig, o: InputsOptions): Promise<PreprocessedImage[]> {
  if (images.length === 0) return [];
  if (o.maxNum !== undefined && (o.maxNum > MAX_TILES || o.maxNum < config.minDynamicPatch)) {
    throw new UserError(`--max-num ${o.maxNum}: must be from ${config.file}'s min_dynamic_patch (${config.minDynamicPatch}) to ${MAX_TILES}`);
  }
  const preprocess = o.preprocess ?? preprocessImage;
  const out: PreprocessedImage[] = [];
  for (const file of images) {
    out.push(await preprocess(file, { imageSize: config.imageSize, minNum: config.minDynamicPatch, maxNum: o.maxNum ?? config.maxDynamicPatch, useThumbnail: o.useThumbnail ?? config.useThumbnail }));
  }
  return out;
}

/** Every tile must be spliced: exactly tokens_per_tile x tiles `<IMG_CONTEXT>` ids per row. */
function checkImageTokens(ids: number[], images: PreprocessedImage[], contextId: number, config: RequestConfig, row: number | undefined): void {
  const found = ids.filter((id) => id === contextId).length;
  const tiles = images.reduce((n, p) => n + p.tiles, 0);
  const expected = tiles * config.tokensPerTile;
  if (found === expected) return;
  const which = row === undefined ? '--prompt' : `--prompt #${row + 1}`;
  const hint =
    found > expected
      ? `the prompt itself contains ${IMG_CONTEXT_TOKEN}`
      : `${images.length} image(s) but fewer ${IMAGE_PLACEHOLDER} placeholders: with several images write one ${IMAGE_PLACEHOLDER} per image (e.g. "Image-1: <image>\\nImage-2: <image>\\n..."); with a history put ${IMAGE_PLACEHOLDER} where the image belongs`;
  throw new UserError(`${which}: ${found} ${IMG_CONTEXT_TOKEN} tokens for ${tiles} tile(s) x ${config.tokensPerTile} = ${expected} (${hint})`);
}

function checkVocabulary(rows: number[][], contextId: number, config: RequestConfig, tokenizer: TextTokenizer): void {
  if (config.vocabSize === undefined) return;
  // <IMG_CONTEXT> counts even when no row uses it: the graph splices at that id.
  const max = Math.max(...rows.flat(), contextId);
  if (max >= config.vocabSize) {
    throw new UserError(`${nodePath.join(tokenizer.dir, 'tokenizer.json')}: token id ${max} is outside the model's vocabulary (llm_config.vocab_size ${config.vocabSize} in ${config.file}): the tokenizer does not belong to this model`);
  }
}

/** All tiles in image order; a text-only request gets one zero tile with flag 0, as InternVL's own text-only samples do. */
function pixelValues(images: PreprocessedImage[], size: number): HostTensorF32 {
  const tileElems = 3 * size * size;
  if (images.length === 0) return { dtype: 'float32', shape: [1, 3, size, size], data: new Float32Array(tileElems) };
  const tiles = images.reduce((n, p) => n + p.tiles, 0);
  const data = new Float32Array(tiles * tileElems);
  let at = 0;
  for (const p of images) {
    if (p.pixelValues.length !== p.tiles * tileElems) throw new Error(`preprocess returned ${p.pixelValues.length} values for ${p.tiles} tiles of ${size}`);
    data.set(p.pixelValues, at);
    at += p.pixelValues.length;
  }
  return { dtype: 'float32', shape: [tiles, 3, size, size], data };
}

function imageFlags(images: PreprocessedImage[]): HostTensorI64 {
  const tiles = images.reduce((n, p) => n + p.tiles, 0);
  return tiles === 0 ? { dtype: 'int64', shape: [1], data: BigInt64Array.of(0n) } : { dtype: 'int64', shape: [tiles], data: new BigInt64Array(tiles).fill(1n) };
}

/** Rows right-padded with `padId` to the longest; the mask is 1 on real tokens. */
function idsAndMask(rows: number[][], padId: number): { input_ids: HostTensorI64; attention_mask: HostTensorI64 } {
  const seq = Math.max(...rows.map((r) => r.length));
  const ids = new BigInt64Array(rows.length * seq).fill(BigInt(padId));
  const mask = new BigInt64Array(rows.length * seq);
  rows.forEach((r, b) => {
    r.forEach((id, j) => {
      ids[b * seq + j] = BigInt(id);
      mask[b * seq + j] = 1n;
    });
  });
  return { input_ids: { dtype: 'int64', shape: [rows.length, seq], data: ids }, attention_mask: { dtype: 'int64', shape: [rows.length, seq], data: mask } };
}

/** A `--history` file: a JSON array of [question, answer] pairs, as chat() keeps its history. */
export function readHistoryFile(file: string): History {
  let v: unknown;
  refuseNonRegularFile(file, 'a JSON history file');
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`--history ${file}: ${e instanceof SyntaxError ? 'not valid JSON' : 'cannot read'} (${e instanceof Error ? e.message : String(e)})`);
  }
  if (!Array.isArray(v)) throw new UserError(`--history ${file}: must be a JSON array of [question, answer] pairs`);
  v.forEach((turn, i) => {
    if (!Array.isArray(turn) || turn.length !== 2 || typeof turn[0] !== 'string' || typeof turn[1] !== 'string') {
      throw new UserError(`--history ${file}: entry ${i} must be a [question, answer] pair of strings (got ${JSON.stringify(turn)})`);
    }
  });
  return v as History;
}
