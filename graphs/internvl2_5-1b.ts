/**
 * InternVL2.5-1B, as published on Hugging Face: model card `OpenGVLab/InternVL2_5-1B`, dimensions from its config.json.
 * Vision: InternViT-300M-448px-V2_5. LLM: Qwen/Qwen2.5-0.5B-Instruct (Qwen2).
 * vocab 151674 = Qwen2.5 tokenizer (151665) + 9 InternVL tokens; <IMG_CONTEXT> = 151667.
 * lm_head is stored untied (938M parameters) although Qwen2.5-0.5B itself ties.
 */
import { internvl, internViT300M, qwen2, preset } from 'vlmc';

export default internvl({
  name: 'internvl2_5-1b',
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
    tieEmbeddings: false,
  }),
  downsampleRatio: 0.5,
  psVersion: 'v2',
  selectLayer: -1,
  imgContextTokenId: 151667,
  train: preset('stage2'),
});
