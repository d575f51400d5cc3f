/**
 * InternVL2.5-78B, as published on Hugging Face: model card `OpenGVLab/InternVL2_5-78B`, dimensions from its config.json.
 * Vision: InternViT-6B-448px-V2_5. LLM: Qwen/Qwen2.5-72B-Instruct (Qwen2).
 */
import { internvl, internViT6B, qwen2, preset } from 'vlmc';

export default internvl({
  name: 'internvl2_5-78b',
  vision: internViT6B(),
  llm: qwen2({
    hidden: 8192,
    heads: 64,
    kvHeads: 8,
    layers: 80,
    intermediate: 29568,
    vocab: 151_674,
    rmsNormEps: 1e-6,
    ropeTheta: 1_000_000,
    maxPositions: 32768,
    tieEmbeddings: false,
  }),
  downsampleRatio: 0.5,
  psVersion: 'v2',
  selectLayer: -1,
  imgContextTokenId: 151667,
  train: preset('stage2'),
});
