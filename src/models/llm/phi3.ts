/**
 * Phi-3 (transformers `modeling_phi3.py`): the Llama architecture with q, k, v packed row-wise into
 * `qkv_proj` ([q heads | k heads | v heads]) and gate, up packed into `gate_up_proj` ([gate | up]).
 * LongRoPE ("su" / "longrope") scaling for the 128k variants.
 */
import { Module, ModuleList, type Tensor } from '../../dsl/module.ts';
import { Embedding, Linear, RMSNorm } from '../../nn/layers.ts';
import { CausalLM, attendProjected, headDimOf, lastDimSlice, preNormBlock, swiglu, type DecoderConfig, type DecoderContext, type DecoderParts } from './decoder.ts';
import { checkDecoderOptions } from '../check-options.ts';

/** Mirrors Phi3Attention. */
export class Phi3Attention extends Module {
  readonly qkv_proj: Linear;
  readonly o_proj: Linear;
  constructor(readonly c: DecoderConfig) {
    super();
    const d = headDimOf(c);
    this.qkv_proj = new Linear(c.hidden, (c.heads + 2 * c.kvHeads) * d, { bias: false });
    this.o_proj = new Linear(c.heads * d, c.hidden, { bias: false });
  }
  forward(x: Tensor, ctx: DecoderContext): Tensor {
    const c = this.c;
    const d = headDimOf(c);
    const qkv = this.qkv_proj.call(x);
    const q = lastDimSlice(qkv, 0, c.heads * d);
    const k = lastDimSlice(qkv, c.heads * d, (c.heads + c.kvHeads) * d);
    const v = lastDimSlice(qkv, (c.heads + c.kvHeads) * d, (c.heads + 2 * c.kvHeads) * d);
    return this.o_proj.call(attendProjected(q, k, v, c, ctx));
  }
}

/** Mirrors Phi3MLP. */
export class Phi3MLP extends Module {
  readonly gate_up_proj: Linear;
  readonly down_proj: Linear;
  constructor(readonly c: DecoderConfig) {
    super();
    this.gate_up_proj = new Linear(c.hidden, 2 * c.intermediate, { bias: false });
    this.down_proj = new Linear(c.intermediate, c.hidden, { bias: false });
  }
  forward(x: Tensor): Tensor {
    const gateUp = this.gate_up_proj.call(x);
    const i = this.c.intermediate;
    return this.down_proj.call(swiglu(lastDimSlice(gateUp, 0, i), lastDimSlice(gateUp, i, 2 * i)));
  }
}

/** Mirrors Phi3DecoderLayer. */
export class Phi3DecoderLayer extends Module {
  readonly self_attn: Phi3Attention;
  readonly mlp: Phi3MLP;
  readonly input_layernorm: RMSNorm;
  readonly post_attention_layernorm: RMSNorm;
  constructor(c: DecoderConfig) {
    super();
    this.self_attn = new Phi3Attention(c);
    this.mlp = new Phi3MLP(c);
    this.input_layernorm = new RMSNorm(c.hidden, c.rmsNormEps);
    this.post_attention_layernorm = new RMSNorm(c.hidden, c.rmsNormEps);
  }
  forward(h: Tensor, ctx: DecoderContext): Tensor {
    return preNormBlock(h, this.input_layernorm, (x) => this.self_attn.call(x, ctx), this.post_attention_layernorm, (x) => this.mlp.call(x));
  }
}

/** Mirrors Phi3Model. */
export class Phi3Model extends Module {
  readonly embed_tokens: Embedding;
  readonly layers: ModuleList<Phi3DecoderLayer>;
  readonly norm: RMSNorm;
  constructor(c: DecoderConfig) {
    super();
    this.embed_tokens = new Embedding(c.vocab, c.hidden, c.padTokenId);
    this.layers = new ModuleList(Array.from({ length: c.layers }, () => new Phi3DecoderLayer(c)));
    this.norm = new RMSNorm(c.hidden, c.rmsNormEps);
  }
}

/** Mirrors Phi3ForCausalLM. */
export class Phi3ForCausalLM extends CausalLM {
  readonly architecture = 'Phi3ForCausalLM';
  readonly model: Phi3Model;
  readonly lm_head: Linear | undefined;
  constructor(readonly config: DecoderConfig) {
    super();
    this.model = new Phi3Model(config);
    this.lm_head = config.tieEmbeddings ? undefined : new Linear(config.hidden, config.vocab, { bias: false });
  }
  /** wrap_llm_lora's targets for Phi-3 (the packed qkv_proj and gate_up_proj as one Linear each). */
  override loraTargets(): readonly string[] {
    return ['self_attn.qkv_proj', 'self_attn.o_proj', 'mlp.gate_up_proj', 'mlp.down_proj'];
  }
  protected parts(): DecoderParts {
    return { embedding: this.model.embed_tokens, layers: this.model.layers, norm: this.model.norm, head: this.lm_head };
  }
}

export function phi3(config: DecoderConfig): Phi3ForCausalLM {
  checkDecoderOptions('phi3', config);
  return new Phi3ForCausalLM(config);
}
