/** Model shapes the benchmarks and the device kit build in code (no graph file, no checkpoint download). */
import { internvl, internViT, qwen2, type InternVLChatModel } from '../src/index.ts';

/** InternVL2-1B: InternViT-300M-448px + Qwen2-0.5B; the released checkpoint stores lm_head untied. */
export function internvl2OneB(): InternVLChatModel {
  return internvl({
    name: 'internvl2-1b',
    vision: internViT({ hidden: 1024, heads: 16, layers: 24, intermediate: 4096, imageSize: 448, patchSize: 14, norm: 'layer_norm', qkvBias: true, qkNorm: false, eps: 1e-6 }),
    llm: qwen2({ hidden: 896, heads: 14, kvHeads: 2, layers: 24, intermediate: 4864, vocab: 151_655, rmsNormEps: 1e-6, ropeTheta: 1_000_000, maxPositions: 32768, tieEmbeddings: false }),
    downsampleRatio: 0.5,
    psVersion: 'v2',
    selectLayer: -1,
    imgContextTokenId: 151648,
  });
}

/**
 * The same architecture, tiny (seconds on a CPU): ViT 2 x 32 on 56-pixel tiles (4 tokens a tile),
 * Qwen2 2 x 64 with 4 heads of 16 and 2 KV heads (GroupQueryAttention fuses: head size a multiple
 * of 8), every LLM width a multiple of the int4 block (32).
 */
export function internvlTinyShape(): InternVLChatModel {
  return internvl({
    name: 'internvl-kit-tiny',
    vision: internViT({ hidden: 32, heads: 2, layers: 2, intermediate: 64, imageSize: 56, patchSize: 14, norm: 'layer_norm', qkvBias: true, qkNorm: false, eps: 1e-6 }),
    llm: qwen2({ hidden: 64, heads: 4, kvHeads: 2, layers: 2, intermediate: 128, vocab: 512, rmsNormEps: 1e-6, ropeTheta: 1_000_000, maxPositions: 4096, tieEmbeddings: false }),
    downsampleRatio: 0.5,
    psVersion: 'v2',
    selectLayer: -1,
    imgContextTokenId: 500,
  });
}
