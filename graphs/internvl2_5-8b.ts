/**
 * InternVL2.5-8B, as published on Hugging Face: model card `OpenGVLab/InternVL2_5-8B`, dimensions from its config.json.
 * Vision: InternViT-300M-448px-V2_5. LLM: internlm/internlm2_5-7b-chat (InternLM2.5).
 * vocab 92553 = InternLM2 tokenizer (92544) + 9 InternVL tokens.
 */
import { internvl, internViT300M, internlm2, preset } from 'vlmc';

export default internvl({
  name: 'internvl2_5-8b',
  vision: internViT300M(),
  llm: internlm2({
    hidden: 4096,
    heads: 32,
    kvHeads: 8,
    layers: 32,
    intermediate: 14336,
    vocab: 92553,
    rmsNormEps: 1e-5,
    ropeTheta: 1_000_000,
    maxPositions: 32768,
    ropeScaling: { type: 'dynamic', factor: 2.0 },
    tieEmbeddings: false,
    padTokenId: 2,
  }),
  downsampleRatio: 0.5,
  psVersion: 'v2',
  selectLayer: -1,
  imgContextTokenId: 92546,
  train: preset('stage2'),
});
