/**
 * InternVL's projector (`mlp1`): pixel shuffle by `downsample_ratio`, then LayerNorm -> Linear ->
 * GELU -> Linear. Indices 0, 1, 3 mirror the nn.Sequential (index 2 is the parameter-free GELU).
 */
import { Module, fail, type Tensor } from '../dsl/module.ts';
import * as op from '../ops/index.ts';
import { LayerNorm, Linear, gelu, reshape } from '../nn/layers.ts';

export type PsVersion = 'v1' | 'v2';

export interface ProjectorConfig {
  /** ViT width. */
  visionHidden: number;
  /** LLM width. */
  llmHidden: number;
  /** 0.5 merges 2x2 patches into one token (4:1). */
  downsampleRatio: number;
  psVersion: PsVersion;
}

export class Projector extends Module {
  readonly 0: LayerNorm;
  readonly 1: Linear;
  readonly 3: Linear;
  constructor(readonly c: ProjectorConfig) {
    super();
    const merged = c.visionHidden * shuffleFactor(c.downsampleRatio);
    this[0] = new LayerNorm(merged, 1e-5);
    this[1] = new Linear(merged, c.llmHidden);
    this[3] = new Linear(c.llmHidden, c.llmHidden);
  }
  /** [n, tokens, merged] -> [n, tokens, llmHidden]. */
  forward(x: Tensor): Tensor {
    return this[3].call(gelu(this[1].call(this[0].call(x))));
  }
}

/** How many patches merge into one token: 1 / ratio^2 (4 for 0.5). */
export function shuffleFactor(ratio: number): number {
  const f = 1 / (ratio * ratio);
  if (!Number.isInteger(Math.round(f * 1e6) / 1e6)) throw new Error(`downsample_ratio ${ratio} does not merge a whole number of patches`);
  return Math.round(f);
}

/**
 * InternVL's pixel_shuffle on x [n, w, h, c] (scale r): view [n, w, h*r, c/r], swap the middle
 * axes, view [n, h*r, w*r, c/r^2]; v2 swaps the middle axes once more. Returns [n, tokens, c/r^2].
 */
export function pixelShuffle(x: Tensor, ratio: number, version: PsVersion): Tensor {
  const [, w, h, c] = x.shape as [unknown, number, number, number];
  const hs = h * ratio;
  const ws = w * ratio;
  if (!Number.isInteger(hs) || !Number.isInteger(ws)) fail(`pixel shuffle: a ${w}x${h} patch grid does not divide by downsample_ratio ${ratio}`);
  let y = reshape(x, [0, w, hs, Math.round(c / ratio)]);
  y = op.Transpose(y, { perm: [0, 2, 1, 3] });
  y = reshape(y, [0, hs, ws, Math.round(c / (ratio * ratio))]);
  if (version === 'v2') y = op.Transpose(y, { perm: [0, 2, 1, 3] });
  // hs * ws, not -1: with zero tiles ONNX cannot infer a -1 beside a copied 0.
  return reshape(y, [0, hs * ws, Math.round(c / (ratio * ratio))]);
}
