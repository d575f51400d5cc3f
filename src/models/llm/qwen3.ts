/**
 * Qwen3 (transformers `modeling_qwen3.py`): the Llama layout plus a per-head RMSNorm on queries and
 * keys (`q_norm`, `k_norm`, width head_dim) before rotary; head_dim comes from the config (Qwen3Config
 * defaults it to 128, not hidden / heads); q/k/v/o bias only with attention_bias. InternVL3.5 uses it.
 */
import { checkDecoderOptions } from '../check-options.ts';
import type { Tensor } from '../../dsl/module.ts';
import { RMSNorm, reshape } from '../../nn/layers.ts';
import { LlamaAttention, LlamaDecoderLayer, LlamaForCausalLM } from './llama.ts';
import { attendProjected, headDimOf, type DecoderConfig, type DecoderContext } from './decoder.ts';

/** Qwen3Config's head_dim when a config.json leaves it out. */
export const QWEN3_DEFAULT_HEAD_DIM = 128;

/** Mirrors Qwen3Attention: LlamaAttention with q/k RMSNorm per head. */
export class Qwen3Attention extends LlamaAttention {
  readonly q_norm: RMSNorm;
  readonly k_norm: RMSNorm;
  constructor(c: DecoderConfig) {
    super(c);
    this.q_norm = new RMSNorm(headDimOf(c), c.rmsNormEps);
    this.k_norm = new RMSNorm(headDimOf(c), c.rmsNormEps);
  }
  override forward(x: Tensor, ctx: DecoderContext): Tensor {
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

/** Mirrors Qwen3ForCausalLM: Llama's model with Qwen3Attention in every layer. */
export function qwen3(config: DecoderConfig): LlamaForCausalLM {
  checkDecoderOptions('qwen3', config);
  return new LlamaForCausalLM(config, 'Qwen3ForCausalLM', (c) => new LlamaDecoderLayer(c, new Qwen3Attention(c)));
}
