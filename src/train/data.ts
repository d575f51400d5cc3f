/**
 * InternVL's training data: jsonl lines `{"image": "a.jpg" | [...], "conversations": [{"from":
 * "human", "value": "<image>\nQ"}, {"from": "gpt", "value": "A"}, ...]}` to input_ids and labels,
 * masked as the official dataset code (internvl_chat/internvl/train/dataset.py, preprocess_*) does:
 * the conversation is rendered by the checkpoint's template one turn at a time, each piece tokenized
 * on its own; the system prompt, every human turn and each answer's role prefix are ignored (-100);
 * the answer and its end-of-turn separator are labelled, except the whitespace after it. Each
 * `<image>` becomes `<img>` + tiles x tokens_per_tile `<IMG_CONTEXT>` + `</img>`; an image with no
 * `<image>` in the text goes before the first question (`<image>\n`), as the dataset code puts it.
 */
import { readFileSync } from 'node:fs';
import * as nodePath from 'node:path';
import { UserError } from '../errors.ts';
import { getPrompt, type Message } from '../prompt/templates.ts';
import { imageBlock, IMAGE_PLACEHOLDER } from '../prompt/query.ts';
import type { TextTokenizer } from '../tokenizer/index.ts';
import type { RequestConfig } from '../inputs/config.ts';
import { preprocessImage } from '../preprocess/index.ts';
import { IGNORE_INDEX } from '../nn/loss.ts';

export interface Turn {
  from: 'human' | 'gpt' | 'system';
  value: string;
}

export interface Sample {
  image?: string | string[];
  conversations: Turn[];
  /** Where the sample is (`data.jsonl:3`), for errors. */
  where: string;
}

export function readJsonl(file: string): Sample[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError(`${file}: cannot read the training data (${(e as Error).message})`);
  }
  const samples: Sample[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${file}:${i + 1}`;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch (e) {
      throw new UserError(`${where}: not JSON (${(e as Error).message})`);
    }
    samples.push(checkSample(raw, where));
  });
  if (samples.length === 0) throw new UserError(`${file}: no samples`);
  return samples;
}

function checkSample(raw: unknown, where: string): Sample {
  const o = raw as { image?: unknown; conversations?: unknown };
  if (typeof o !== 'object' || o === null) throw new UserError(`${where}: a sample must be a JSON object`);
  const image = o.image;
  if (image !== undefined && typeof image !== 'string' && !(Array.isArray(image) && image.every((x) => typeof x === 'string'))) {
    throw new UserError(`${where}: 'image' must be a file name or a list of them`);
  }
  if (!Array.isArray(o.conversations) || o.conversations.length === 0) throw new UserError(`${where}: 'conversations' must be a non-empty list`);
  const conversations = o.conversations.map((t: { from?: unknown; value?: unknown }, j: number) => {
    if (t?.from !== 'human' && t?.from !== 'gpt' && t?.from !== 'system') throw new UserError(`${where}: conversations[${j}].from must be 'human', 'gpt' or 'system' (got ${JSON.stringify(t?.from)})`);
    if (typeof t.value !== 'string') throw new UserError(`${where}: conversations[${j}].value must be a string`);
    return { from: t.from, value: t.value } as Turn;
  });
  if (!conversations.some((t) => t.from === 'gpt')) throw new UserError(`${where}: no 'gpt' turn: nothing to learn`);
  return { image: image as Sample['image'], conversations, where };
}

export interface EncodedSample {
  /** [tiles, 3, S, S]; a text-only sample has one blank tile with flag 0 (as the dataset code's dummy image). */
  pixelValues: Float32Array;
  tiles: number;
  imageFlags: number[];
  inputIds: number[];
  labels: number[];
}

export interface EncodeContext {
  config: RequestConfig;
  tokenizer: TextTokenizer;
  /** Folder image names are relative to (the jsonl's, unless given). */
  imageRoot: string;
}

export async function encodeSample(sample: Sample, ctx: EncodeContext): Promise<EncodedSample> {
  const { config } = ctx;
  const files = sample.image === undefined ? [] : Array.isArray(sample.image) ? sample.image : [sample.image];
  const images = [];
  for (const f of files) {
    const options = { imageSize: config.imageSize, minNum: config.minDynamicPatch, maxNum: config.maxDynamicPatch, useThumbnail: config.useThumbnail };
    // Named by the data line too: the image path alone does not say which sample asked for it.
    images.push(await preprocessImage(nodePath.resolve(ctx.imageRoot, f), options).catch((e: unknown) => {
      throw e instanceof UserError ? new UserError(`${sample.where}: image ${JSON.stringify(f)}: ${e.message}`) : e;
    }));
  }
  const turns = withImageBlocks(sample, images.map((im) => im.tiles * config.tokensPerTile));
  const { inputIds, labels } = tokenizeTurns(turns, ctx, sample.where);
  const s = config.imageSize;
  if (images.length === 0) return { pixelValues: new Float32Array(3 * s * s), tiles: 1, imageFlags: [0], inputIds, labels };
  const tiles = images.reduce((n, im) => n + im.tiles, 0);
  const pixelValues = new Float32Array(tiles * 3 * s * s);
  let at = 0;
  for (const im of images) {
    pixelValues.set(im.pixelValues, at);
    at += im.pixelValues.length;
  }
  return { pixelValues, tiles, imageFlags: new Array<number>(tiles).fill(1), inputIds, labels };
}

/** `<image>` placeholders replaced, in order, by each image's block of context tokens. */
function withImageBlocks(sample: Sample, tokensPerImage: number[]): Turn[] {
  const turns = sample.conversations.map((t) => ({ ...t }));
  const placeholders = turns.reduce((n, t) => n + (t.from === 'human' ? t.value.split(IMAGE_PLACEHOLDER).length - 1 : 0), 0);
  const firstHuman = turns.find((t) => t.from === 'human');
  if (tokensPerImage.length > 0 && placeholders === 0 && firstHuman) {
    firstHuman.value = `${IMAGE_PLACEHOLDER}\n`.repeat(tokensPerImage.length) + firstHuman.value;
  } else if (placeholders !== tokensPerImage.length) {
    throw new UserError(`${sample.where}: ${tokensPerImage.length} image(s) but ${placeholders} '${IMAGE_PLACEHOLDER}' placeholder(s) in the human turns`);
  }
  let next = 0;
  for (const t of turns) {
    if (t.from !== 'human') continue;
    while (t.value.includes(IMAGE_PLACEHOLDER) && next < tokensPerImage.length) t.value = t.value.replace(IMAGE_PLACEHOLDER, imageBlock(tokensPerImage[next++]!));
  }
  return turns;
}

/** Renders and tokenizes the conversation one turn at a time; only the answers are labelled. */
function tokenizeTurns(turns: Turn[], ctx: EncodeContext, where: string): { inputIds: number[]; labels: number[] } {
  const t = ctx.config.template;
  const system = turns[0]?.from === 'system' ? turns[0].value : ctx.config.systemMessage;
  const dialogue = turns.filter((x) => x.from !== 'system');
  const messages: Message[] = dialogue.map((x) => [x.from === 'human' ? t.roles[0] : t.roles[1], x.value]);
  const inputIds: number[] = [];
  const labels: number[] = [];
  const push = (text: string, labelled: boolean) => {
    if (text === '') return;
    const ids = inputIds.length === 0 ? ctx.tokenizer.encode(text) : ctx.tokenizer.encodeRaw(text);
    if (!ids.every((id) => Number.isInteger(id))) throw new UserError(`${where}: the tokenizer cannot encode ${JSON.stringify(text.slice(0, 60))} (no id for some of it)`);
    const vocab = ctx.config.vocabSize;
    const outside = vocab === undefined ? undefined : ids.find((id) => id >= vocab);
    if (outside !== undefined) throw new UserError(`${where}: token id ${outside} is outside the model's vocabulary (vocab_size ${vocab}): the tokenizer does not belong to this model`);
    inputIds.push(...ids);
    labels.push(...(labelled ? ids : ids.map(() => IGNORE_INDEX)));
  };
  let rendered = getPrompt(t, system, []);
  push(rendered, false);
  dialogue.forEach((turn, k) => {
    const next = getPrompt(t, system, messages.slice(0, k + 1));
    if (!next.startsWith(rendered)) throw new UserError(`${where}: template '${t.name}' does not render turn by turn; cannot mask its answers`);
    const piece = next.slice(rendered.length);
    rendered = next;
    if (turn.from === 'human') return push(piece, false);
    const at = piece.indexOf(turn.value);
    if (at < 0) throw new UserError(`${where}: template '${t.name}' changes the answer text; cannot mask it`);
    push(piece.slice(0, at), false);
    // The answer and its end-of-turn separator are learnt; whitespace after the separator is not.
    const answer = piece.slice(at);
    const trimmed = answer.replace(/\s+$/, '');
    push(trimmed, true);
    push(answer.slice(trimmed.length), false);
  });
  return { inputIds, labels };
}

/** Right-padded batch: ids with pad, labels with -100; tiles concatenated in row order. */
export function collate(samples: EncodedSample[], padTokenId: number, imageSize: number) {
  const seq = Math.max(...samples.map((s) => s.inputIds.length));
  const batch = samples.length;
  const inputIds = new BigInt64Array(batch * seq).fill(BigInt(padTokenId));
  const labels = new BigInt64Array(batch * seq).fill(BigInt(IGNORE_INDEX));
  samples.forEach((s, r) => {
    s.inputIds.forEach((id, j) => (inputIds[r * seq + j] = BigInt(id)));
    s.labels.forEach((id, j) => (labels[r * seq + j] = BigInt(id)));
  });
  const tiles = samples.reduce((n, s) => n + s.tiles, 0);
  const pixelValues = new Float32Array(tiles * 3 * imageSize * imageSize);
  let at = 0;
  for (const s of samples) {
    pixelValues.set(s.pixelValues, at);
    at += s.pixelValues.length;
  }
  const imageFlags = BigInt64Array.from(samples.flatMap((s) => s.imageFlags), (f) => BigInt(f));
  return {
    pixel_values: { dtype: 'float32' as const, shape: [tiles, 3, imageSize, imageSize], data: pixelValues },
    input_ids: { dtype: 'int64' as const, shape: [batch, seq], data: inputIds },
    image_flags: { dtype: 'int64' as const, shape: [tiles], data: imageFlags },
    labels: { dtype: 'int64' as const, shape: [batch, seq], data: labels },
  };
}
