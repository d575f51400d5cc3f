/**
 * What every decoder-only LLM family shares: its config, the per-forward context (rotary tables,
 * causal mask), the attention and SwiGLU cores, and the causal-LM interface the composite uses.
 * A family file only names its modules (they are its checkpoint keys) and how its projections pack.
 */
import { Module, type ModuleList, type Tensor } from '../../dsl/module.ts';
import * as op from '../../ops/index.ts';
import { i64, i64Scalar } from '../../dsl/constants.ts';
import { reshape, silu, type Embedding, type Linear, type RMSNorm } from '../../nn/layers.ts';
import { applyRotary, rotaryTables, rotaryTablesAt, type RopeScaling, type RotaryTables } from '../../nn/rotary.ts';
import { KvCache, cachedCausalMask, cachedSlidingMask, causalGqa, causalMask, slidingCausalMask } from '../../nn/attention.ts';
import type { LayerType } from './sliding-window.ts';

export interface DecoderConfig {
  hidden: number;
  heads: number;
  kvHeads: number;
  /** Defaults to hidden / heads. */
  headDim?: number;
  layers: number;
  intermediate: number;
  vocab: number;
  rmsNormEps: number;
  ropeTheta: number;
  maxPositions: number;
  ropeScaling?: RopeScaling | undefined;
  tieEmbeddings: boolean;
  /** Bias on the q/k/v projections (Qwen2: true). */
  qkvBias?: boolean;
  /** Bias on the output projection and the MLP (Llama's attention_bias / mlp_bias). */
  oBias?: boolean;
  mlpBias?: boolean;
  /** Fraction of each head's features that rotary embeddings rotate (partial rotary); default 1. */
  partialRotaryFactor?: number;
  /** Embedding row that gets no gradient (InternLM2, Phi-3). */
  padTokenId?: number | undefined;
  /**
   * Sliding-window attention: on a sliding layer query i attends to the `slidingWindow` keys
   * i - W < j <= i (itself included), as transformers' sliding_window_overlay. Undefined: none.
   */
  slidingWindow?: number | undefined;
  /** Which layers slide (transformers' layer_types); undefined with a window: every layer. */
  layerTypes?: LayerType[] | undefined;
  /** Sparse mixture-of-experts MLPs (Qwen3-MoE, GPT-OSS); undefined: every MLP is dense. */
  moe?: MoeConfig | undefined;
}

/** transformers' Qwen3MoeConfig / GptOssConfig expert fields. */
export interface MoeConfig {
  /** num_experts (num_local_experts). */
  experts: number;
  /** num_experts_per_tok (GPT-OSS: experts_per_token). */
  topK: number;
  /** moe_intermediate_size (GPT-OSS: intermediate_size): each expert's width. */
  intermediate: number;
  /** norm_topk_prob: the kept probabilities are divided by their sum (Qwen3-MoE). */
  normTopKProb?: boolean;
  /** decoder_sparse_step: layer i is sparse when (i + 1) % step == 0 (default 1). */
  decoderSparseStep?: number;
  /** mlp_only_layers: layers with a dense MLP of `intermediate` (the decoder's) width. */
  mlpOnlyLayers?: number[];
  /** GPT-OSS's clamped SwiGLU: swiglu_limit (gate clamped above, up to ±limit) and swiglu_alpha. */
  swigluLimit?: number;
  swigluAlpha?: number;
}

/** Whether layer `i` has a sparse MoE block (transformers' Qwen3MoeDecoderLayer condition). */
export const isSparseLayer = (c: DecoderConfig, i: number): boolean => {
  const m = c.moe;
  return m !== undefined && m.experts > 0 && !(m.mlpOnlyLayers ?? []).includes(i) && (i + 1) % (m.decoderSparseStep ?? 1) === 0;
};

export const headDimOf = (c: DecoderConfig): number => c.headDim ?? c.hidden / c.heads;

/** Whether layer `i` attends through the sliding window. */
export const isSlidingLayer = (c: DecoderConfig, i: number): boolean =>
  c.slidingWindow !== undefined && (c.layerTypes === undefined || c.layerTypes[i] === 'sliding_attention');

/** Rotating features per head, as transformers computes it: int(head_dim * partial_rotary_factor). */
export const rotaryDimOf = (c: DecoderConfig): number => Math.floor(headDimOf(c) * (c.partialRotaryFactor ?? 1));

export interface DecoderContext {
  rope: RotaryTables;
  /** The mask of this layer's attention (true where a key is hidden). */
  mask: Tensor;
  /** The sliding-window mask, built once per forward when some layer slides; layerContext picks. */
  slidingMask?: Tensor;
  /** Present in a forward with a KV cache (the split artifact's decoder). */
  cache?: KvCache;
}

/** The inputs of a decoder forward with a KV cache (names as in onnxruntime-genai). */
export interface CachedDecoderInputs {
  /** [b, seq, hidden] */
  embeds: Tensor;
  /** [b, past + seq], 1 on attended positions (0 on padding). */
  attentionMask: Tensor;
  /** [b, seq] */
  positionIds: Tensor;
  /** Per layer: [b, kv_heads, past, head_dim]. */
  past: { key: Tensor; value: Tensor }[];
  /** int64 scalar: nonzero gives logits at every position, 0 only at each row's last attended one. */
  fullLogits: Tensor;
}

export interface CachedDecoderOutputs {
  /** [b, seq, vocab] with full logits, else [b, 1, vocab]. */
  logits: Tensor;
  present: { key: Tensor; value: Tensor }[];
}

/** A decoder layer of any family: a module called with the hidden state and the context. */
export interface DecoderLayer extends Module {
  forward(h: Tensor, ctx: DecoderContext): Tensor;
}

/** The pieces of a family's model that the shared forward needs. */
export interface DecoderParts {
  embedding: Embedding;
  layers: ModuleList<DecoderLayer>;
  norm: RMSNorm;
  /** Separate output projection, or undefined when tied to the embedding. */
  head: Linear | undefined;
}

/** wrap_llm_lora's targets for Qwen2 / Llama. */
export const LLAMA_LORA_TARGETS: readonly string[] = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.down_proj', 'mlp.up_proj'];

/** A decoder-only LLM as the composite sees it: embed ids, then logits from embeddings. */
export abstract class CausalLM extends Module {
  abstract readonly config: DecoderConfig;
  /** The Hugging Face class this mirrors (`Qwen2ForCausalLM`). */
  abstract readonly architecture: string;
  protected abstract parts(): DecoderParts;

  /**
   * The modules LoRA wraps (PEFT target_modules), as InternVL's `wrap_llm_lora` lists them for
   * Qwen2 / Llama; families that name their projections otherwise override it. Families the
   * official code lists nothing for (Qwen3, ...) take this list: vlmc's choice (docs/training.md).
   */
  loraTargets(): readonly string[] {
    return LLAMA_LORA_TARGETS;
  }

  embed(ids: Tensor): Tensor {
    return this.parts().embedding.call(ids);
  }

  /** The module that makes the logits: the separate head, or the embedding when tied (freeze rules' `llm.head`). */
  outputHead(): Module {
    const { head, embedding } = this.parts();
    return head ?? embedding;
  }

  /** Logits [b, s, vocab] from input embeddings [b, s, hidden]. */
  forward(embeds: Tensor): Tensor {
    const { layers, norm, head, embedding } = this.parts();
    const ctx = decoderContext(embeds, this.config);
    let h = embeds;
    layers.items.forEach((layer, i) => (h = layer.call(h, layerContext(ctx, this.config, i))));
    return logitsOf(h, norm, head, embedding);
  }

  /**
   * One forward with a KV cache: the same layers as `forward`, with rotary at `positionIds`, the
   * past keys/values prepended in every layer's attention and the mask over past + seq.
   */
  forwardCached(inputs: CachedDecoderInputs): CachedDecoderOutputs {
    const { layers, norm, head, embedding } = this.parts();
    const ctx = cachedDecoderContext(inputs, this.config);
    let h = inputs.embeds;
    layers.items.forEach((layer, i) => (h = layer.call(h, layerContext(ctx, this.config, i))));
    const selected = selectLogitPositions(h, inputs.attentionMask, inputs.fullLogits);
    return { logits: logitsOf(selected, norm, head, embedding), present: ctx.cache!.present };
  }
}

/** Rotary at the given positions, the mask over past + seq, and the cache to extend. */
export function cachedDecoderContext(inputs: CachedDecoderInputs, c: DecoderConfig): DecoderContext {
  const seq = op.Squeeze(op.Shape(inputs.embeds, { start: 1, end: 2 }), i64([0]));
  const length = op.Add(op.ReduceMax(inputs.positionIds, { keepdims: 0 }), i64Scalar(1));
  const rope = rotaryTablesAt(inputs.positionIds, length, { theta: c.ropeTheta, headDim: rotaryDimOf(c), maxPositions: c.maxPositions, scaling: c.ropeScaling });
  const mask = cachedCausalMask(seq, inputs.attentionMask);
  const window = c.slidingWindow;
  return { rope, mask, cache: new KvCache(inputs.past), ...(window !== undefined ? { slidingMask: cachedSlidingMask(seq, inputs.attentionMask, mask, window) } : {}) };
}

/** The context layer `i` sees: the sliding-window mask on a sliding layer, the causal one otherwise. */
export function layerContext(ctx: DecoderContext, c: DecoderConfig, i: number): DecoderContext {
  return isSlidingLayer(c, i) ? { ...ctx, mask: ctx.slidingMask! } : ctx;
}

/**
 * h [b, seq, C] -> every position (full logits), or each row's last attended position in this
 * forward [b, 1, C] (the last 1 of its attention mask, moved past the cached positions), so a
 * prefill projects onto the vocabulary once per row.
 */
export function selectLogitPositions(h: Tensor, attentionMask: Tensor, fullLogits: Tensor): Tensor {
  const hidden = h.shape[2] as number;
  const scalar = (t: Tensor) => op.Squeeze(t, i64([0]));
  const seq = scalar(op.Shape(h, { start: 1, end: 2 }));
  const batch = scalar(op.Shape(h, { start: 0, end: 1 }));
  const total = scalar(op.Shape(attentionMask, { start: 1, end: 2 }));
  const keyIndex = op.Range(i64Scalar(0), total, i64Scalar(1));
  const lastAttended = op.ReduceMax(op.Mul(attentionMask, keyIndex), { axes: [1], keepdims: 1 });
  const inChunk = op.Min([op.Max([op.Sub(lastAttended, op.Sub(total, seq)), i64Scalar(0)]), op.Sub(seq, i64Scalar(1))]);
  const full = op.Not(op.Equal(fullLogits, i64Scalar(0)));
  // Positions [b, k]: 0..seq-1 for full logits (k = seq), else the row's last (k = 1).
  const count = op.Where(full, seq, i64Scalar(1));
  const offset = op.Where(full, i64Scalar(0), inChunk);
  const positions = op.Add(op.Unsqueeze(op.Range(i64Scalar(0), count, i64Scalar(1)), i64([0])), offset);
  const rowStart = op.Mul(op.Unsqueeze(op.Range(i64Scalar(0), batch, i64Scalar(1)), i64([1])), seq);
  return op.Gather(reshape(h, [-1, hidden]), op.Add(positions, rowStart), { axis: 0 });
}

/** Rotary tables and causal mask for the sequence length of `embeds` [b, s, C]. */
export function decoderContext(embeds: Tensor, c: DecoderConfig): DecoderContext {
  const seq = op.Squeeze(op.Shape(embeds, { start: 1, end: 2 }), i64([0]));
  const rope = rotaryTables(seq, { theta: c.ropeTheta, headDim: rotaryDimOf(c), maxPositions: c.maxPositions, scaling: c.ropeScaling });
  const mask = causalMask(seq);
  const window = c.slidingWindow;
  return { rope, mask, ...(window !== undefined ? { slidingMask: slidingCausalMask(seq, mask, window) } : {}) };
}

/** Projected q [b,s,H*d], k, v [b,s,KV*d] -> rotary -> causal GQA (with per-head sink logits [H], GPT-OSS) -> [b,s,H*d]. */
export function attendProjected(q: Tensor, k: Tensor, v: Tensor, c: DecoderConfig, ctx: DecoderContext, sinks?: Tensor): Tensor {
  const d = headDimOf(c);
  const r = rotaryDimOf(c);
  const qh = applyRotary(reshape(q, [0, 0, c.heads, d]), ctx.rope, r, d);
  const kh = applyRotary(reshape(k, [0, 0, c.kvHeads, d]), ctx.rope, r, d);
  const vh = reshape(v, [0, 0, c.kvHeads, d]);
  return causalGqa(qh, kh, vh, c.heads, c.kvHeads, d, ctx.mask, ctx.cache, sinks);
}

/** SwiGLU: silu(gate) * up. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  return op.Mul(silu(gate), up);
}

/** Columns [start, end) of the last dim (unpacking fused projections). */
export function lastDimSlice(x: Tensor, start: number, end: number): Tensor {
  return op.Slice(x, i64([start]), i64([end]), i64([-1]));
}

/** Pre-norm residual block: h + attn(norm1(h)), then + mlp(norm2(.)). */
export function preNormBlock(
  h: Tensor,
  norm1: RMSNorm,
  attn: (x: Tensor) => Tensor,
  norm2: RMSNorm,
  mlp: (x: Tensor) => Tensor,
): Tensor {
  const a = op.Add(h, attn(norm1.call(h)));
  return op.Add(a, mlp(norm2.call(a)));
}

/** Final norm then logits, through a separate head or the tied embedding matrix. */
export function logitsOf(h: Tensor, norm: RMSNorm, head: Linear | undefined, embedding: Embedding): Tensor {
  const normed = norm.call(h);
  return head ? head.call(normed) : embedding.attend(normed);
}
