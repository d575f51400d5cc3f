/**
 * A split artifact opened in onnxruntime-node: one session per graph, and the three steps of a
 * forward (vision, embedding, decoder with a KV cache) on host tensors.
 */
import type ort from 'onnxruntime-node';
import { UserError } from '../errors.ts';
import { openSplitSessions, toHost, type HostTensor, type SessionOptions } from '../runtime/session.ts';
import { DeviceTensors, runOnDevice } from '../runtime/providers.ts';
import { adapterFeeds, adapterInputs } from '../runtime/adapters.ts';
import { readPipeline, SPLIT_ENTRIES, type Pipeline, type SplitEntry } from './pipeline.ts';
import { checkSplitFiles } from './split-files.ts';

/** The cache of one layer: [batch, kv_heads, past, head_dim]. */
export type KvPair = { key: ort.Tensor; value: ort.Tensor };

export class SplitSession {
  private constructor(
    readonly dir: string,
    readonly pipeline: Pipeline,
    private readonly ort: typeof import('onnxruntime-node'),
    private readonly sessions: Record<SplitEntry, ort.InferenceSession>,
    /** Each graph's LoRA adapter feeds (none unless built with --lora-inputs). */
    private readonly adapters: Record<SplitEntry, Record<string, ort.Tensor>>,
    /** The KV cache when it lives on the device (webgpu). */
    private readonly onDevice = new DeviceTensors(),
  ) {}

  static async open(dir: string, o: SessionOptions = {}): Promise<SplitSession> {
    const pipeline = readPipeline(dir);
    checkSplitFiles(dir, pipeline);
    const files = Object.fromEntries(SPLIT_ENTRIES.map((e) => [e, pipeline.graphs[e].file])) as Record<SplitEntry, string>;
    // The cache a decoder step returns is the next step's input: it need not visit the host.
    const cache = pipeline.graphs.decoder.outputs.map((v) => v.name).filter((n) => n.startsWith('present.'));
    // The adapters first: a folder that does not fit is refused before any session is made.
    const feeds = await adapterFeeds(SPLIT_ENTRIES.flatMap((e) => adapterInputs(pipeline.graphs[e].inputs)), o.adapters ?? [], dir);
    const { runtime, sessions } = await openSplitSessions(dir, files, o, { decoder: cache }, 'decoder');
    const adapters = Object.fromEntries(SPLIT_ENTRIES.map((e) => [e, Object.fromEntries(adapterInputs(pipeline.graphs[e].inputs).map((i) => [i.name, new runtime.Tensor('float32', feeds[i.name]!.data as Float32Array, feeds[i.name]!.shape)]))])) as Record<SplitEntry, Record<string, ort.Tensor>>;
    return new SplitSession(dir, pipeline, runtime, sessions, adapters);
  }

  async release(): Promise<void> {
    this.onDevice.releaseAll();
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
    return (await runOnDevice(this.sessions.vision, { pixel_values: pixelValues, ...this.adapters.vision })).image_features!;
  }

  /** Text embeddings with the flagged tiles' features spliced in at <IMG_CONTEXT> positions. */
  async embed(inputIds: ort.Tensor, imageFeatures: ort.Tensor, imageFlags: ort.Tensor): Promise<ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = { input_ids: inputIds, image_features: imageFeatures, ...this.adapters.embedding };
    // A graph built with imageFlags: false (Hugging Face-native checkpoints) splices every tile.
    if (this.sessions.embedding.inputNames.includes('image_flags')) feeds.image_flags = imageFlags;
    return (await runOnDevice(this.sessions.embedding, feeds)).inputs_embeds!;
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

  /**
   * One decoder forward: logits (every position with fullLogits, else each row's last) and the new
   * cache. A cache on the device (webgpu) is released once consumed: pass each cache to one step.
   */
  async decode(embeds: ort.Tensor, attentionMask: ort.Tensor, positionIds: ort.Tensor, past: KvPair[], fullLogits: boolean): Promise<{ logits: ort.Tensor; present: KvPair[] }> {
    const feeds: Record<string, ort.Tensor> = {
      inputs_embeds: embeds,
      attention_mask: attentionMask,
      position_ids: positionIds,
      full_logits: new this.ort.Tensor('int64', BigInt64Array.of(fullLogits ? 1n : 0n), []),
      ...this.adapters.decoder,
    };
    past.forEach((p, i) => {
      feeds[`past_key_values.${i}.key`] = p.key;
      feeds[`past_key_values.${i}.value`] = p.value;
    });
    const out = await runOnDevice(this.sessions.decoder, feeds);
    const present = past.map((_, i) => ({ key: out[`present.${i}.key`]!, value: out[`present.${i}.value`]! }));
    this.onDevice.consumed(past.flatMap((p) => [p.key, p.value]));
    this.onDevice.keep(present.flatMap((p) => [p.key, p.value]));
    return { logits: out.logits!, present };
  }
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
