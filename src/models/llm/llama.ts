/**
 * Llama (transformers `modeling_llama.py`) and the families that share its module layout: Qwen2 /
 * Qwen2.5 (q/k/v bias) and Nous-Hermes-2-Yi. RMSNorm, rotary (incl. Llama-3.1 scaling), causal GQA,
 * SwiGLU; tied or separate lm_head.
 */
import { Module, ModuleList, type Tensor } from '../../dsl/module.ts';
import { Embedding, Linear, RMSNorm } from '../../nn/layers.ts';
import { CausalLM, attendProjected, headDimOf, preNormBlock, swiglu, type DecoderConfig, type DecoderContext, type DecoderLayer, type DecoderParts } from './decoder.ts';
import { checkDecoderOptions } from '../check-options.ts';

/** Mirrors LlamaAttention / Qwen2Attention. */
export class LlamaAttention extends Module {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly o_proj: Linear;
  constructor(readonly c: DecoderConfig) {
    super();
    const d = headDimOf(c);
    const bias = c.qkvBias ?? false;
    this.q_proj = new Linear(c.hidden, c.heads * d, { bias });
    this.k_proj = new Linear(c.hidden, c.kvHeads * d, { bias });
    this.v_proj = new Linear(c.hidden, c.kvHeads * d, { bias });
    this.o_proj = new Linear(c.heads * d, c.hidden, { bias: c.oBias ?? false });
  }
  forward(x: Tensor, ctx: DecoderContext): Tensor {
    const out = attendProjected(this.q_proj.call(x), this.k_proj.call(x), this.v_proj.call(x), this.c, ctx);
    return this.o_proj.call(out);
  }
}

/** Mirrors LlamaMLP. */
export class LlamaMLP extends Module {
  readonly gate_proj: Linear;
  readonly up_proj: Linear;
  readonly down_proj: Linear;
  constructor(c: DecoderConfig) {
    super();
    const bias = c.mlpBias ?? false;
    this.gate_proj = new Linear(c.hidden, c.intermediate, { bias });
    this.up_proj = new Linear(c.hidden, c.intermediate, { bias });
    this.down_proj = new Linear(c.intermediate, c.hidden, { bias });
  }
  forward(x: Tensor): Tensor {
    return this.down_proj.call(swiglu(this.gate_proj.call(x), this.up_proj.call(x)));
  }
}

/**
 * Mirrors LlamaDecoderLayer; `attention` and `mlp` let a family that differs only there reuse it
 * (Qwen3's q/k norms, Qwen3-MoE's sparse block, GPT-OSS's sinks and experts).
 */
/** A layer's MLP: dense, or a family's sparse block; hidden states in, hidden states out. */
export type DecoderMLP = Module & { forward(x: Tensor): Tensor };

export class LlamaDecoderLayer extends Module {
  readonly self_attn: LlamaAttention;
  readonly mlp: DecoderMLP;
  readonly input_layernorm: RMSNorm;
  readonly post_attention_layernorm: RMSNorm;
  constructor(c: DecoderConfig, attention: LlamaAttention = new LlamaAttention(c), mlp: DecoderMLP = new LlamaMLP(c)) {
    super();
    this.self_attn = attention;
    this.mlp = mlp;
    this.input_layernorm = new RMSNorm(c.hidden, c.rmsNormEps);
    this.post_attention_layernorm = new RMSNorm(c.hidden, c.rmsNormEps);
  }
  forward(h: Tensor, ctx: DecoderContext): Tensor {
    return preNormBlock(h, this.input_layernorm, (x) => this.self_attn.call(x, ctx), this.post_attention_layernorm, (x) => this.mlp.call(x));
  }
}

/** Builds decoder layer `index` of a Llama-layout family. */
export type LlamaLayerFactory = (c: DecoderConfig, index: number) => DecoderLayer;

/** Mirrors LlamaModel. */
export class LlamaModel extends Module {
  readonly embed_tokens: Embedding;
  readonly layers: ModuleList<DecoderLayer>;
  readonly norm: RMSNorm;
  constructor(c: DecoderConfig, layer: LlamaLayerFactory = (cfg) => new LlamaDecoderLayer(cfg)) {
    super();
    this.embed_tokens = new Embedding(c.vocab, c.hidden, c.padTokenId);
    this.layers = new ModuleList(Array.from({ length: c.layers }, (_, i) => layer(c, i)));
    this.norm = new RMSNorm(c.hidden, c.rmsNormEps);
  }
}

/** Mirrors LlamaForCausalLM (and Qwen2ForCausalLM). */
export class LlamaForCausalLM extends CausalLM {
  readonly model: LlamaModel;
  readonly lm_head: Linear | undefined;
  constructor(
    readonly config: DecoderConfig,
    readonly architecture = 'LlamaForCausalLM',
    layer?: LlamaLayerFactory,
  ) {
    super();
    this.model = new LlamaModel(config, layer);
    this.lm_head = config.tieEmbeddings ? undefined : new Linear(config.hidden, config.vocab, { bias: false });
  }
  protected parts(): DecoderParts {
    return { embedding: this.model.embed_tokens, layers: this.model.layers, norm: this.model.norm, head: this.lm_head };
  }
}

export function llama(config: DecoderConfig): LlamaForCausalLM {
  checkDecoderOptions('llama', config);
  return new LlamaForCausalLM(config, 'LlamaForCausalLM');
}

/** Qwen2 / Qwen2.5: the Llama layout with q/k/v bias. */
export function qwen2(config: Omit<DecoderConfig, 'qkvBias'>): LlamaForCausalLM {
  checkDecoderOptions('qwen2', config as DecoderConfig);
  return new LlamaForCausalLM({ ...config, qkvBias: true }, 'Qwen2ForCausalLM');
}
