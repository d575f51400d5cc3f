/**
 * InternViT's hyper-parameters: a type of its own, shared by the model (internvit.ts), its option
 * check (check-options.ts) and the config readers, so none of them imports another for it.
 */
export interface InternViTConfig {
  hidden: number;
  heads: number;
  layers: number;
  intermediate: number;
  imageSize: number;
  patchSize: number;
  norm: 'layer_norm' | 'rms_norm';
  qkvBias: boolean;
  qkNorm: boolean;
  eps: number;
  /** eps of q_norm / k_norm when it is not `eps` (transformers' InternVLVisionAttention fixes 1e-6). */
  qkNormEps?: number;
  /** Layer-scale init (config.initializer_factor). */
  layerScaleInit?: number;
}
