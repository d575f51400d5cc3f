/**
 * InternVL3.5-30B-A3B, as published on Hugging Face: model card `OpenGVLab/InternVL3_5-30B-A3B`, dimensions from its config.json.
 * Vision: InternViT-300M-448px-V2_5. LLM: Qwen/Qwen3-30B-A3B (Qwen3-MoE); lm_head stored (untied), vocabulary 151936.
 */
import { internvl, internViT300M, qwen3Moe, preset } from 'vlmc';

export default internvl({
  name: 'internvl3_5-30b-a3b',
  vision: internViT300M(),
  llm: qwen3Moe({
    hidden: 2048,
    heads: 32,
    kvHeads: 4,
    headDim: 128,
    layers: 48,
    intermediate: 6144,
    vocab: 151_936,
    rmsNormEps: 1e-6,
    ropeTheta: 1_000_000,
    maxPositions: 40_960,
    tieEmbeddings: false,
    moe: { experts: 128, topK: 8, intermediate: 768, normTopKProb: true, decoderSparseStep: 1, mlpOnlyLayers: [] },
  }),
  downsampleRatio: 0.5,
  psVersion: 'v2',
  selectLayer: -1,
  imgContextTokenId: 151671,
  train: preset('stage2'),
});
