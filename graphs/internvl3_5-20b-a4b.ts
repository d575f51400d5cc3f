/**
 * InternVL3.5-GPT-OSS-20B-A4B, as published on Hugging Face: model card
 * `OpenGVLab/InternVL3_5-GPT-OSS-20B-A4B-Preview`, dimensions from its config.json.
 * Vision: InternViT-300M-448px-V2_5. LLM: openai/gpt-oss-20b (GPT-OSS: 32 experts, top-4, sinks,
 * alternating 128-token sliding / full layers, YaRN); lm_head stored (untied), vocabulary 201088.
 * <IMG_CONTEXT> id not set here (not verified): it comes from the checkpoint tokenizer or --img-context-token-id.
 */
import { internvl, internViT300M, gptOss, preset } from 'vlmc';

export default internvl({
  name: 'internvl3_5-20b-a4b',
  vision: internViT300M(),
  llm: gptOss({
    hidden: 2880,
    heads: 64,
    kvHeads: 8,
    headDim: 64,
    layers: 24,
    intermediate: 2880,
    vocab: 201_088,
    rmsNormEps: 1e-5,
    ropeTheta: 150_000,
    maxPositions: 131_072,
    ropeScaling: { type: 'yarn', factor: 32, originalMaxPositions: 4096, attentionFactor: 1 + 0.1 * Math.log(32), betaFast: 32, betaSlow: 1, truncate: false },
    tieEmbeddings: false,
    qkvBias: true,
    oBias: true,
    slidingWindow: 128,
    layerTypes: Array.from({ length: 24 }, (_, i) => (i % 2 === 0 ? 'sliding_attention' : 'full_attention')),
    moe: { experts: 32, topK: 4, intermediate: 2880, swigluLimit: 7, swigluAlpha: 1.702 },
  }),
  downsampleRatio: 0.5,
  psVersion: 'v2',
  selectLayer: -1,
  train: preset('stage2'),
});
