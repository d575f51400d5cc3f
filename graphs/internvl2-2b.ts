/**
 * InternVL2-2B, as published on Hugging Face: model card `OpenGVLab/InternVL2-2B`, dimensions from its config.json.
 * Vision: InternViT-300M-448px. LLM: internlm/internlm2-chat-1_8b (InternLM2).
 * vocab 92553 = InternLM2 tokenizer (92544) + 9 InternVL tokens; <IMG_CONTEXT> = 92546.
 */
import { internvl, internViT300M, internlm2, preset } from 'vlmc';

export default internvl({
  name: 'internvl2-2b',
  vision: internViT300M(),
  llm: internlm2({
    hidden: 2048,
    heads: 16,
    kvHeads: 8,
    layers: 24,
    intermediate: 8192,
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
