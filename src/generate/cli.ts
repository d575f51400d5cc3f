/**
 * `vlmc generate`: inputs (a safetensors file, or an image and a prompt) -> tokens streamed to
 * stdout as text (or ids, when the artifact has no tokenizer.json), optionally every step's tokens
 * and logits to a safetensors file, or a JSON summary.
 */
import { checkOutputPath } from '../fs/output-path.ts';
import { existsSync } from 'node:fs';
import * as nodePath from 'node:path';
import { UserError } from '../errors.ts';
import type { HostTensor } from '../runtime/session.ts';
import { readInputs, writeOutputs } from '../runtime/tensor-files.ts';
import { checkDeclaredInputs, forwardInputNames } from '../runtime/check-inputs.ts';
import { readManifest } from '../artifact/format.ts';
import { generate, type GenerateInputs, type GenerateOptions, type GenerationStep } from './generate.ts';
import { SplitSession } from './session.ts';
import { readPipeline } from './pipeline.ts';
import type { StreamingDetokenizer } from '../tokenizer/stream.ts';

export interface GenerateCommand extends GenerateOptions {
  artifact: string;
  inputs?: string;
  image?: string[];
  /** One question per batch row (with several, one image per prompt or none: `vlmc inputs`' pairing). */
  prompt?: string | string[];
  /** How the request is built from --image / --prompt, as `vlmc inputs` builds it. */
  request?: RequestOptions;
  out?: string;
  json?: boolean;
  write?: (s: string) => void;
}

/** `vlmc inputs`' options for building a request (the tiling, template, system message and history). */
export interface RequestOptions {
  /** A JSON file of earlier [question, answer] turns. */
  history?: string;
  maxNum?: number;
  useThumbnail?: boolean;
  systemMessage?: string;
  template?: string;
}

const REQUEST_FLAGS: Record<keyof RequestOptions, string> = { history: '--history', maxNum: '--max-num', useThumbnail: '--no-thumbnail', systemMessage: '--system-message', template: '--template' };

export async function generateCommand(c: GenerateCommand): Promise<void> {
  readPipeline(c.artifact); // a clear error before anything loads
  if (c.out) checkOutputPath(c.out, { kind: 'result', content: 'outputs', flag: '--out', inputs: [c.artifact, c.inputs, ...(c.image ?? [])] });
  const inputs = await resolveInputs(c);
  const write = c.write ?? ((s: string) => process.stdout.write(s));
  const session = await SplitSession.open(c.artifact, c);
  try {
    const batch = inputs.input_ids.shape[0]!;
    const streams = await detokenizers(c.artifact, batch);
    const steps: GenerationStep[] = [];
    for await (const step of generate(session, inputs, c)) {
      const live = steps.at(-1)?.done.map((d) => !d) ?? new Array<boolean>(batch).fill(true);
      steps.push(step);
      const piece = streamPiece(step, live, streams, batch);
      if (!c.json) write(piece);
    }
    const tail = streams?.map((s) => s.flush()) ?? [];
    if (!c.json) write(batch === 1 ? `${tail.join('')}\n` : `\n${streams ? streams.map((s, b) => `[${b}] ${s.text}\n`).join('') : ''}`);
    const vocab = session.pipeline.llm.vocab_size;
    if (c.out) await writeOutputs(c.out, generationTensors(steps, batch, vocab));
    if (c.json) write(`${JSON.stringify({ steps: steps.length, tokens: rows(steps, batch), text: streams?.map((s) => s.text) ?? null })}\n`);
  } finally {
    await session.release();
  }
}

async function resolveInputs(c: GenerateCommand): Promise<GenerateInputs> {
  const prompts = c.prompt === undefined ? [] : typeof c.prompt === 'string' ? [c.prompt] : c.prompt;
  const requestFlags = (Object.keys(REQUEST_FLAGS) as (keyof RequestOptions)[]).filter((k) => c.request?.[k] !== undefined).map((k) => REQUEST_FLAGS[k]);
  if (c.inputs && (c.image?.length || prompts.length > 0)) throw new UserError('give either --inputs <file> or --prompt (with --image), not both');
  if (c.inputs) {
    // The request options shape a request built here; an inputs file is already built.
    if (requestFlags.length > 0) throw new UserError(`${requestFlags.join(', ')}: ${requestFlags.length === 1 ? 'builds' : 'build'} the request from --prompt/--image; with --inputs ${c.inputs} the tensors are given (build them with vlmc inputs ${requestFlags.join(' ')})`);
    const manifest = readManifest(c.artifact);
    // run's declared-tensor checks; image_flags may be left out (every tile counts). Values are checked by generate().
    const t = await readInputs(c.inputs, [...forwardInputNames(manifest), ATTENTION_MASK], (declared) => checkDeclaredInputs(c.inputs!, manifest, declared, ['image_flags']));
    c.source ??= c.inputs;
    return t as unknown as GenerateInputs;
  }
  if (prompts.length === 0) throw new UserError(`nothing to generate from: give --inputs <file>, or --prompt "..." (with --image <file>, or none for a text-only request)${c.image?.length ? '; --image needs a --prompt' : ''}`);
  // What `vlmc inputs` builds, from the artifact's config.json and tokenizer files.
  const { buildInputs, readHistoryFile } = await import('../inputs/index.ts');
  const q = c.request ?? {};
  const r = await buildInputs({
    checkpoint: c.artifact,
    images: c.image ?? [],
    prompts,
    history: q.history === undefined ? undefined : readHistoryFile(q.history),
    maxNum: q.maxNum,
    useThumbnail: q.useThumbnail,
    systemMessage: q.systemMessage,
    template: q.template,
  });
  // chat() stops at the template's end-of-turn token.
  if (c.eosTokenIds === undefined) c.eosTokenIds = [r.eosTokenId, ...readPipeline(c.artifact).eos_token_id];
  return r.inputs;
}

const ATTENTION_MASK = 'attention_mask';

/** One streaming detokenizer per row, when the artifact has a tokenizer. */
async function detokenizers(artifact: string, batch: number): Promise<StreamingDetokenizer[] | undefined> {
  if (!existsSync(nodePath.join(artifact, 'tokenizer.json'))) return undefined;
  const { loadTokenizer } = await import('../tokenizer/index.ts');
  const tok = loadTokenizer(artifact);
  return Array.from({ length: batch }, () => tok.stream({ skipSpecialTokens: true }));
}

/**
 * What to print for a step: with one row and a tokenizer, the text that became final; otherwise the
 * step's ids (rows joined by ','), the texts of every row following at the end. `live`: the rows
 * still generating before this step.
 */
function streamPiece(step: GenerationStep, live: boolean[], streams: StreamingDetokenizer[] | undefined, batch: number): string {
  if (streams && batch === 1) return streams[0]!.push(step.tokens[0]!);
  // A row that already stopped only repeats its pad id: its text is complete.
  streams?.forEach((s, b) => live[b] && s.push(step.tokens[b]!));
  return `${step.step === 0 ? '' : ' '}${step.tokens.join(',')}`;
}

function rows(steps: GenerationStep[], batch: number): number[][] {
  return Array.from({ length: batch }, (_, b) => steps.map((s) => s.tokens[b]!));
}

/** `tokens` I64 [batch, N] and `logits` F32 [batch, N, vocab]. */
export function generationTensors(steps: GenerationStep[], batch: number, vocab: number): Record<string, HostTensor> {
  const n = steps.length;
  const tokens = new BigInt64Array(batch * n);
  const logits = new Float32Array(batch * n * vocab);
  steps.forEach((s, t) => {
    for (let b = 0; b < batch; b++) {
      tokens[b * n + t] = BigInt(s.tokens[b]!);
      logits.set(s.logits.subarray(b * vocab, (b + 1) * vocab), (b * n + t) * vocab);
    }
  });
  return { tokens: { dtype: 'int64', shape: [batch, n], data: tokens }, logits: { dtype: 'float32', shape: [batch, n, vocab], data: logits } };
}

