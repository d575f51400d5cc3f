/**
 * InternVL2-Llama3-76B, as published on Hugging Face: model card `OpenGVLab/InternVL2-Llama3-76B`, dimensions from its config.json.
 * Vision: InternViT-6B-448px-V1-5. LLM: NousResearch/Hermes-2-Theta-Llama-3-70B (Llama 3).
 * vocab 128265 = Llama-3 tokenizer (128256) + 9 InternVL tokens.
 * <IMG_CONTEXT> id not set here (not verified): it comes from the checkpoint tokenizer or --img-context-token-id.
 */
import { internvl, internViT6B, llama, preset } from 'vlmc';

export default internvl({
  name: 'internvl2-76b',
  vision: internViT6B(),
  llm: llama({
    hidden: 8192,
    heads: 64,
    kvHeads: 8,
    layers: 80,
    intermediate: 28672,
    vocab: 128_265,
    rmsNormEps: 1e-5,
    ropeTheta: 500_000,
    maxPositions: 8192,
    tieEmbeddings: false,
  }),
  downsampleRatio: 0.5,
  psVersion: 'v2',
  selectLayer: -1,
  train: preset('stage2'),
});
