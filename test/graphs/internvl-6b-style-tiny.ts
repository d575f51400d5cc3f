/** A tiny InternVL with an InternViT-6B-style tower (RMSNorm, qk normalization, no qkv bias) and InternLM2. */
import { internvl, internViT, internlm2 } from '../../src/index.ts';

export default internvl({
  name: 'internvl-6b-style-tiny',
  vision: internViT({ hidden: 32, heads: 4, layers: 2, intermediate: 64, imageSize: 56, patchSize: 14, norm: 'rms_norm', qkvBias: false, qkNorm: true, eps: 1e-6 }),
  llm: internlm2({ hidden: 48, heads: 4, kvHeads: 2, layers: 2, intermediate: 96, vocab: 160, rmsNormEps: 1e-6, ropeTheta: 1_000_000, maxPositions: 2048, tieEmbeddings: false }),
  downsampleRatio: 0.5,
  psVersion: 'v2',
  selectLayer: -1,
  imgContextTokenId: 153,
});
