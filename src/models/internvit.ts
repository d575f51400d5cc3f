/**
 * InternViT (OpenGVLab `modeling_intern_vit.py`): conv patch embedding, class token, position
 * embedding, pre-norm encoder layers with layer scale. Covers InternViT-300M (LayerNorm, qkv bias)
 * and InternViT-6B (RMSNorm, qk normalization, no qkv bias).
 */
import { Module, ModuleList, fail, type Tensor } from '../dsl/module.ts';
import type { Param } from '../ir/graph.ts';
import * as op from '../ops/index.ts';
import { i64, INT64_MAX } from '../dsl/constants.ts';
import { LayerNorm, Linear, RMSNorm, gelu, reshape } from '../nn/layers.ts';
import { fullAttention } from '../nn/attention.ts';
import { checkViTOptions } from './check-options.ts';
import type { InternViTConfig } from './internvit-config.ts';

type Norm = LayerNorm | RMSNorm;
const makeNorm = (c: InternViTConfig): Norm => (c.norm === 'rms_norm' ? new RMSNorm(c.hidden, c.eps) : new LayerNorm(c.hidden, c.eps));

/** Mirrors InternVisionEmbeddings. */
export class InternVisionEmbeddings extends Module {
  readonly class_embedding: Param;
  readonly patch_embedding: Conv2dPatch;
  readonly position_embedding: Param;
  constructor(readonly c: InternViTConfig) {
    super();
    const grid = c.imageSize / c.patchSize;
    this.class_embedding = this.param([1, 1, c.hidden], { kind: 'normal', std: 1 });
    this.patch_embedding = new Conv2dPatch(3, c.hidden, c.patchSize);
    this.position_embedding = this.param([1, grid * grid + 1, c.hidden], { kind: 'normal', std: 1 });
  }

  /** pixels [n, 3, S, S] -> [n, 1 + (S/p)^2, C]. */
  forward(pixels: Tensor): Tensor {
    const c = this.c;
    const patches = this.patch_embedding.call(pixels);
    const grid = patches.shape[2] as number;
    // Static sizes, no -1: ONNX cannot infer a -1 beside a copied 0, and zero tiles (a text-only request) must run.
    const tokens = op.Transpose(reshape(patches, [0, 0, grid * grid]), { perm: [0, 2, 1] });
    const batch = op.Shape(tokens, { start: 0, end: 1 });
    const cls = op.Expand(this.class_embedding.value, op.Concat([batch, i64([1, c.hidden])], { axis: 0 }));
    const embeddings = op.Concat([cls, tokens], { axis: 1 });
    return op.Add(embeddings, this.positions(grid));
  }

  /** Position embedding for a `grid` x `grid` patch grid, bicubic-resized as the official code does. */
  private positions(grid: number): Tensor {
    const c = this.c;
    const stored = c.imageSize / c.patchSize;
    if (grid === stored) return this.position_embedding.value;
    const pos = this.position_embedding.value;
    const clsPos = op.Slice(pos, i64([0]), i64([1]), i64([1]));
    const patchPos = op.Slice(pos, i64([1]), i64([INT64_MAX]), i64([1]));
    const image = op.Transpose(reshape(patchPos, [1, stored, stored, c.hidden]), { perm: [0, 3, 1, 2] });
    const resized = op.Resize(image, undefined, undefined, i64([1, c.hidden, grid, grid]), {
      mode: 'cubic',
      cubic_coeff_a: -0.75,
      coordinate_transformation_mode: 'half_pixel',
    });
    const back = op.Transpose(reshape(resized, [1, c.hidden, grid * grid]), { perm: [0, 2, 1] });
    return op.Concat([clsPos, back], { axis: 1 });
  }
}

/** nn.Conv2d with kernel = stride = patch size. */
export class Conv2dPatch extends Module {
  readonly weight: Param;
  readonly bias: Param;
  constructor(
    inChannels: number,
    readonly outChannels: number,
    readonly patch: number,
  ) {
    super();
    const bound = 1 / Math.sqrt(inChannels * patch * patch);
    this.weight = this.param([outChannels, inChannels, patch, patch], { kind: 'uniform', bound });
    this.bias = this.param([outChannels], { kind: 'uniform', bound });
  }
  forward(x: Tensor): Tensor {
    const p = this.patch;
    return op.Conv(x, this.weight.value, this.bias.value, { kernel_shape: [p, p], strides: [p, p] });
  }
}

/** Mirrors InternAttention. */
export class InternAttention extends Module {
  readonly qkv: Linear;
  readonly q_norm: RMSNorm | undefined;
  readonly k_norm: RMSNorm | undefined;
  readonly proj: Linear;
  constructor(readonly c: InternViTConfig) {
    super();
    this.qkv = new Linear(c.hidden, 3 * c.hidden, { bias: c.qkvBias });
    this.q_norm = c.qkNorm ? new RMSNorm(c.hidden, c.qkNormEps ?? c.eps) : undefined;
    this.k_norm = c.qkNorm ? new RMSNorm(c.hidden, c.qkNormEps ?? c.eps) : undefined;
    this.proj = new Linear(c.hidden, c.hidden);
  }
  forward(x: Tensor): Tensor {
    const { hidden, heads } = this.c;
    const headDim = hidden / heads;
    const qkv = this.qkv.call(x);
    const part = (i: number) => op.Slice(qkv, i64([i * hidden]), i64([(i + 1) * hidden]), i64([-1]));
    // qk normalization runs over all heads together, before the split into heads.
    const q = this.q_norm ? this.q_norm.call(part(0)) : part(0);
    const k = this.k_norm ? this.k_norm.call(part(1)) : part(1);
    const toHeads = (t: Tensor) => reshape(t, [0, 0, heads, headDim]);
    return this.proj.call(fullAttention(toHeads(q), toHeads(k), toHeads(part(2)), heads, headDim));
  }
}

/** Mirrors InternMLP. */
export class InternMLP extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(c: InternViTConfig) {
    super();
    this.fc1 = new Linear(c.hidden, c.intermediate);
    this.fc2 = new Linear(c.intermediate, c.hidden);
  }
  forward(x: Tensor): Tensor {
    return this.fc2.call(gelu(this.fc1.call(x)));
  }
}

/** Mirrors InternVisionEncoderLayer. */
export class InternVisionEncoderLayer extends Module {
  readonly attn: InternAttention;
  readonly mlp: InternMLP;
  readonly norm1: Norm;
  readonly norm2: Norm;
  readonly ls1: Param;
  readonly ls2: Param;
  constructor(c: InternViTConfig) {
    super();
    this.attn = new InternAttention(c);
    this.mlp = new InternMLP(c);
    this.norm1 = makeNorm(c);
    this.norm2 = makeNorm(c);
    const init = { kind: 'constant', value: c.layerScaleInit ?? 0.1 } as const;
    this.ls1 = this.param([c.hidden], init);
    this.ls2 = this.param([c.hidden], init);
  }
  forward(h: Tensor): Tensor {
    const a = op.Add(h, op.Mul(this.attn.call(this.norm1.call(h)), this.ls1.value));
    return op.Add(a, op.Mul(this.mlp.call(this.norm2.call(a)), this.ls2.value));
  }
}

export class InternVisionEncoder extends Module {
  readonly layers: ModuleList<InternVisionEncoderLayer>;
  constructor(c: InternViTConfig) {
    super();
    this.layers = new ModuleList(Array.from({ length: c.layers }, () => new InternVisionEncoderLayer(c)));
  }
  /** Runs the first `count` layers. */
  forward(h: Tensor, count: number): Tensor {
    for (let i = 0; i < count; i++) h = this.layers.at(i).call(h);
    return h;
  }
}

/** Mirrors InternVisionModel. */
export class InternVisionModel extends Module {
  readonly embeddings: InternVisionEmbeddings;
  readonly encoder: InternVisionEncoder;
  constructor(readonly config: InternViTConfig) {
    super();
    this.embeddings = new InternVisionEmbeddings(config);
    this.encoder = new InternVisionEncoder(config);
  }
  /** The modules InternVL's `wrap_backbone_lora` wraps (PEFT target_modules). */
  loraTargets(): readonly string[] {
    return ['attn.qkv', 'attn.proj', 'mlp.fc1', 'mlp.fc2'];
  }
  /**
   * Hidden state `selectLayer` of (embeddings, after layer 1, ..., after layer L), as InternVL's
   * `select_layer`: -1 is the last. Layers past it are not run (their parameters stay declared).
   */
  forward(pixels: Tensor, selectLayer: number): Tensor {
    const L = this.config.layers;
    const count = selectLayer < 0 ? L + 1 + selectLayer : selectLayer;
    if (count < 0 || count > L) fail(`select_layer ${selectLayer} is out of range for ${L} layers`);
    return this.encoder.call(this.embeddings.call(pixels), count);
  }
}

export function internViT(config: InternViTConfig): InternVisionModel {
  checkViTOptions('internViT', config);
  return new InternVisionModel(config);
}

/** InternViT-300M-448px (its config.json): the vision tower of InternVL2 / 2.5 / 3 up to 14B. */
export function internViT300M(): InternVisionModel {
  return internViT({ hidden: 1024, heads: 16, layers: 24, intermediate: 4096, imageSize: 448, patchSize: 14, norm: 'layer_norm', qkvBias: true, qkNorm: false, eps: 1e-6 });
}

/** InternViT-6B-448px-V1-5 / -V2_5 (their config.json): the vision tower of InternVL 26B and up. */
export function internViT6B(): InternVisionModel {
  return internViT({ hidden: 3200, heads: 25, layers: 45, intermediate: 12800, imageSize: 448, patchSize: 14, norm: 'rms_norm', qkvBias: false, qkNorm: true, eps: 1e-6 });
}
