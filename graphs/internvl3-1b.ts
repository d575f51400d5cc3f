/**
 * InternVL3-1B, as published on Hugging Face: model card `OpenGVLab/InternVL3-1B`, dimensions from its config.json.
 * Vision: InternViT-300M-448px-V2_5. LLM: Qwen/Qwen2.5-0.5B (Qwen2).
 * llm_config: rope_scaling dynamic 2.0, tie_word_embeddings false (lm_head stored: 938M parameters).
 */
import { internvl, internViT300M, qwen2, preset } from 'vlmc';

export default internvl({
  name: 'internvl3-1b',
  vision: internViT300M(),
  llm: qwen2({
    hidden: 896,
    heads: 14,
    kvHeads: 2,
    layers: 24,
    intermediate: 4864,
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
