/** A tiny InternVL whose LLM head size (16) suits ONNX Runtime's GroupQueryAttention (multiples of 8). */
import { internvl, internViT, qwen2 } from '../../src/index.ts';

export default internvl({
  name: 'internvl-gqa-tiny',
  vision: internViT({ hidden: 32, heads: 4, layers: 1, intermediate: 64, imageSize: 56, patchSize: 14, norm: 'layer_norm', qkvBias: true, qkNorm: false, eps: 1e-6 }),
  llm: qwen2({ hidden: 64, heads: 4, kvHeads: 2, layers: 2, intermediate: 96, vocab: 160, rmsNormEps: 1e-6, ropeTheta: 1_000_000, maxPositions: 2048, tieEmbeddings: true }),
  downsampleRatio: 0.5,
  psVersion: 'v2',
  selectLayer: -1,
  imgContextTokenId: 153,
});
