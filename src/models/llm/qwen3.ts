/**
 * Qwen3 (transformers `modeling_qwen3.py`): the Llama layout plus a per-head RMSNorm on queries and
 * keys (`q_norm`, `k_norm`, width head_dim) before rotary; head_dim comes from the config (Qwen3Config
 * defaults it to 128, not hidden / heads); q/k/v/o bias only with attention_bias. InternVL3.5 uses it.
 */
import { checkDecoderOptions } from '../check-options.ts';
import { Module, ModuleList, type Tensor } from '../../dsl/module.ts';
import { Embedding, Linear, RMSNorm, reshape } from '../../nn/layers.ts';
import { LlamaMLP } from './llama.ts';
import { CausalLM, attendProjected, headDimOf, preNormBlock, type DecoderConfig, type DecoderContext, type DecoderParts } from './decoder.ts';

/** Qwen3Config's head_dim when a config.json leaves it out. */
export const QWEN3_DEFAULT_HEAD_DIM = 128;

/** Mirrors Qwen3Attention. */
export class Qwen3Attention extends Module {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly o_proj: Linear;
  readonly q_norm: RMSNorm;
  readonly k_norm: RMSNorm;
  constructor(readonly c: DecoderConfig) {
    super();
    const d = headDimOf(c);
    const bias = c.qkvBias ?? false;
    this.q_proj = new Linear(c.hidden, c.heads * d, { bias });
    this.k_proj = new Linear(c.hidden, c.kvHeads * d, { bias });
    this.v_proj = new Linear(c.hidden, c.kvHeads * d, { bias });
    this.o_proj = new Linear(c.heads * d, c.hidden, { bias: c.oBias ?? false });
    this.q_norm = new RMSNorm(d, c.rmsNormEps);
    this.k_norm = new RMSNorm(d, c.rmsNormEps);
  }
  forward(x: Tensor, ctx: DecoderContext): Tensor {
    const c = this.c;
    const q = this.perHeadNorm(this.q_norm, this.q_proj.call(x), c.heads);
    const k = this.perHeadNorm(this.k_norm, this.k_proj.call(x), c.kvHeads);
    return this.o_proj.call(attendProjected(q, k, this.v_proj.call(x), c, ctx));
  }
  /** RMSNorm over each head's features: [b, s, n*d] -> [b, s, n, d] -> norm -> [b, s, n*d]. */
  private perHeadNorm(norm: RMSNorm, t: Tensor, heads: number): Tensor {
    const d = headDimOf(this.c);
    return reshape(norm.call(reshape(t, [0, 0, heads, d])), [0, 0, heads * d]);
  }
}

/** Mirrors Qwen3DecoderLayer. */
export class Qwen3DecoderLayer extends Module {
  readonly self_attn: Qwen3Attention;
  readonly mlp: LlamaMLP;
  readonly input_layernorm: RMSNorm;
  readonly post_attention_layernorm: RMSNorm;
  constructor(c: DecoderConfig) {
    super();
    this.self_attn = new Qwen3Attention(c);
    this.mlp = new LlamaMLP(c);
    this.input_layernorm = new RMSNorm(c.hidden, c.rmsNormEps);
    this.post_attention_layernorm = new RMSNorm(c.hidden, c.rmsNormEps);
  }
  forward(h: Tensor, ctx: DecoderContext): Tensor {
    return preNormBlock(h, this.input_layernorm, (x) => this.self_attn.call(x, ctx), this.post_attention_layernorm, (x) => this.mlp.call(x));
  }
}

/** Mirrors Qwen3Model. */
export class Qwen3Model extends Module {
  readonly embed_tokens: Embedding;
  readonly layers: ModuleList<Qwen3DecoderLayer>;
  readonly norm: RMSNorm;
  constructor(c: DecoderConfig) {
    super();
    this.embed_tokens = new Embedding(c.vocab, c.hidden, c.padTokenId);
    this.layers = new ModuleList(Array.from({ length: c.layers }, () => new Qwen3DecoderLayer(c)));
    this.norm = new RMSNorm(c.hidden, c.rmsNormEps);
  }
}

/** Mirrors Qwen3ForCausalLM. */
export class Qwen3ForCausalLM extends CausalLM {
  readonly architecture = 'Qwen3ForCausalLM';
  readonly model: Qwen3Model;
  readonly lm_head: Linear | undefined;
  constructor(readonly config: DecoderConfig) {
    super();
    this.model = new Qwen3Model(config);
    this.lm_head = config.tieEmbeddings ? undefined : new Linear(config.hidden, config.vocab, { bias: false });
  }
  protected parts(): DecoderParts {
    return { embedding: this.model.embed_tokens, layers: this.model.layers, norm: this.model.norm, head: this.lm_head };
  }
}

export function qwen3(config: DecoderConfig): Qwen3ForCausalLM {
  checkDecoderOptions('qwen3', config);
  return new Qwen3ForCausalLM(config);
}
