/**
 * InternVL3-2B, as published on Hugging Face: model card `OpenGVLab/InternVL3-2B`, dimensions from its config.json.
 * Vision: InternViT-300M-448px-V2_5. LLM: Qwen/Qwen2.5-1.5B (Qwen2).
 * lm_head is stored untied (2.09B parameters) although Qwen2.5-1.5B itself ties.
 */
import { internvl, internViT300M, qwen2, preset } from 'vlmc';

export default internvl({
  name: 'internvl3-2b',
  vision: internViT300M(),
  llm: qwen2({
    hidden: 1536,
    heads: 12,
    kvHeads: 2,
    layers: 28,
    intermediate: 8960,
    vocab: 151_674,
    rmsNormEps: 1e-6,
    ropeTheta: 1_000_000,
    maxPositions: 32768,
    ropeScaling: { type: 'dynamic', factor: 2.0 },
    tieEmbeddings: false,
  }),
  downsampleRatio: 0.5,
  psVersion: 'v2',
  selectLayer: -1,
  imgContextTokenId: 151667,
  train: preset('stage2'),
});
