/**
 * The Hugging Face-native InternVL layout (transformers' `InternVLForConditionalGeneration`, the
 * OpenGVLab `-hf` repositories), as data: which checkpoint key(s) hold each graph parameter. The
 * graph is the same InternVLChatModel as for the original layout, so its parameters keep their
 * unified names (`vision_model.encoder.layers.0.attn.qkv.weight`); only the keys they are read
 * from differ. q/k/v saved as three tensors are concatenated along axis 0 into the fused `qkv`.
 *
 * Two spellings exist: transformers 4.52-4.x save the legacy keys (`vision_tower.*`,
 * `multi_modal_projector.*`, `language_model.model.*`, `language_model.lm_head.weight`);
 * transformers 5 saves its module paths (`model.vision_tower.*`, `model.multi_modal_projector.*`,
 * `model.language_model.*`, `lm_head.weight`). Both load in transformers 5, so both are accepted.
 */
import { IDENTITY_RULES, KeyLayout, type PrefixMap, type RenameRule } from '../dsl/layout.ts';

/** InternViT (unified, under `vision_model.`) -> InternVLVisionModel (under the vision prefix). */
export const HF_VISION_RULES: RenameRule[] = [
  { from: 'embeddings.class_embedding', to: 'embeddings.cls_token' },
  { from: 'embeddings.patch_embedding.weight', to: 'embeddings.patch_embeddings.projection.weight' },
  { from: 'embeddings.patch_embedding.bias', to: 'embeddings.patch_embeddings.projection.bias' },
  { from: 'embeddings.position_embedding', to: 'embeddings.position_embeddings' },
  {
    from: 'encoder.layers.{n}.attn.qkv.weight',
    to: ['encoder.layer.{n}.attention.q_proj.weight', 'encoder.layer.{n}.attention.k_proj.weight', 'encoder.layer.{n}.attention.v_proj.weight'],
  },
  {
    from: 'encoder.layers.{n}.attn.qkv.bias',
    to: ['encoder.layer.{n}.attention.q_proj.bias', 'encoder.layer.{n}.attention.k_proj.bias', 'encoder.layer.{n}.attention.v_proj.bias'],
  },
  { from: 'encoder.layers.{n}.attn.proj.weight', to: 'encoder.layer.{n}.attention.projection_layer.weight' },
  { from: 'encoder.layers.{n}.attn.proj.bias', to: 'encoder.layer.{n}.attention.projection_layer.bias' },
  { from: 'encoder.layers.{n}.attn.q_norm.weight', to: 'encoder.layer.{n}.attention.q_norm.weight' },
  { from: 'encoder.layers.{n}.attn.k_norm.weight', to: 'encoder.layer.{n}.attention.k_norm.weight' },
  { from: 'encoder.layers.{n}.norm1.weight', to: 'encoder.layer.{n}.layernorm_before.weight' },
  { from: 'encoder.layers.{n}.norm1.bias', to: 'encoder.layer.{n}.layernorm_before.bias' },
  { from: 'encoder.layers.{n}.norm2.weight', to: 'encoder.layer.{n}.layernorm_after.weight' },
  { from: 'encoder.layers.{n}.norm2.bias', to: 'encoder.layer.{n}.layernorm_after.bias' },
  { from: 'encoder.layers.{n}.ls1', to: 'encoder.layer.{n}.lambda_1' },
  { from: 'encoder.layers.{n}.ls2', to: 'encoder.layer.{n}.lambda_2' },
  { from: 'encoder.layers.{n}.mlp.fc1.weight', to: 'encoder.layer.{n}.mlp.fc1.weight' },
  { from: 'encoder.layers.{n}.mlp.fc1.bias', to: 'encoder.layer.{n}.mlp.fc1.bias' },
  { from: 'encoder.layers.{n}.mlp.fc2.weight', to: 'encoder.layer.{n}.mlp.fc2.weight' },
  { from: 'encoder.layers.{n}.mlp.fc2.bias', to: 'encoder.layer.{n}.mlp.fc2.bias' },
];

/** `mlp1` (nn.Sequential indices) -> InternVLMultiModalProjector. */
export const HF_PROJECTOR_RULES: RenameRule[] = [
  { from: '0.weight', to: 'layer_norm.weight' },
  { from: '0.bias', to: 'layer_norm.bias' },
  { from: '1.weight', to: 'linear_1.weight' },
  { from: '1.bias', to: 'linear_1.bias' },
  { from: '3.weight', to: 'linear_2.weight' },
  { from: '3.bias', to: 'linear_2.bias' },
];

export type HFSpelling = 'transformers-4' | 'transformers-5';

export const HF_SPELLINGS: Record<HFSpelling, PrefixMap[]> = {
  'transformers-4': [
    { graph: 'vision_model.', checkpoint: 'vision_tower.', rules: HF_VISION_RULES },
    { graph: 'mlp1.', checkpoint: 'multi_modal_projector.', rules: HF_PROJECTOR_RULES },
    { graph: 'language_model.', checkpoint: 'language_model.', rules: IDENTITY_RULES },
  ],
  'transformers-5': [
    { graph: 'vision_model.', checkpoint: 'model.vision_tower.', rules: HF_VISION_RULES },
    { graph: 'mlp1.', checkpoint: 'model.multi_modal_projector.', rules: HF_PROJECTOR_RULES },
    { graph: 'language_model.model.', checkpoint: 'model.language_model.', rules: IDENTITY_RULES },
    { graph: 'language_model.lm_head.', checkpoint: 'lm_head.', rules: IDENTITY_RULES },
  ],
};

/** Path B: a standalone `InternVLVisionModel` checkpoint (keys without `vision_tower.`). */
export const HF_VISION_STANDALONE: PrefixMap[] = [{ graph: 'vision_model.', checkpoint: '', rules: HF_VISION_RULES }];

/** The spelling a checkpoint's keys use: transformers 5 puts everything but lm_head under `model.`. */
export function spellingOf(keys: readonly string[]): HFSpelling {
  return keys.some((k) => k.startsWith('model.')) ? 'transformers-5' : 'transformers-4';
}

/** The layout of a unified HF-native checkpoint with these keys. */
export function hfLayout(keys: readonly string[]): KeyLayout {
  const spelling = spellingOf(keys);
  return new KeyLayout(`hf:${spelling}`, HF_SPELLINGS[spelling]);
}

/** The layout of a standalone HF-native vision checkpoint (Path B). */
export function hfVisionLayout(): KeyLayout {
  return new KeyLayout('hf:vision', HF_VISION_STANDALONE);
}
