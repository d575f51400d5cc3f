/**
 * InternVL2-1B, as published on Hugging Face: model card `OpenGVLab/InternVL2-1B`, dimensions from its config.json.
 * Vision: InternViT-300M-448px. LLM: Qwen/Qwen2-0.5B-Instruct (Qwen2).
 * vocab 151655 = Qwen2 tokenizer (151643 + 3 specials) + 9 InternVL tokens; <IMG_CONTEXT> = 151648.
 * lm_head is stored untied (the 938M-parameter checkpoint; tied would be 802M) although Qwen2-0.5B itself ties.
 */
import { internvl, internViT300M, qwen2, preset } from 'vlmc';

export default internvl({
  name: 'internvl2-1b',
  vision: internViT300M(),
  llm: qwen2({
    hidden: 896,
    heads: 14,
    kvHeads: 2,
    layers: 24,
    intermediate: 4864,
    vocab: 151_655,
    rmsNormEps: 1e-6,
    ropeTheta: 1_000_000,
    maxPositions: 32768,
    tieEmbeddings: false,
  }),
  downsampleRatio: 0.5,
  psVersion: 'v2',
  selectLayer: -1,
  imgContextTokenId: 151648,
  train: preset('stage2'),
});
