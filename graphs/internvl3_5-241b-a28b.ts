/**
 * InternVL3.5-241B-A28B, as published on Hugging Face: model card `OpenGVLab/InternVL3_5-241B-A28B`, dimensions from its config.json.
 * Vision: InternViT-6B-448px-V2_5. LLM: Qwen/Qwen3-235B-A22B (Qwen3-MoE); lm_head stored (untied), vocabulary 151936.
 */
import { internvl, internViT6B, qwen3Moe, preset } from 'vlmc';

export default internvl({
  name: 'internvl3_5-241b-a28b',
  vision: internViT6B(),
  llm: qwen3Moe({
    hidden: 4096,
    heads: 64,
    kvHeads: 4,
    headDim: 128,
    layers: 94,
    intermediate: 12_288,
    vocab: 151_936,
    rmsNormEps: 1e-6,
    ropeTheta: 1_000_000,
    maxPositions: 40_960,
    tieEmbeddings: false,
    moe: { experts: 128, topK: 8, intermediate: 1536, normTopKProb: true, decoderSparseStep: 1, mlpOnlyLayers: [] },
  }),
  downsampleRatio: 0.5,
  psVersion: 'v2',
  selectLayer: -1,
  imgContextTokenId: 151671,
  train: preset('stage2'),
});
