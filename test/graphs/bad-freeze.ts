// A graph whose freeze rule names no parameter (a typo): the error must point at this line.
import { internvl, internViT, qwen2, freeze } from '../../src/index.ts';

export default internvl({
  vision: internViT({ hidden: 32, heads: 4, layers: 2, intermediate: 64, imageSize: 56, patchSize: 14, norm: 'layer_norm', qkvBias: true, qkNorm: false, eps: 1e-6 }),
  llm: qwen2({ hidden: 48, heads: 4, kvHeads: 2, layers: 2, intermediate: 96, vocab: 160, rmsNormEps: 1e-6, ropeTheta: 1e6, maxPositions: 2048, tieEmbeddings: true }),
  imgContextTokenId: 153,
  train: freeze('vison'),
});
