/**
 * A split artifact opened in onnxruntime-node: one session per graph, and the three steps of a
 * forward (vision, embedding, decoder with a KV cache) on host tensors.
 */
import * as nodePath from 'node:path';
import { peekManifest } from '../artifact/manifest.ts';
import type ort from 'onnxruntime-node';
import { UserError } from '../errors.ts';
import { loadOrt, refuseStructureOnly, type HostTensor } from '../runtime/run.ts';
import { readPipeline, SPLIT_ENTRIES, type Pipeline, type SplitEntry } from './pipeline.ts';

export type ExecutionProvider = 'cpu' | 'cuda';

export interface SessionOptions {
  /** Execution provider; `cuda` only where this onnxruntime-node build has it. */
  ep?: ExecutionProvider;
  /**
   * Let ORT repack weights for its GEMM kernels at session creation: `true` for every graph,
   * `false` for none. By default only the decoder's: a decode step streams every decoder weight
   * once per token, and the packed layout streams faster than the M = 1 kernel over unpacked
   * weights; a quantised decoder needs it most (MatMulNBits dequantises on every call without it).
   * The vision graph (always float) stays unpacked: its packed copy would cost seconds at session
   * creation and a second copy of its weights for one forward per image (docs/performance.md,
   * "vlmc and mobius side by side").
   */
  prepackWeights?: boolean;
}

/** The cache of one layer: [batch, kv_heads, past, head_dim]. */
export type KvPair = { key: ort.Tensor; value: ort.Tensor };

export class SplitSession {
  private constructor(
    readonly dir: string,
    readonly pipeline: Pipeline,
    private readonly ort: typeof import('onnxruntime-node'),
    private readonly sessions: Record<SplitEntry, ort.InferenceSession>,
  ) {}

  static async open(dir: string, o: SessionOptions = {}): Promise<SplitSession> {
    const pipeline = readPipeline(dir);
    refuseStructureOnly(dir, peekManifest(dir));
    const runtime = await loadOrt();
    const providers = await executionProviders(runtime, o.ep ?? 'cpu');
    // ORT would also log a failed provider load itself; the UserError below says it once.
    if (o.ep && o.ep !== 'cpu') runtime.env.logLevel = 'fatal';
    const sessions: Partial<Record<SplitEntry, ort.InferenceSession>> = {};
    try {
      // One at a time: together they would only compete for the same cores and disk.
      for (const e of SPLIT_ENTRIES) {
        const prepack = o.prepackWeights ?? e === 'decoder';
        sessions[e] = await runtime.InferenceSession.create(nodePath.join(dir, pipeline.graphs[e].file), sessionOptions(providers, prepack, e === 'decoder'));
      }
    } catch (err) {
      for (const s of Object.values(sessions)) await s.release();
      // An execution provider that is listed but not installed fails here, inside ORT.
      if (o.ep && o.ep !== 'cpu') throw new UserError(`--ep ${o.ep}: onnxruntime-node could not use it (${(err as Error).message.split('\n')[0]}); install its ${o.ep} provider libraries or use --ep cpu`);
      throw err;
    }
    return new SplitSession(dir, pipeline, runtime, sessions as Record<SplitEntry, ort.InferenceSession>);
  }

  async release(): Promise<void> {
    for (const s of Object.values(this.sessions)) await s.release();
  }

  tensor(t: HostTensor): ort.Tensor {
    return new this.ort.Tensor(t.dtype, t.data, t.shape);
  }

  int64(values: readonly (number | bigint)[], shape: number[]): ort.Tensor {
    return new this.ort.Tensor('int64', BigInt64Array.from(values, (v) => BigInt(v)), shape);
  }

  /** pixel_values [tiles, 3, S, S] -> image_features [tiles, tokens_per_tile, hidden]. */
  async vision(pixelValues: ort.Tensor): Promise<ort.Tensor> {
    // A text-only request has no tiles: nothing for the ViT to do.
    if (pixelValues.dims[0] === 0) return this.noImageFeatures().features;
    return (await this.sessions.vision.run({ pixel_values: pixelValues })).image_features!;
  }

  /** Text embeddings with the flagged tiles' features spliced in at <IMG_CONTEXT> positions. */
  async embed(inputIds: ort.Tensor, imageFeatures: ort.Tensor, imageFlags: ort.Tensor): Promise<ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = { input_ids: inputIds, image_features: imageFeatures };
    // A graph built with imageFlags: false (Hugging Face-native checkpoints) splices every tile.
    if (this.sessions.embedding.inputNames.includes('image_flags')) feeds.image_flags = imageFlags;
    return (await this.sessions.embedding.run(feeds)).inputs_embeds!;
  }

  /** Image features for text-only steps (decode): no tiles. */
  noImageFeatures(): { features: ort.Tensor; flags: ort.Tensor } {
    const { tokens_per_tile } = this.pipeline.image;
    return {
      features: new this.ort.Tensor('float32', new Float32Array(0), [0, tokens_per_tile, this.pipeline.llm.hidden_size]),
      flags: new this.ort.Tensor('int64', new BigInt64Array(0), [0]),
    };
  }

  /** [b, s1, C] ++ [b, s2, C] along the sequence (host side). */
  concatSequence(a: ort.Tensor, b: ort.Tensor): ort.Tensor {
    const [batch, s1, c] = a.dims as [number, number, number];
    const s2 = b.dims[1]!;
    const x = a.data as Float32Array;
    const y = b.data as Float32Array;
    const out = new Float32Array(batch * (s1 + s2) * c);
    for (let r = 0; r < batch; r++) {
      out.set(x.subarray(r * s1 * c, (r + 1) * s1 * c), r * (s1 + s2) * c);
      out.set(y.subarray(r * s2 * c, (r + 1) * s2 * c), (r * (s1 + s2) + s1) * c);
    }
    return new this.ort.Tensor('float32', out, [batch, s1 + s2, c]);
  }

  /** An empty cache for `batch` rows. */
  emptyCache(batch: number): KvPair[] {
    const { num_layers, num_kv_heads, head_dim } = this.pipeline.llm;
    // A --target gpu --dtype fp16 decoder keeps its cache in float16.
    const fp16 = this.pipeline.graphs.decoder.inputs.find((i) => i.name.startsWith('past_key_values.'))?.dtype === 'float16';
    const empty = () => (fp16 ? new this.ort.Tensor('float16', new Uint16Array(0), [batch, num_kv_heads, 0, head_dim]) : new this.ort.Tensor('float32', new Float32Array(0), [batch, num_kv_heads, 0, head_dim]));
    return Array.from({ length: num_layers }, () => ({ key: empty(), value: empty() }));
  }

  /** One decoder forward: logits (every position with fullLogits, else each row's last) and the new cache. */
  async decode(embeds: ort.Tensor, attentionMask: ort.Tensor, positionIds: ort.Tensor, past: KvPair[], fullLogits: boolean): Promise<{ logits: ort.Tensor; present: KvPair[] }> {
    const feeds: Record<string, ort.Tensor> = {
      inputs_embeds: embeds,
      attention_mask: attentionMask,
      position_ids: positionIds,
      full_logits: new this.ort.Tensor('int64', BigInt64Array.of(fullLogits ? 1n : 0n), []),
    };
    past.forEach((p, i) => {
      feeds[`past_key_values.${i}.key`] = p.key;
      feeds[`past_key_values.${i}.value`] = p.value;
    });
    const out = await this.sessions.decoder.run(feeds);
    const present = past.map((_, i) => ({ key: out[`present.${i}.key`]!, value: out[`present.${i}.value`]! }));
    return { logits: out.logits!, present };
  }
}

/**
 * Only the decoder's pool threads spin between runs (ORT's default). The vision and embedding
 * graphs run right before a decoder run, and their threads spinning after it would take the
 * cores the decoder needs (2 cores: a decode step measured up to 1.7x slower behind another
 * session's spinning pool); the decoder's own runs follow each other, and spinning keeps its
 * threads ready between its ops.
 */
function sessionOptions(providers: string[], prepackWeights: boolean, spin: boolean): import('onnxruntime-node').InferenceSession.SessionOptions {
  const session = { ...(prepackWeights ? {} : { disable_prepacking: '1' }), ...(spin ? {} : { intra_op: { allow_spinning: '0' } }) };
  return { executionProviders: providers, logSeverityLevel: 3, ...(Object.keys(session).length > 0 ? { extra: { session } } : {}) };
}

async function executionProviders(runtime: typeof import('onnxruntime-node'), ep: ExecutionProvider): Promise<string[]> {
  if (ep === 'cpu') return ['cpu'];
  const available = runtime.listSupportedBackends().map((b) => b.name);
  if (!available.includes(ep)) {
    throw new UserError(`--ep ${ep}: this onnxruntime-node build has no ${ep} execution provider (it has: ${available.join(', ')}); install onnxruntime-node with CUDA support (npm's onnxruntime-node ships CUDA on linux x64 only) or use --ep cpu`);
  }
  return [ep, 'cpu'];
}

/** A host tensor's copy of an ORT tensor. */
export function toHost(t: ort.Tensor): HostTensor {
  return { dtype: t.type as HostTensor['dtype'], shape: [...t.dims], data: t.data as Float32Array | BigInt64Array };
}

/**
 * `vlmc run` on a split artifact: vision, embedding, then one decoder prefill over the whole
 * sequence with full logits and an empty cache; the same `logits` (and `vit_embeds`) as the single
 * graph, which is causal only (an attention_mask among the inputs is not used, as there).
 */
export async function runSplit(dir: string, inputs: Record<string, HostTensor>, o: SessionOptions = {}): Promise<Record<string, HostTensor>> {
  const s = await SplitSession.open(dir, o);
  try {
    const need = (name: string) => {
      const t = inputs[name];
      if (!t) throw new UserError(`missing input '${name}' (a split artifact takes pixel_values, input_ids, image_flags)`);
      return t;
    };
    const ids = need('input_ids');
    const flags = inputs['image_flags'] ?? allTiles(need('pixel_values'));
    const features = await s.vision(s.tensor(need('pixel_values')));
    const embeds = await s.embed(s.tensor(ids), features, s.tensor({ ...flags, shape: [flags.shape[0]!] }));
    const [batch, seq] = ids.shape as [number, number];
    const positions = Array.from({ length: batch * seq }, (_, i) => i % seq);
    const mask = new Array<number>(batch * seq).fill(1);
    const { logits } = await s.decode(embeds, s.int64(mask, [batch, seq]), s.int64(positions, [batch, seq]), s.emptyCache(batch), true);
    return { logits: toHost(logits), vit_embeds: toHost(features) };
  } finally {
    await s.release();
  }
}

/** image_flags of 1 for every tile, for inputs that carry none (graphs that splice every tile). */
export function allTiles(pixelValues: HostTensor): HostTensor {
  const tiles = pixelValues.shape[0] ?? 0;
  return { dtype: 'int64', shape: [tiles], data: new BigInt64Array(tiles).fill(1n) };
}
