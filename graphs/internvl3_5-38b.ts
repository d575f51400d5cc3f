/**
 * InternVL3.5-38B, as published on Hugging Face: model card `OpenGVLab/InternVL3_5-38B`, dimensions from its config.json.
 * Vision: InternViT-6B-448px-V2_5. LLM: Qwen/Qwen3-32B (Qwen3); lm_head stored (untied), vocabulary 151936.
 */
import { internvl, internViT6B, qwen3, preset } from 'vlmc';

export default internvl({
  name: 'internvl3_5-38b',
  vision: internViT6B(),
  llm: qwen3({
    hidden: 5120,
    heads: 64,
    kvHeads: 8,
    headDim: 128,
    layers: 64,
    intermediate: 25_600,
    vocab: 151_936,
    rmsNormEps: 1e-6,
    ropeTheta: 1_000_000,
    maxPositions: 40_960,
    tieEmbeddings: false,
  }),
  downsampleRatio: 0.5,
  psVersion: 'v2',
  selectLayer: -1,
  imgContextTokenId: 151671,
  train: preset('stage2'),
});
