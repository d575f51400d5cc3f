/**
 * InternVL2-40B, as published on Hugging Face: model card `OpenGVLab/InternVL2-40B`, dimensions from its config.json.
 * Vision: InternViT-6B-448px-V1-5. LLM: NousResearch/Nous-Hermes-2-Yi-34B (Llama architecture).
 * vocab 64007 = Yi tokenizer (64000) + the 7 tokens of added_tokens.json (<IMG_CONTEXT> = 64000 ... </box> = 64006);
 * not checked against the checkpoint (no exact parameter total was found; see test/param-counts.test.ts).
 */
import { internvl, internViT6B, llama, preset } from 'vlmc';

export default internvl({
  name: 'internvl2-40b',
  vision: internViT6B(),
  llm: llama({
    hidden: 7168,
    heads: 56,
    kvHeads: 8,
    layers: 60,
    intermediate: 20480,
    vocab: 64007,
    rmsNormEps: 1e-5,
    ropeTheta: 5_000_000,
    maxPositions: 4096,
    tieEmbeddings: false,
    padTokenId: 0,
  }),
  downsampleRatio: 0.5,
  psVersion: 'v2',
  selectLayer: -1,
  imgContextTokenId: 64000,
  train: preset('stage2'),
});
