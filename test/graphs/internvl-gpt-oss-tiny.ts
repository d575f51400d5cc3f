/**
 * A tiny InternVL with a GPT-OSS LLM (random weights in tests): sinks, alternating sliding (4) / full
 * layers, YaRN, 6 experts top-2 with the clamped SwiGLU (limit 0.2, so the clamp acts on small
 * activations). Inputs: the families fixtures' (56 px tiles, 4 tokens each, <IMG_CONTEXT> 192).
 */
import { gptOss, internvl, internViT } from '../../src/index.ts';

export default internvl({
  name: 'internvl-gpt-oss-tiny',
  vision: internViT({ hidden: 32, heads: 4, layers: 1, intermediate: 64, imageSize: 56, patchSize: 14, norm: 'layer_norm', qkvBias: true, qkNorm: false, eps: 1e-6 }),
  llm: gptOss({
    hidden: 64, heads: 4, kvHeads: 2, headDim: 16, layers: 2, intermediate: 24, vocab: 200, rmsNormEps: 1e-5, ropeTheta: 150_000, maxPositions: 131_072,
    ropeScaling: { type: 'yarn', factor: 32, originalMaxPositions: 4096, betaFast: 32, betaSlow: 1, truncate: false },
    tieEmbeddings: false, qkvBias: true, oBias: true,
    slidingWindow: 4, layerTypes: ['sliding_attention', 'full_attention'],
    moe: { experts: 6, topK: 2, intermediate: 24, swigluLimit: 0.2, swigluAlpha: 1.702 },
  }),
  downsampleRatio: 0.5,
  psVersion: 'v2',
  selectLayer: -1,
  imgContextTokenId: 192,
});
