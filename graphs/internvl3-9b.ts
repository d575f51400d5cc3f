/**
 * InternVL3-9B, as published on Hugging Face: model card `OpenGVLab/InternVL3-9B`, dimensions from its config.json.
 * Vision: InternViT-300M-448px-V2_5. LLM: internlm/internlm3-8b-instruct (InternLM3).
 * The checkpoint ships InternLM3 in the InternLM2 layout (the repository carries configuration_internlm2.py /
 * modeling_internlm2.py: packed wqkv, w1/w2/w3, no biases), so the LLM is internlm2() with InternLM3-8B dimensions.
 * vocab 128512 is InternLM3's padded vocabulary; the 9 InternVL tokens fit inside it.
 * <IMG_CONTEXT> id not set here (not verified): it comes from the checkpoint tokenizer or --img-context-token-id.
 */
import { internvl, internViT300M, internlm2, preset } from 'vlmc';

export default internvl({
  name: 'internvl3-9b',
  vision: internViT300M(),
  llm: internlm2({
    hidden: 4096,
    heads: 32,
    kvHeads: 2,
    layers: 48,
    intermediate: 10240,
    vocab: 128_512,
    rmsNormEps: 1e-5,
    ropeTheta: 50_000_000,
    maxPositions: 32768,
    ropeScaling: { type: 'dynamic', factor: 6.0 },
    tieEmbeddings: false,
    padTokenId: 2,
  }),
  downsampleRatio: 0.5,
  psVersion: 'v2',
  selectLayer: -1,
  train: preset('stage2'),
});
