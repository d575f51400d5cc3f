/**
 * InternVL2.5-4B, as published on Hugging Face: model card `OpenGVLab/InternVL2_5-4B`, dimensions from its config.json.
 * Vision: InternViT-300M-448px-V2_5. LLM: Qwen/Qwen2.5-3B-Instruct (Qwen2).
 * lm_head is stored untied (3.71B parameters) although Qwen2.5-3B itself ties.
 */
import { internvl, internViT300M, qwen2, preset } from 'vlmc';

export default internvl({
  name: 'internvl2_5-4b',
  vision: internViT300M(),
  llm: qwen2({
    hidden: 2048,
    heads: 16,
    kvHeads: 2,
    layers: 36,
    intermediate: 11008,
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
