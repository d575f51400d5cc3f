/**
 * Where each part of an InternVL model's weights comes from, as data. Path A reads every parameter
 * from the unified checkpoint under its own name. Path B assembles: the ViT from a standalone
 * InternViT checkpoint (keys without `vision_model.`), the LLM from a standalone LLM checkpoint
 * (keys without `language_model.`), and a new projector (or one saved as `mlp1.*`).
 */
import { identityLayout, partLayout, type KeyLayout } from '../dsl/layout.ts';

export type SourceRole = 'unified' | 'vision' | 'llm' | 'projector';

/** The original layout of a source in each role. */
export function originalLayout(role: SourceRole): KeyLayout {
  if (role === 'vision') return partLayout('vision_model.');
  if (role === 'llm') return partLayout('language_model.');
  if (role === 'projector') return partLayout('mlp1.', 'mlp1.');
  return identityLayout();
}

/** Checkpoint keys that are not parameters of the graph but are safe to leave unused. */
export const IGNORABLE_KEYS: RegExp[] = [
  // Rotary caches some exporters save as buffers; the graph computes them.
  /(^|\.)rotary_emb\.inv_freq$/,
  // transformers' InternVLVisionEmbeddings.mask_token (use_mask_token): masked image modeling only.
  /(^|\.)embeddings\.mask_token$/,
];

/**
 * Keys a checkpoint may hold for a head tied to the embedding (some exporters save the duplicate):
 * unified key -> the parameter it duplicates.
 */
export const TIED_DUPLICATES: Record<string, string> = {
  'language_model.lm_head.weight': 'language_model.model.embed_tokens.weight',
  'language_model.output.weight': 'language_model.model.tok_embeddings.weight',
};

/** What the binder needs from the family besides layouts. */
export const INTERNVL_BINDING = { ignorableKeys: IGNORABLE_KEYS, tiedDuplicates: TIED_DUPLICATES };
