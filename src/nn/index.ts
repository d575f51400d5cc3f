/** Shared building blocks for model files. */
export { Linear, LayerNorm, RMSNorm, Embedding, gelu, silu, reshape, rmsNormalize } from './layers.ts';
export { causalGqa, causalMask, fullAttention } from './attention.ts';
export { rotaryTables, applyRotary, type RopeConfig, type RotaryTables, type RopeScaling } from './rotary.ts';
