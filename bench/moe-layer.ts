/**
 * The graphs bench/moe.ts measures: one Qwen3-30B-A3B-shaped decoder layer (attention with q/k norm,
 * a 128-expert top-8 sparse block, moe_intermediate 768, hidden 2048), between embeddings in and a
 * 16-token vocabulary out; and the floor, every weight a decode step must read (the layer's active
 * parameters: attention, router, 8 experts), each read once by an M = 1 Gemm.
 */
import { Model, type InputSpec } from '../src/dsl/model.ts';
import { Module, ModuleList, type Tensor } from '../src/dsl/module.ts';
import { Linear, linear } from '../src/nn/layers.ts';
import * as op from '../src/ops/index.ts';
import { qwen3Moe } from '../src/models/llm/qwen3-moe.ts';
import type { CausalLM, DecoderConfig } from '../src/models/llm/decoder.ts';

export const QWEN3_30B_A3B_LAYER: DecoderConfig = {
  hidden: 2048,
  heads: 32,
  kvHeads: 4,
  headDim: 128,
  layers: 1,
  intermediate: 6144,
  vocab: 16,
  rmsNormEps: 1e-6,
  ropeTheta: 1_000_000,
  maxPositions: 40_960,
  tieEmbeddings: false,
  moe: { experts: 128, topK: 8, intermediate: 768, normTopKProb: true },
};

/** embeds [1, seq, 2048] -> logits [1, seq, 16] through one layer. */
export class MoeLayerBench extends Model {
  readonly language_model: CausalLM;
  constructor(c: DecoderConfig = QWEN3_30B_A3B_LAYER) {
    super();
    this.language_model = qwen3Moe(c);
  }
  inputs(): InputSpec[] {
    return [{ name: 'inputs_embeds', dtype: 'float32', shape: [1, 'seq', this.language_model.config.hidden] }];
  }
  forward(embeds: Tensor): Record<string, Tensor> {
    return { logits: this.language_model.call(embeds) };
  }
}

/** The active weights of a decode step: each read once (one scalar each, summed). */
export class ActiveWeightsFloor extends Model {
  readonly weights: ModuleList<Linear>;
  constructor(readonly c: DecoderConfig = QWEN3_30B_A3B_LAYER) {
    super();
    const d = c.headDim!;
    const m = c.moe!;
    const shapes: [number, number][] = [
      [c.heads * d, c.hidden], [c.kvHeads * d, c.hidden], [c.kvHeads * d, c.hidden], [c.hidden, c.heads * d],
      [m.experts, c.hidden],
      ...Array.from({ length: m.topK }, (): [number, number][] => [[m.intermediate, c.hidden], [m.intermediate, c.hidden], [c.hidden, m.intermediate]]).flat(),
    ];
    this.weights = new ModuleList(shapes.map(([out, inF]) => new Linear(inF, out, { bias: false })));
  }
  private widths(): number[] {
    return [...new Set(this.weights.items.map((l) => l.inFeatures))].sort((a, b) => a - b);
  }
  inputs(): InputSpec[] {
    return this.widths().map((w) => ({ name: `x${w}`, dtype: 'float32', shape: [1, w] }));
  }
  forward(...xs: Tensor[]): Record<string, Tensor> {
    const byWidth = new Map(this.widths().map((w, i) => [w, xs[i]!]));
    const sums = this.weights.items.map((l) => op.ReduceSum(linear(byWidth.get(l.inFeatures)!, l.weight.value), undefined, { keepdims: 0 }));
    return { y: op.Sum(sums) };
  }
}

export const moeLayer = (): Module => new MoeLayerBench();
