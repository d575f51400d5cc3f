/**
 * GPT-OSS (transformers `modeling_gpt_oss.py`; InternVL3.5-20B-A4B): Llama-style attention with
 * biases on q/k/v/o and learned attention sinks (one logit per head that joins the softmax and is
 * dropped), sliding and full layers alternating (`layer_types`), YaRN RoPE, and on every layer a
 * sparse MoE: a biased router, top-k logits softmaxed among themselves, and experts with fused,
 * biased weights — `gate_up_proj` [E, H, 2I] (gate the even columns, up the odd ones; x · W, not
 * W^T), `down_proj` [E, I, H] — and the clamped SwiGLU (up + 1) · g · σ(α g), g = min(gate, limit),
 * up clamped to ±limit. Both checkpoint layouts store these tensors as they are here, or (quant_method
 * mxfp4) as `*_blocks` / `*_scales` pairs that are dequantised while binding (src/quant/mxfp4.ts).
 */
import { checkDecoderOptions } from '../check-options.ts';
import { Module, type Tensor } from '../../dsl/module.ts';
import type { Param } from '../../ir/graph.ts';
import { Linear, reshape } from '../../nn/layers.ts';
import * as op from '../../ops/index.ts';
import { f32Scalar, i64 } from '../../dsl/constants.ts';
import { UserError } from '../../errors.ts';
import { LlamaAttention, LlamaDecoderLayer, LlamaForCausalLM } from './llama.ts';
import { attendProjected, type DecoderConfig, type DecoderContext, type MoeConfig } from './decoder.ts';
import { combineExperts, expertLinear, gatherExperts, overTokens, sparseMoe, topKSoftmaxWeights, usedExperts, type StackedExperts } from './moe.ts';
import { LIMITS, optInt, optNum, type HFConfig } from '../config-fields.ts';

/** GptOssConfig's defaults for what the expert activation reads. */
export const GPT_OSS_SWIGLU = { limit: 7.0, alpha: 1.702 };

/** Mirrors GptOssAttention: LlamaAttention (biases per attention_bias) plus `sinks` [heads]. */
export class GptOssAttention extends LlamaAttention {
  readonly sinks: Param;
  constructor(c: DecoderConfig) {
    super(c);
    this.sinks = this.param([c.heads], { kind: 'normal', std: 0.02 });
  }
  override forward(x: Tensor, ctx: DecoderContext): Tensor {
    return this.o_proj.call(attendProjected(this.q_proj.call(x), this.k_proj.call(x), this.v_proj.call(x), this.c, ctx, this.sinks.value));
  }
}

/** Mirrors GptOssTopKRouter: logits x W^T + b over the experts. */
export class GptOssTopKRouter extends Linear {}

/** Mirrors GptOssExperts: the fused, biased expert weights. */
export class GptOssExperts extends Module {
  readonly gate_up_proj: Param;
  readonly gate_up_proj_bias: Param;
  readonly down_proj: Param;
  readonly down_proj_bias: Param;
  constructor(hidden: number, readonly m: MoeConfig) {
    super();
    const { experts: E, intermediate: I } = m;
    this.gate_up_proj = this.param([E, hidden, 2 * I], { kind: 'normal', std: 0.02 });
    this.gate_up_proj_bias = this.param([E, 2 * I], { kind: 'zeros' });
    this.down_proj = this.param([E, I, hidden], { kind: 'normal', std: 0.02 });
    this.down_proj_bias = this.param([E, hidden], { kind: 'zeros' });
  }
  /** The fused tensors as the MoE kernel's composite takes them. */
  stacked(): StackedExperts {
    return { gateUp: this.gate_up_proj.value, down: this.down_proj.value, bias: { gateUp: this.gate_up_proj_bias.value, down: this.down_proj_bias.value } };
  }
  /** tokens [T, H] through the experts `used` [n] -> [n, T, H]. */
  forward(tokens: Tensor, used: Tensor): Tensor {
    const I = this.m.intermediate;
    const { limit, alpha } = swigluOf(this.m);
    const gateUp = expertLinear(tokens, gatherExperts(this.gate_up_proj.value, used), gatherExperts(this.gate_up_proj_bias.value, used));
    // Interleaved columns: [.., 2I] -> [.., I, 2]; gate = [..., 0], up = [..., 1].
    const pairs = reshape(gateUp, [0, 0, I, 2]);
    const column = (j: number) => reshape(op.Slice(pairs, i64([j]), i64([j + 1]), i64([-1])), [0, 0, I]);
    const gate = op.Min([column(0), f32Scalar(limit)]);
    const up = op.Max([op.Min([column(1), f32Scalar(limit)]), f32Scalar(-limit)]);
    const glu = op.Mul(gate, op.Sigmoid(op.Mul(gate, f32Scalar(alpha))));
    const act = op.Mul(op.Add(up, f32Scalar(1)), glu);
    return expertLinear(act, gatherExperts(this.down_proj.value, used), gatherExperts(this.down_proj_bias.value, used));
  }
}

const swigluOf = (m: MoeConfig) => ({ limit: m.swigluLimit ?? GPT_OSS_SWIGLU.limit, alpha: m.swigluAlpha ?? GPT_OSS_SWIGLU.alpha });

/** Mirrors GptOssMLP: router, then the chosen experts, weighted. */
export class GptOssMLP extends Module {
  readonly router: GptOssTopKRouter;
  readonly experts: GptOssExperts;
  constructor(readonly c: DecoderConfig) {
    super();
    const m = c.moe!;
    this.router = new GptOssTopKRouter(c.hidden, m.experts, { bias: true });
    this.experts = new GptOssExperts(c.hidden, m);
  }
  forward(x: Tensor): Tensor {
    const m = this.c.moe!;
    const { limit, alpha } = swigluOf(m);
    return overTokens(x, this.c.hidden, (tokens) => {
      const logits = this.router.call(tokens);
      // The top-k logits softmaxed among themselves = the softmax over all, kept and renormalised.
      return sparseMoe(tokens, logits, this.experts.stacked(), { topK: m.topK, normalize: true, gateUp: 'interleaved', alpha, beta: 1, limit }, () => {
        const { weights, chosen } = topKSoftmaxWeights(logits, m.topK, m.experts);
        const used = usedExperts(chosen);
        return combineExperts(this.experts.call(tokens, used), weights, used);
      });
    });
  }
}

/** Mirrors GptOssForCausalLM (Llama's model and head around GPT-OSS layers). */
export function gptOss(config: DecoderConfig): LlamaForCausalLM {
  checkDecoderOptions('gptOss', config);
  if (!config.moe) throw new UserError('gptOss: option moe is required (every GPT-OSS layer is sparse)');
  // GptOssDecoderLayer: Llama's, with GPT-OSS's attention and MLP.
  return new LlamaForCausalLM(config, 'GptOssForCausalLM', (c) => new LlamaDecoderLayer(c, new GptOssAttention(c), new GptOssMLP(c)));
}

/**
 * GptOssConfig's class defaults, filled into a config.json before it is read like any other:
 * head_dim 64, num_key_value_heads 8, rms_norm_eps 1e-5, max_position_embeddings 131072,
 * attention_bias true, rope_theta 150000 and, with no RoPE dict, YaRN factor 32 over
 * 4096 positions (beta 32 / 1, truncate false). experts_per_token and initial_context_length
 * (openai's spellings) are not read by transformers; num_experts_per_tok and the dict are.
 */
export function gptOssDefaults(hf: HFConfig, where: string): HFConfig {
  // MXFP4 experts are dequantised while binding (src/bind/packed.ts); nothing else is read.
  const quant = hf.quantization_config as HFConfig | undefined;
  if (quant !== undefined && quant !== null && (typeof quant !== 'object' || quant.quant_method !== 'mxfp4')) {
    throw new UserError(`${where}: field 'quantization_config' (quant_method ${JSON.stringify(typeof quant === 'object' ? quant.quant_method : quant)}) is not supported: vlmc reads float weights and MXFP4 experts (quant_method "mxfp4")`);
  }
  const ropeDict = [hf.rope_scaling, hf.rope_parameters].find((d) => d && typeof d === 'object' && Object.keys(d).length > 0) as HFConfig | undefined;
  const theta = hf.rope_theta ?? ropeDict?.rope_theta ?? 150000;
  return {
    ...hf,
    head_dim: hf.head_dim === undefined ? 64 : hf.head_dim,
    num_key_value_heads: hf.num_key_value_heads ?? 8,
    rms_norm_eps: hf.rms_norm_eps ?? 1e-5,
    max_position_embeddings: hf.max_position_embeddings ?? 131072,
    attention_bias: hf.attention_bias ?? true,
    rope_theta: theta,
    ...(ropeDict ? {} : { rope_scaling: { rope_type: 'yarn', factor: 32.0, beta_fast: 32.0, beta_slow: 1.0, truncate: false, original_max_position_embeddings: 4096 } }),
  };
}

/** GptOssConfig's expert fields: num_local_experts (num_experts) 128, num_experts_per_tok 4, intermediate_size, swiglu_limit 7, swiglu_alpha 1.702. */
export function gptOssMoeFromHF(hf: HFConfig, where: string, intermediate: number): MoeConfig {
  const experts = hf.num_local_experts !== undefined ? optInt(hf, 'num_local_experts', 128, where, LIMITS.experts) : optInt(hf, 'num_experts', 128, where, LIMITS.experts);
  const topK = optInt(hf, 'num_experts_per_tok', 4, where, LIMITS.experts);
  if (topK > experts) throw new UserError(`${where}: num_experts_per_tok (${topK}) is more than the ${experts} experts`);
  return {
    experts,
    topK,
    intermediate,
    swigluLimit: optNum(hf, 'swiglu_limit', GPT_OSS_SWIGLU.limit, where),
    swigluAlpha: optNum(hf, 'swiglu_alpha', GPT_OSS_SWIGLU.alpha, where),
  };
}
