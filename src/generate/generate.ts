/**
 * Greedy (or sampled) decoding on a split artifact with the KV cache: one prefill over the prompt,
 * then one decoder step per new token. Rows of different length come right-padded with an
 * attention_mask; each row continues after its own last token (position = its length + step) and
 * never sees its padding, so a batch gives each row what it would get alone.
 */
import { UserError } from '../errors.ts';
import type { HostTensor } from '../runtime/run.ts';
import { SplitSession, type KvPair, type SessionOptions } from './session.ts';

export interface GenerateInputs {
  pixel_values: HostTensor;
  /** [batch, seq], right-padded. */
  input_ids: HostTensor;
  image_flags: HostTensor;
  /** [batch, seq], 1 on real tokens; all ones when absent. */
  attention_mask?: HostTensor;
}

export interface GenerateOptions extends SessionOptions {
  /** Tokens to generate at most (default 32). */
  maxNewTokens?: number;
  /** Keep going past eos (every row generates maxNewTokens). */
  ignoreEos?: boolean;
  /** Stop ids; default: the pipeline's eos_token_id. */
  eosTokenIds?: number[];
  /** 0 (default): greedy. Above 0: sample from softmax(logits / temperature). */
  temperature?: number;
  /** Sampling: keep the k most likely tokens (0 = all). */
  topK?: number;
  /** Seed of the sampler (deterministic output for a seed). */
  seed?: number;
}

/** One decoding step: a token for every row. */
export interface GenerationStep {
  step: number;
  /** The token of each row; a row that already stopped repeats its pad token. */
  tokens: number[];
  /** Next-token logits [batch, vocab] this step's tokens were chosen from. */
  logits: Float32Array;
  /** Rows that have stopped (eos reached) after this step. */
  done: boolean[];
}

/**
 * Generate from an open split artifact; yields each step as soon as it is decided. The caller owns
 * the session (see generateFromArtifact for one that opens and closes it).
 */
export async function* generate(session: SplitSession, inputs: GenerateInputs, o: GenerateOptions = {}): AsyncGenerator<GenerationStep> {
  const maxNew = o.maxNewTokens ?? 32;
  if (!Number.isInteger(maxNew) || maxNew < 1) throw new UserError(`--max-new-tokens must be a positive integer (got ${maxNew})`);
  const p = session.pipeline;
  const [batch, seq] = checkIds(inputs.input_ids);
  const mask = attentionMaskOf(inputs, batch, seq);
  const lengths = rowLengths(mask, batch, seq);
  const eos = new Set(o.eosTokenIds ?? p.eos_token_id);
  const pad = p.pad_token_id ?? [...eos][0] ?? 0;
  const pick = tokenPicker(o);
  const vocab = p.llm.vocab_size;

  const flags = inputs.image_flags;
  const features = await session.vision(session.tensor(inputs.pixel_values));
  const embeds = await session.embed(session.tensor(inputs.input_ids), features, session.tensor({ ...flags, shape: [flags.shape[0]!] }));
  const positions = Array.from({ length: batch * seq }, (_, i) => i % seq);
  let maskNow = Array.from(mask, Number);
  let total = seq;
  let step = await session.decode(embeds, session.int64(maskNow, [batch, seq]), session.int64(positions, [batch, seq]), session.emptyCache(batch), false);
  const done = new Array<boolean>(batch).fill(false);
  const noImage = session.noImageFeatures();
  for (let t = 0; t < maxNew; t++) {
    const logits = step.logits.data as Float32Array;
    const tokens = Array.from({ length: batch }, (_, b) => (done[b] ? pad : pick(logits.subarray(b * vocab, (b + 1) * vocab))));
    if (!o.ignoreEos) tokens.forEach((id, b) => (done[b] ||= eos.has(id)));
    yield { step: t, tokens, logits: new Float32Array(logits), done: [...done] };
    if (t === maxNew - 1 || done.every(Boolean)) return;
    const next = await session.embed(session.int64(tokens, [batch, 1]), noImage.features, noImage.flags);
    maskNow = appendColumn(maskNow, batch, total, 1);
    total += 1;
    const pos = lengths.map((len) => len + t);
    step = await session.decode(next, session.int64(maskNow, [batch, total]), session.int64(pos, [batch, 1]), step.present as KvPair[], false);
  }
}

/** What generateFromArtifact returns: all steps, gathered. */
export interface Generation {
  /** [batch][steps] */
  tokens: number[][];
  /** Next-token logits of every step, [batch, steps, vocab]. */
  logits: Float32Array;
  steps: number;
  vocab: number;
}

/** Open the artifact, generate, collect every step (calling onStep as they come), close. */
export async function generateFromArtifact(dir: string, inputs: GenerateInputs, o: GenerateOptions & { onStep?: (s: GenerationStep) => void } = {}): Promise<Generation> {
  const session = await SplitSession.open(dir, o);
  try {
    const steps: GenerationStep[] = [];
    for await (const s of generate(session, inputs, o)) {
      steps.push(s);
      o.onStep?.(s);
    }
    return collect(steps, session.pipeline.llm.vocab_size, inputs.input_ids.shape[0]!);
  } finally {
    await session.release();
  }
}

function collect(steps: GenerationStep[], vocab: number, batch: number): Generation {
  const n = steps.length;
  const logits = new Float32Array(batch * n * vocab);
  const tokens = Array.from({ length: batch }, (_, b) => steps.map((s) => s.tokens[b]!));
  steps.forEach((s, t) => {
    for (let b = 0; b < batch; b++) logits.set(s.logits.subarray(b * vocab, (b + 1) * vocab), (b * n + t) * vocab);
  });
  return { tokens, logits, steps: n, vocab };
}

function checkIds(ids: HostTensor): [number, number] {
  if (ids.dtype !== 'int64' || ids.shape.length !== 2) throw new UserError(`input_ids must be I64 [batch, seq] (got ${ids.dtype}[${ids.shape.join(', ')}])`);
  return ids.shape as [number, number];
}

function attentionMaskOf(inputs: GenerateInputs, batch: number, seq: number): BigInt64Array {
  const m = inputs.attention_mask;
  if (!m) return new BigInt64Array(batch * seq).fill(1n);
  if (m.dtype !== 'int64' || m.shape.length !== 2 || m.shape[0] !== batch || m.shape[1] !== seq) {
    throw new UserError(`attention_mask must be I64 [${batch}, ${seq}] like input_ids (got ${m.dtype}[${m.shape.join(', ')}])`);
  }
  return m.data as BigInt64Array;
}

/** Tokens per row; the mask must be ones then zeros (right padding) with at least one token. */
function rowLengths(mask: BigInt64Array, batch: number, seq: number): number[] {
  return Array.from({ length: batch }, (_, b) => {
    const row = Array.from(mask.subarray(b * seq, (b + 1) * seq), Number);
    const len = row.filter((v) => v !== 0).length;
    if (len === 0 || row.slice(0, len).some((v) => v !== 1) || row.slice(len).some((v) => v !== 0)) {
      throw new UserError(`attention_mask row ${b} must be ones then zeros (right padding, at least one token)`);
    }
    return len;
  });
}

function appendColumn(mask: number[], batch: number, width: number, value: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < batch; b++) out.push(...mask.slice(b * width, (b + 1) * width), value);
  return out;
}

/** Greedy argmax (first maximum, as torch.argmax), or seeded sampling. */
function tokenPicker(o: GenerateOptions): (logits: Float32Array) => number {
  const temperature = o.temperature ?? 0;
  if (temperature < 0 || !Number.isFinite(temperature)) throw new UserError(`--temperature must be >= 0 (got ${temperature})`);
  if (temperature === 0) return argmax;
  const random = mulberry32(o.seed ?? 0);
  const topK = o.topK ?? 0;
  return (logits) => sample(logits, temperature, topK, random);
}

export function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

function sample(logits: Float32Array, temperature: number, topK: number, random: () => number): number {
  let order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]! || a - b);
  if (topK > 0) order = order.slice(0, topK);
  const top = logits[order[0]!]!;
  const weights = order.map((i) => Math.exp((logits[i]! - top) / temperature));
  let r = random() * weights.reduce((a, b) => a + b, 0);
  for (let k = 0; k < order.length; k++) if ((r -= weights[k]!) <= 0) return order[k]!;
  return order[order.length - 1]!;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

