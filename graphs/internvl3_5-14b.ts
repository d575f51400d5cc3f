/**
 * InternVL3.5-14B, as published on Hugging Face: model card `OpenGVLab/InternVL3_5-14B`, dimensions from its config.json.
 * Vision: InternViT-300M-448px-V2_5. LLM: Qwen/Qwen3-14B (Qwen3); lm_head stored (untied), vocabulary 151936.
 */
import { internvl, internViT300M, qwen3, preset } from 'vlmc';

export default internvl({
  name: 'internvl3_5-14b',
  vision: internViT300M(),
  llm: qwen3({
    hidden: 5120,
    heads: 40,
    kvHeads: 8,
    headDim: 128,
    layers: 40,
    intermediate: 17_408,
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
