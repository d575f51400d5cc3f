/**
 * What every decoder-only LLM family shares: its config, the per-forward context (rotary tables,
 * causal mask), the attention and SwiGLU cores, and the causal-LM interface the composite uses.
 * A family file only names its modules (they are its checkpoint keys) and how its projections pack.
 */
import { Module, type ModuleList, type Tensor } from '../../dsl/module.ts';
import * as op from '../../ops/index.ts';
import { i64 } from '../../dsl/constants.ts';
import { reshape, silu, type Embedding, type Linear, type RMSNorm } from '../../nn/layers.ts';
import { applyRotary, rotaryTables, type RopeScaling, type RotaryTables } from '../../nn/rotary.ts';
import { causalGqa, causalMask } from '../../nn/attention.ts';

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
}

export const headDimOf = (c: DecoderConfig): number => c.headDim ?? c.hidden / c.heads;

/** Rotating features per head, as transformers computes it: int(head_dim * partial_rotary_factor). */
export const rotaryDimOf = (c: DecoderConfig): number => Math.floor(headDimOf(c) * (c.partialRotaryFactor ?? 1));

export interface DecoderContext {
  rope: RotaryTables;
  mask: Tensor;
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

/** A decoder-only LLM as the composite sees it: embed ids, then logits from embeddings. */
export abstract class CausalLM extends Module {
  abstract readonly config: DecoderConfig;
  /** The Hugging Face class this mirrors (`Qwen2ForCausalLM`). */
  abstract readonly architecture: string;
  protected abstract parts(): DecoderParts;

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
    for (const layer of layers.items) h = layer.call(h, ctx);
    return logitsOf(h, norm, head, embedding);
  }
}

/** Rotary tables and causal mask for the sequence length of `embeds` [b, s, C]. */
export function decoderContext(embeds: Tensor, c: DecoderConfig): DecoderContext {
  const seq = op.Squeeze(op.Shape(embeds, { start: 1, end: 2 }), i64([0]));
  const rope = rotaryTables(seq, { theta: c.ropeTheta, headDim: rotaryDimOf(c), maxPositions: c.maxPositions, scaling: c.ropeScaling });
  return { rope, mask: causalMask(seq) };
}

/** Projected q [b,s,H*d], k, v [b,s,KV*d] -> rotary -> causal GQA -> [b,s,H*d]. */
export function attendProjected(q: Tensor, k: Tensor, v: Tensor, c: DecoderConfig, ctx: DecoderContext): Tensor {
  const d = headDimOf(c);
  const r = rotaryDimOf(c);
  const qh = applyRotary(reshape(q, [0, 0, c.heads, d]), ctx.rope, r, d);
  const kh = applyRotary(reshape(k, [0, 0, c.kvHeads, d]), ctx.rope, r, d);
  const vh = reshape(v, [0, 0, c.kvHeads, d]);
  return causalGqa(qh, kh, vh, c.heads, c.kvHeads, d, ctx.mask);
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
