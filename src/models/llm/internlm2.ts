/**
 * InternLM2 / InternLM2.5 (OpenGVLab `modeling_internlm2.py`): the Llama architecture under other
 * names, with q, k and v packed into one `wqkv` whose rows are grouped per kv head as
 * [kv_heads, G + 2, head_dim], G = heads / kv_heads: the group's G query heads, its key, its value.
 */
import { Module, ModuleList, type Tensor } from '../../dsl/module.ts';
import { Embedding, Linear, RMSNorm, reshape } from '../../nn/layers.ts';
import * as op from '../../ops/index.ts';
import { i64 } from '../../dsl/constants.ts';
import { CausalLM, attendProjected, headDimOf, preNormBlock, swiglu, type DecoderConfig, type DecoderContext, type DecoderParts } from './decoder.ts';
import { checkDecoderOptions } from '../check-options.ts';

/** Mirrors InternLM2Attention. */
export class InternLM2Attention extends Module {
  readonly wqkv: Linear;
  readonly wo: Linear;
  constructor(readonly c: DecoderConfig) {
    super();
    const d = headDimOf(c);
    this.wqkv = new Linear(c.hidden, (c.heads + 2 * c.kvHeads) * d, { bias: c.qkvBias ?? false });
    this.wo = new Linear(c.heads * d, c.hidden, { bias: c.oBias ?? false });
  }
  forward(x: Tensor, ctx: DecoderContext): Tensor {
    const c = this.c;
    const d = headDimOf(c);
    const g = c.heads / c.kvHeads;
    const grouped = reshape(this.wqkv.call(x), [0, 0, c.kvHeads, g + 2, d]);
    const rows = (start: number, end: number, width: number) =>
      reshape(op.Slice(grouped, i64([start]), i64([end]), i64([3])), [0, 0, width]);
    const q = rows(0, g, c.heads * d);
    const k = rows(g, g + 1, c.kvHeads * d);
    const v = rows(g + 1, g + 2, c.kvHeads * d);
    return this.wo.call(attendProjected(q, k, v, c, ctx));
  }
}

/** Mirrors InternLM2MLP: w2(silu(w1 x) * w3 x). */
export class InternLM2MLP extends Module {
  readonly w1: Linear;
  readonly w3: Linear;
  readonly w2: Linear;
  constructor(c: DecoderConfig) {
    super();
    this.w1 = new Linear(c.hidden, c.intermediate, { bias: false });
    this.w3 = new Linear(c.hidden, c.intermediate, { bias: false });
    this.w2 = new Linear(c.intermediate, c.hidden, { bias: false });
  }
  forward(x: Tensor): Tensor {
    return this.w2.call(swiglu(this.w1.call(x), this.w3.call(x)));
  }
}

/** Mirrors InternLM2DecoderLayer. */
export class InternLM2DecoderLayer extends Module {
  readonly attention: InternLM2Attention;
  readonly feed_forward: InternLM2MLP;
  readonly attention_norm: RMSNorm;
  readonly ffn_norm: RMSNorm;
  constructor(c: DecoderConfig) {
    super();
    this.attention = new InternLM2Attention(c);
    this.feed_forward = new InternLM2MLP(c);
    this.attention_norm = new RMSNorm(c.hidden, c.rmsNormEps);
    this.ffn_norm = new RMSNorm(c.hidden, c.rmsNormEps);
  }
  forward(h: Tensor, ctx: DecoderContext): Tensor {
    return preNormBlock(h, this.attention_norm, (x) => this.attention.call(x, ctx), this.ffn_norm, (x) => this.feed_forward.call(x));
  }
}

/** Mirrors InternLM2Model. */
export class InternLM2Model extends Module {
  readonly tok_embeddings: Embedding;
  readonly layers: ModuleList<InternLM2DecoderLayer>;
  readonly norm: RMSNorm;
  constructor(c: DecoderConfig) {
    super();
    this.tok_embeddings = new Embedding(c.vocab, c.hidden, c.padTokenId);
    this.layers = new ModuleList(Array.from({ length: c.layers }, () => new InternLM2DecoderLayer(c)));
    this.norm = new RMSNorm(c.hidden, c.rmsNormEps);
  }
}

/** Mirrors InternLM2ForCausalLM. */
export class InternLM2ForCausalLM extends CausalLM {
  readonly architecture = 'InternLM2ForCausalLM';
  readonly model: InternLM2Model;
  readonly output: Linear | undefined;
  constructor(readonly config: DecoderConfig) {
    super();
    this.model = new InternLM2Model(config);
    this.output = config.tieEmbeddings ? undefined : new Linear(config.hidden, config.vocab, { bias: false });
  }
  /** wrap_llm_lora's targets for InternLM2 (the packed wqkv as one Linear). */
  override loraTargets(): readonly string[] {
    return ['attention.wqkv', 'attention.wo', 'feed_forward.w1', 'feed_forward.w2', 'feed_forward.w3'];
  }
  protected parts(): DecoderParts {
    return { embedding: this.model.tok_embeddings, layers: this.model.layers, norm: this.model.norm, head: this.output };
  }
}

export function internlm2(config: DecoderConfig): InternLM2ForCausalLM {
  checkDecoderOptions('internlm2', config);
  return new InternLM2ForCausalLM(config);
}
