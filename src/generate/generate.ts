/**
 * Greedy (or sampled) decoding on a split artifact with the KV cache: one prefill over the prompt,
 * then one decoder step per new token. Rows of different length come right-padded with an
 * attention_mask; each row continues after its own last token (position = its length + step) and
 * never sees its padding, so a batch gives each row what it would get alone.
 */
import { UserError } from '../errors.ts';
import { mulberry32 } from '../bind/init.ts';
import type { HostTensor, SessionOptions } from '../runtime/session.ts';
import { checkAttentionMask, checkForwardInputs } from '../runtime/check-inputs.ts';
import { readManifest } from '../artifact/format.ts';
import { SplitSession, allTiles } from './session.ts';

export interface GenerateInputs {
  pixel_values: HostTensor;
  /** [batch, seq], right-padded. */
  input_ids: HostTensor;
  /** Optional: every tile counts when absent. */
  image_flags?: HostTensor;
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
  /** Where the inputs came from (the inputs file), for messages. */
  source?: string;
  /** Told when generation will stop short of maxNewTokens (the model's context is full). */
  onNotice?: (message: string) => void;
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
  const requested = o.maxNewTokens ?? 32;
  if (!Number.isInteger(requested) || requested < 1) throw new UserError(`--max-new-tokens must be a positive integer (got ${requested})`);
  const pick = tokenPicker(o);
  const p = session.pipeline;
  const source = o.source ?? 'the inputs';
  const [batch, seq] = checkIds(source, inputs.input_ids);
  const lengths = checkAttentionMask(source, inputs.attention_mask, batch, seq);
  // The checks `vlmc run` makes; image_flags default to every tile.
  const fed = checkForwardInputs(source, readManifest(session.dir), { ...inputs, image_flags: inputs.image_flags ?? allTiles(inputs.pixel_values) });
  const maxNew = withinContext(requested, Math.max(...lengths), p.llm.max_position_embeddings, source, o.onNotice);
  const mask = inputs.attention_mask ? (inputs.attention_mask.data as BigInt64Array) : new BigInt64Array(batch * seq).fill(1n);
  const eos = new Set(o.eosTokenIds ?? p.eos_token_id);
  const pad = p.pad_token_id ?? [...eos][0] ?? 0;
  const vocab = p.llm.vocab_size;

  const pixels = fed['pixel_values']!;
  // A graph without image_flags was given only the tiles it uses (checkForwardInputs).
  const flags = fed['image_flags'] ?? allTiles(pixels);
  const features = await session.vision(session.tensor(pixels));
  const embeds = await session.embed(session.tensor(inputs.input_ids), features, session.tensor({ ...flags, shape: [flags.shape[0]!] }));
  const positions = Array.from({ length: batch * seq }, (_, i) => i % seq);
  let maskNow = Array.from(mask, Number);
  let total = seq;
  let step = await session.decode(embeds, session.int64(maskNow, [batch, seq]), session.int64(positions, [batch, seq]), session.emptyCache(batch), false);
  const done = new Array<boolean>(batch).fill(false);
  const noImage = session.noImageFeatures();
  const switchAt = longropeSwitch(p);
  const generated: number[][] = Array.from({ length: batch }, () => []);
  for (let t = 0; t < maxNew; t++) {
    const logits = step.logits.data as Float32Array;
    const tokens = Array.from({ length: batch }, (_, b) => (done[b] ? pad : pick(logits.subarray(b * vocab, (b + 1) * vocab))));
    if (!o.ignoreEos) tokens.forEach((id, b) => (done[b] ||= eos.has(id)));
    yield { step: t, tokens, logits: new Float32Array(logits), done: [...done] };
    if (t === maxNew - 1 || done.every(Boolean)) return;
    tokens.forEach((id, b) => generated[b]!.push(id));
    maskNow = appendColumn(maskNow, batch, total, 1);
    total += 1;
    // The length rotary scaling sees after this step: the batch's longest row, as max(position_ids) + 1.
    const length = Math.max(...lengths) + t + 1;
    if (switchAt !== undefined && length > switchAt && length - 1 <= switchAt) {
      // LongRoPE switches to its long factors here: the cached keys were rotated with the short
      // ones, so recompute the whole cache, as transformers' Phi-3 generation does.
      const all = await session.embed(session.int64(generated.flat(), [batch, t + 1]), noImage.features, noImage.flags);
      const joined = session.concatSequence(embeds, all);
      const positionsAll = Array.from({ length: batch }, (_, b) => [...Array.from({ length: seq }, (_, i) => i), ...Array.from({ length: t + 1 }, (_, i) => lengths[b]! + i)]).flat();
      step = await session.decode(joined, session.int64(maskNow, [batch, total]), session.int64(positionsAll, [batch, total]), session.emptyCache(batch), false);
      continue;
    }
    const next = await session.embed(session.int64(tokens, [batch, 1]), noImage.features, noImage.flags);
    const pos = lengths.map((len) => len + t);
    step = await session.decode(next, session.int64(maskNow, [batch, total]), session.int64(pos, [batch, 1]), step.present, false);
  }
}

/** The length past which LongRoPE uses its long factors (a cache made before must be recomputed). */
function longropeSwitch(p: SplitSession['pipeline']): number | undefined {
  const r = p.llm.rope_scaling;
  return r?.type === 'longrope' ? r.original_max_position_embeddings : undefined;
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

function checkIds(source: string, ids: HostTensor): [number, number] {
  if (ids.dtype !== 'int64' || ids.shape.length !== 2 || ids.shape.some((d) => d < 1)) throw new UserError(`${source}: input 'input_ids' must be I64 [batch, seq] with at least one token (got ${ids.dtype}[${ids.shape.join(', ')}])`);
  return ids.shape as [number, number];
}

/**
 * New tokens that fit the model's context (max_position_embeddings) after the longest row: a request
 * for more stops at the limit, with a notice (as transformers warns); a prompt that fills the
 * context is refused.
 */
function withinContext(requested: number, longest: number, context: number, source: string, notice: ((m: string) => void) | undefined): number {
  const room = context - longest;
  if (room < 1) throw new UserError(`${source}: the prompt holds ${longest} tokens, which fills the model's context (max_position_embeddings ${context}); nothing can be generated`);
  if (requested <= room) return requested;
  notice?.(`--max-new-tokens ${requested}: the model's context holds ${context} positions and the prompt takes ${longest}, so generation stops after at most ${room} tokens`);
  return room;
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
  if (o.topK !== undefined && (!Number.isInteger(o.topK) || o.topK < 0)) throw new UserError(`--top-k must be a whole number >= 0 (got ${o.topK})`);
  if (temperature === 0) {
    // Greedy decoding neither samples nor draws random numbers: these would change nothing.
    const unused = [o.topK !== undefined && '--top-k', o.seed !== undefined && '--seed'].filter(Boolean);
    if (unused.length > 0) throw new UserError(`${unused.join(' and ')} ${unused.length === 1 ? 'applies' : 'apply'} to sampling; give --temperature > 0 too (without it decoding is greedy)`);
    return argmax;
  }
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


