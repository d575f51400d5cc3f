/**
 * InternVL2-26B, as published on Hugging Face: model card `OpenGVLab/InternVL2-26B`, dimensions from its config.json.
 * Vision: InternViT-6B-448px-V1-5. LLM: internlm/internlm2-chat-20b (InternLM2).
 * vocab 92553 = InternLM2 tokenizer (92544) + 9 InternVL tokens.
 */
import { internvl, internViT6B, internlm2, preset } from 'vlmc';

export default internvl({
  name: 'internvl2-26b',
  vision: internViT6B(),
  llm: internlm2({
    hidden: 6144,
    heads: 48,
    kvHeads: 8,
    layers: 48,
    intermediate: 16384,
    vocab: 92553,
    rmsNormEps: 1e-5,
    ropeTheta: 1_000_000,
    maxPositions: 32768,
    ropeScaling: { type: 'dynamic', factor: 3.0 },
    tieEmbeddings: false,
    padTokenId: 2,
  }),
  downsampleRatio: 0.5,
  psVersion: 'v2',
  selectLayer: -1,
  imgContextTokenId: 92546,
  train: preset('stage2'),
});
