/**
 * InternVL2.5-26B, as published on Hugging Face: model card `OpenGVLab/InternVL2_5-26B`, dimensions from its config.json.
 * Vision: InternViT-6B-448px-V2_5. LLM: internlm/internlm2_5-20b-chat (InternLM2.5).
 * vocab 92553 = InternLM2 tokenizer (92544) + 9 InternVL tokens.
 */
import { internvl, internViT6B, internlm2, preset } from 'vlmc';

export default internvl({
  name: 'internvl2_5-26b',
  vision: internViT6B(),
  llm: internlm2({
    hidden: 6144,
    heads: 48,
    kvHeads: 8,
    layers: 48,
    intermediate: 16384,
    vocab: 92553,
    rmsNormEps: 1e-5,
    ropeTheta: 50_000_000,
    maxPositions: 32768,
    ropeScaling: { type: 'dynamic', factor: 2.5 },
    tieEmbeddings: false,
    padTokenId: 2,
  }),
  downsampleRatio: 0.5,
  psVersion: 'v2',
  selectLayer: -1,
  imgContextTokenId: 92546,
  train: preset('stage2'),
});
