/**
 * Qwen3-MoE (transformers `modeling_qwen3_moe.py`; InternVL3.5-30B-A3B and -241B-A28B): Qwen3's
 * attention (per-head q/k RMSNorm) and, on the layers `moe.decoderSparseStep` / `mlpOnlyLayers`
 * pick, a sparse MoE block: a router `gate` [E, H] and E SwiGLU experts of width
 * `moe.intermediate`, top-k over the softmax of the router logits (src/models/llm/moe.ts).
 *
 * The experts are kept as the checkpoints store them (both layouts, as transformers 5.17 saves
 * them): `mlp.experts.{e}.{gate,up,down}_proj.weight`, one Linear each, stacked in the graph.
 */
import { checkDecoderOptions } from '../check-options.ts';
import { Module, ModuleList, type Tensor } from '../../dsl/module.ts';
import { Linear, silu } from '../../nn/layers.ts';
import * as op from '../../ops/index.ts';
import { i64 } from '../../dsl/constants.ts';
import { LlamaDecoderLayer, LlamaForCausalLM, LlamaMLP } from './llama.ts';
import { Qwen3Attention } from './qwen3.ts';
import { isSparseLayer, type DecoderConfig, type MoeConfig } from './decoder.ts';
import { LIMITS, optBool, optInt, type HFConfig } from '../config-fields.ts';
import { UserError } from '../../errors.ts';
import { combineExperts, expertLinear, gatherExperts, overTokens, softmaxTopKWeights, sparseMoe, stackTransposed, usedExperts } from './moe.ts';

/** Mirrors Qwen3MoeSparseMoeBlock (the per-expert ModuleList of the saved checkpoints). */
export class Qwen3MoeSparseMoeBlock extends Module {
  readonly gate: Linear;
  readonly experts: ModuleList<LlamaMLP>;
  constructor(
    readonly c: DecoderConfig,
    readonly moe: MoeConfig,
  ) {
    super();
    this.gate = new Linear(c.hidden, moe.experts, { bias: false });
    const expert = { ...c, intermediate: moe.intermediate, mlpBias: false };
    this.experts = new ModuleList(Array.from({ length: moe.experts }, () => new LlamaMLP(expert)));
  }
  forward(x: Tensor): Tensor {
    const { hidden } = this.c;
    const { experts: E, topK, intermediate: I } = this.moe;
    const normalize = this.moe.normTopKProb ?? false;
    return overTokens(x, hidden, (tokens) => {
      const logits = this.gate.call(tokens);
      const mlps = this.experts.items;
      // [E, H, 2I]: each expert's gate then up columns.
      const gate = stackTransposed(mlps.map((m) => m.gate_proj.weight.value), I, hidden);
      const up = stackTransposed(mlps.map((m) => m.up_proj.weight.value), I, hidden);
      const stacked = { gateUp: op.Concat([gate, up], { axis: 2 }), down: stackTransposed(mlps.map((m) => m.down_proj.weight.value), hidden, I) };
      // SiLU(gate) · up is the MoE kernel's SwiGLU with alpha 1, beta 0 and no clamp.
      return sparseMoe(tokens, logits, stacked, { topK, normalize, gateUp: 'halves', alpha: 1, beta: 0 }, () => {
        const { weights, chosen } = softmaxTopKWeights(logits, topK, E, normalize);
        const used = usedExperts(chosen);
        const gateUp = expertLinear(tokens, gatherExperts(stacked.gateUp, used));
        const slice = (from: number, to: number) => op.Slice(gateUp, i64([from]), i64([to]), i64([-1]));
        const act = op.Mul(silu(slice(0, I)), slice(I, 2 * I));
        return combineExperts(expertLinear(act, gatherExperts(stacked.down, used)), weights, used);
      });
    });
  }
}

/** Mirrors Qwen3MoeForCausalLM. */
export function qwen3Moe(config: DecoderConfig): LlamaForCausalLM {
  checkDecoderOptions('qwen3Moe', config);
  // Qwen3MoeDecoderLayer: a sparse block or a dense MLP (mlp_only_layers, decoder_sparse_step).
  const layer = (c: DecoderConfig, i: number) => new LlamaDecoderLayer(c, new Qwen3Attention(c), isSparseLayer(c, i) ? new Qwen3MoeSparseMoeBlock(c, c.moe!) : new LlamaMLP(c));
  return new LlamaForCausalLM(config, 'Qwen3MoeForCausalLM', layer);
}

/**
 * Qwen3MoeConfig's expert fields, with its defaults: num_experts 128 (also spelled
 * num_local_experts, transformers 5's attribute), num_experts_per_tok 8, moe_intermediate_size 768,
 * norm_topk_prob false, decoder_sparse_step 1, mlp_only_layers [].
 */
export function qwen3MoeFromHF(hf: HFConfig, where: string): MoeConfig {
  const experts = expertCount(hf, where);
  const topK = optInt(hf, 'num_experts_per_tok', 8, where, LIMITS.experts);
  if (experts > 0 && topK > experts) throw new UserError(`${where}: num_experts_per_tok (${topK}) is more than the ${experts} experts`);
  const layers = typeof hf.num_hidden_layers === 'number' ? hf.num_hidden_layers : 0;
  const only = hf.mlp_only_layers ?? [];
  if (!Array.isArray(only) || !only.every((i) => Number.isInteger(i) && i >= 0 && i < layers)) {
    throw new UserError(`${where}: field 'mlp_only_layers' must be a list of layer indices below num_hidden_layers (got ${JSON.stringify(only)})`);
  }
  return {
    experts,
    topK,
    intermediate: optInt(hf, 'moe_intermediate_size', 768, where, LIMITS.intermediate),
    normTopKProb: optBool(hf, 'norm_topk_prob', false, where),
    decoderSparseStep: optInt(hf, 'decoder_sparse_step', 1, where, LIMITS.layers),
    mlpOnlyLayers: only as number[],
  };
}

/** num_experts or num_local_experts (the same attribute in transformers 5); both must agree. */
function expertCount(hf: HFConfig, where: string): number {
  const a = optInt(hf, 'num_experts', -1, where, LIMITS.experts, 0);
  const b = optInt(hf, 'num_local_experts', -1, where, LIMITS.experts, 0);
  if (a >= 0 && b >= 0 && a !== b) throw new UserError(`${where}: num_experts (${a}) and num_local_experts (${b}) disagree; they name the same count`);
  return a >= 0 ? a : b >= 0 ? b : 128;
}
