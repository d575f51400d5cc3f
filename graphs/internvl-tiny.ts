/**
 * internvl-tiny: a few-thousand-parameter InternVL (InternViT-300M layout + Qwen2) for the default
 * run (`npm start`) and tests. Same architecture as InternVL2.5-1B, shrunk; no released checkpoint.
 */
import { internvl, internViT, qwen2, preset } from 'vlmc';

export default internvl({
  name: 'internvl-tiny',
  vision: internViT({
    hidden: 32,
    heads: 4,
    layers: 2,
    intermediate: 64,
    imageSize: 56,
    patchSize: 14,
    norm: 'layer_norm',
    qkvBias: true,
    qkNorm: false,
    eps: 1e-6,
  }),
  llm: qwen2({
    hidden: 48,
    heads: 4,
    kvHeads: 2,
    layers: 2,
    intermediate: 96,
    vocab: 160,
    rmsNormEps: 1e-6,
    ropeTheta: 1_000_000,
    maxPositions: 32768,
    tieEmbeddings: true,
  }),
  downsampleRatio: 0.5,
  psVersion: 'v2',
  selectLayer: -1,
  imgContextTokenId: 153,
  train: preset('stage1'),
});
