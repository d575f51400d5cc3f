/** The backward is pruned by the freeze rules: no weight-gradient products for frozen weights, nothing upstream of the earliest trainable parameter. */
import { describe, it, expect } from 'vitest';
import { internvl, internViT, qwen2, preset, freeze, unfreeze } from '../src/index.ts';
import { compileTrain } from '../src/train/compile-train.ts';
import type { FreezeRule } from '../src/dsl/freeze.ts';

function trainGraph(rules: FreezeRule[]) {
  const model = internvl({
    vision: internViT({ hidden: 32, heads: 4, layers: 2, intermediate: 64, imageSize: 56, patchSize: 14, norm: 'layer_norm', qkvBias: true, qkNorm: false, eps: 1e-6 }),
    llm: qwen2({ hidden: 48, heads: 4, kvHeads: 2, layers: 2, intermediate: 96, vocab: 160, rmsNormEps: 1e-6, ropeTheta: 1e6, maxPositions: 2048, tieEmbeddings: false }),
    imgContextTokenId: 153,
  });
  return compileTrain(model, { rules });
}

const backwardIn = (t: ReturnType<typeof trainGraph>, scope: string) => t.graph.nodes.filter((n) => n.scope === `backward.${scope}` || n.scope.startsWith(`backward.${scope}.`));

describe('autodiff pruning', () => {
  it('stage 1: no backward in the ViT or the text embedding; activation gradients only through the frozen LLM', () => {
    const t = trainGraph(preset('stage1'));
    expect(backwardIn(t, 'vision_model')).toEqual([]);
    expect(backwardIn(t, 'language_model.model.embed_tokens')).toEqual([]);
    // q_proj frozen: one Gemm (input gradient), no weight-gradient product.
    expect(backwardIn(t, 'language_model.model.layers.0.self_attn.q_proj').filter((n) => n.op === 'Gemm')).toHaveLength(1);
    expect(backwardIn(t, 'mlp1.1').filter((n) => n.op === 'Gemm')).toHaveLength(2);
    // mlp1.0 (LayerNorm) is the earliest trainable: its input gradient is not built.
    const ln = backwardIn(t, 'mlp1.0');
    expect(ln.length).toBeGreaterThan(0);
    expect(t.graph.outputs.map((o) => o.name)).toEqual(['loss', ...t.trainable.map((p) => `grad.${p.name}`)]);
    expect(t.pruning.backwardNodes).toBeLessThan(t.pruning.backwardNodesUnpruned);
    expect(t.pruning.backwardFlops).toBeLessThan(t.pruning.backwardFlopsUnpruned);
  });

  it('full: weight gradients everywhere, nothing pruned', () => {
    const t = trainGraph(preset('full'));
    expect(backwardIn(t, 'language_model.model.layers.0.self_attn.q_proj').filter((n) => n.op === 'Gemm')).toHaveLength(2);
    expect(backwardIn(t, 'vision_model.embeddings').some((n) => n.op === 'Conv')).toBe(true);
    expect(t.pruning.backwardNodes).toBe(t.pruning.backwardNodesUnpruned);
  });

  it('the backward grows with what trains: stage1 < stage2 < full; a trainable ViT layer pulls the backward into the ViT', () => {
    const sizes = [preset('stage1'), preset('stage2'), preset('full')].map((r) => trainGraph(r).pruning.backwardFlops);
    expect(sizes[0]!).toBeLessThan(sizes[1]!);
    expect(sizes[1]!).toBeLessThan(sizes[2]!);
    const t = trainGraph([...freeze('**'), ...unfreeze('vision.layers.1')]);
    expect(backwardIn(t, 'vision_model.encoder.layers.1').length).toBeGreaterThan(0);
    expect(backwardIn(t, 'vision_model.encoder.layers.0')).toEqual([]);
    expect(backwardIn(t, 'vision_model.embeddings')).toEqual([]);
  });
});
