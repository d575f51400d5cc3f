/**
 * An independent, deliberately naive float64 reference of the InternVL forward pass, written from
 * the official sources rather than from vlmc's own code (which is what it checks):
 *
 * - OpenGVLab/InternVL internvl_chat/internvl/model/internvl_chat/modeling_intern_vit.py
 *   (InternVisionEmbeddings incl. `_get_pos_embed` bicubic resize, InternAttention with
 *   qk_normalization over the full width, InternVisionEncoderLayer with NORM2FN + ls1/ls2)
 * - .../modeling_internvl_chat.py (`extract_feature`, `pixel_shuffle`, `forward`'s splice and loss)
 * - .../internlm2/modeling_internlm2.py (grouped `wqkv`, linear / dynamic NTK rotary)
 * - .../phi3/modeling_phi3.py (packed `qkv_proj` / `gate_up_proj`, Phi3SuScaledRotaryEmbedding)
 * - huggingface/transformers models/llama, models/qwen2, models/qwen3 (per-head q/k RMSNorm), modeling_rope_utils.py (default, linear,
 *   dynamic, llama3, longrope)
 *
 * Everything is Float64Array math with explicit loops. Nothing here imports vlmc's model, IR or
 * runtime code; the only project import is the safetensors reader, to load checkpoint tensors.
 */
import { readFileSync, existsSync } from 'node:fs';
import * as nodePath from 'node:path';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.ts';

export type Weights = Map<string, Float64Array>;
type Json = Record<string, unknown>;

export interface ReferenceInputs {
  /** [tiles, 3, H, W], row-major. */
  pixelValues: ArrayLike<number>;
  pixelShape: readonly [number, number, number, number];
  /** [batch, seq], row-major. */
  inputIds: ArrayLike<number | bigint>;
  inputShape: readonly [number, number];
  /** [tiles]. */
  imageFlags: ArrayLike<number | bigint>;
  /** [batch, seq]; -100 is ignored. When given, the mean shifted cross-entropy is returned. */
  labels?: ArrayLike<number | bigint>;
}

export interface ReferenceOutputs {
  /** mlp1 output for every tile: [tiles, tokens_per_tile, llm_hidden]. */
  vitEmbeds: Float64Array;
  vitEmbedsShape: number[];
  /** [batch, seq, vocab]. */
  logits: Float64Array;
  logitsShape: number[];
  loss?: number;
  /** True when the official code would take its `except` branch (token count mismatch). */
  ignoreFlag: boolean;
}

// ---------------------------------------------------------------------------------------------
// Loading weights

/** Reads a unified checkpoint folder (model.safetensors or an index + shards) as float64. */
export async function loadWeights(dir: string): Promise<Weights> {
  const index = nodePath.join(dir, 'model.safetensors.index.json');
  let files: string[];
  if (existsSync(index)) {
    const map = (JSON.parse(readFileSync(index, 'utf8')) as { weight_map: Record<string, string> }).weight_map;
    files = [...new Set(Object.values(map))].sort();
  } else {
    files = ['model.safetensors'];
  }
  const out: Weights = new Map();
  for (const f of files) {
    const st = await SafetensorsFile.open(nodePath.join(dir, f));
    try {
      for (const key of st.keys()) {
        if (out.has(key)) throw new Error(`${key} appears in two shards`);
        out.set(key, Float64Array.from(await st.readAsFloat32(st.entry(key))));
      }
    } finally {
      await st.close();
    }
  }
  return out;
}

export function loadConfig(dir: string): Json {
  return JSON.parse(readFileSync(nodePath.join(dir, 'config.json'), 'utf8')) as Json;
}

// ---------------------------------------------------------------------------------------------
// Small numeric kernels

function w(weights: Weights, key: string, size?: number): Float64Array {
  const t = weights.get(key);
  if (!t) throw new Error(`reference: weight '${key}' is missing`);
  if (size !== undefined && t.length !== size) throw new Error(`reference: weight '${key}' has ${t.length} elements, expected ${size}`);
  return t;
}

function wOpt(weights: Weights, key: string, size: number): Float64Array | undefined {
  return weights.has(key) ? w(weights, key, size) : undefined;
}

/** y[r, o] = sum_i x[r, i] * W[o, i] + b[o] (torch.nn.Linear). */
function linear(x: Float64Array, rows: number, inF: number, W: Float64Array, outF: number, b?: Float64Array): Float64Array {
  if (W.length !== inF * outF) throw new Error(`linear: weight has ${W.length} elements, expected ${outF}x${inF}`);
  const y = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outF; o++) {
      let s = b ? b[o]! : 0;
      for (let i = 0; i < inF; i++) s += x[r * inF + i]! * W[o * inF + i]!;
      y[r * outF + o] = s;
    }
  }
  return y;
}

function rmsNorm(x: Float64Array, rows: number, dim: number, weight: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[r * dim + i]! ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) y[r * dim + i] = weight[i]! * (x[r * dim + i]! * inv);
  }
  return y;
}

function layerNorm(x: Float64Array, rows: number, dim: number, weight: Float64Array, bias: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < dim; i++) mean += x[r * dim + i]!;
    mean /= dim;
    let v = 0;
    for (let i = 0; i < dim; i++) v += (x[r * dim + i]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / dim + eps);
    for (let i = 0; i < dim; i++) y[r * dim + i] = (x[r * dim + i]! - mean) * inv * weight[i]! + bias[i]!;
  }
  return y;
}

/**
 * erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_n 2^n x^(2n+1) / (1*3*...*(2n+1)): every term is positive,
 * so there is no cancellation and the sum is accurate to float64 rounding.
 */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax > 6.5) return Math.sign(x);
  let term = ax;
  let sum = ax;
  for (let n = 1; n < 500; n++) {
    term *= (2 * ax * ax) / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  const r = (2 / Math.sqrt(Math.PI)) * Math.exp(-ax * ax) * sum;
  return x < 0 ? -r : r;
}

/** nn.GELU() / ACT2FN['gelu']: the exact erf form. */
function gelu(x: number): number {
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

function softmaxInPlace(a: Float64Array, n: number): void {
  let m = -Infinity;
  for (let i = 0; i < n; i++) m = Math.max(m, a[i]!);
  let s = 0;
  for (let i = 0; i < n; i++) {
    a[i] = Math.exp(a[i]! - m);
    s += a[i]!;
  }
  for (let i = 0; i < n; i++) a[i] = a[i]! / s;
}

function addInPlace(a: Float64Array, b: Float64Array): void {
  for (let i = 0; i < a.length; i++) a[i] = a[i]! + b[i]!;
}

// ---------------------------------------------------------------------------------------------
// Bicubic resize (torch.nn.functional.interpolate, mode='bicubic', align_corners=False)

/** For each output index: the 4 clamped source indices and their cubic-convolution weights (A = -0.75). */
function bicubicTaps(inSize: number, outSize: number): { idx: number[]; wt: number[] }[] {
  const A = -0.75;
  const cc1 = (x: number) => ((A + 2) * x - (A + 3)) * x * x + 1; // |x| <= 1
  const cc2 = (x: number) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; // 1 < |x| < 2
  const scale = inSize / outSize; // area_pixel_compute_scale with no scale_factor given
  const taps: { idx: number[]; wt: number[] }[] = [];
  for (let d = 0; d < outSize; d++) {
    // area_pixel_compute_source_index(cubic=true): not clamped at 0.
    const real = scale * (d + 0.5) - 0.5;
    const i0 = Math.floor(real);
    const t = real - i0;
    const wt = [cc2(t + 1), cc1(t), cc1(1 - t), cc2(2 - t)];
    const idx = [-1, 0, 1, 2].map((k) => Math.min(Math.max(i0 + k, 0), inSize - 1));
    taps.push({ idx, wt });
  }
  return taps;
}

/** [inH, inW, C] grid (channel last) -> [outH, outW, C], separable bicubic. */
export function bicubicResize(src: Float64Array, inH: number, inW: number, C: number, outH: number, outW: number): Float64Array {
  const ty = bicubicTaps(inH, outH);
  const tx = bicubicTaps(inW, outW);
  const out = new Float64Array(outH * outW * C);
  for (let oy = 0; oy < outH; oy++) {
    for (let ox = 0; ox < outW; ox++) {
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let a = 0; a < 4; a++) {
          let row = 0;
          for (let b = 0; b < 4; b++) row += tx[ox]!.wt[b]! * src[(ty[oy]!.idx[a]! * inW + tx[ox]!.idx[b]!) * C + c]!;
          s += ty[oy]!.wt[a]! * row;
        }
        out[(oy * outW + ox) * C + c] = s;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// InternViT

interface VitSpec {
  hidden: number;
  heads: number;
  layers: number;
  inter: number;
  imageSize: number;
  patch: number;
  norm: 'rms_norm' | 'layer_norm';
  qkvBias: boolean;
  qkNorm: boolean;
  eps: number;
  qkNormEps: number;
}

function vitSpec(vc: Json): VitSpec {
  const act = (vc.hidden_act as string | undefined) ?? 'gelu';
  if (act !== 'gelu') throw new Error(`reference: vision hidden_act '${act}' not implemented`);
  return {
    hidden: vc.hidden_size as number,
    heads: vc.num_attention_heads as number,
    layers: vc.num_hidden_layers as number,
    inter: vc.intermediate_size as number,
    imageSize: vc.image_size as number,
    patch: vc.patch_size as number,
    norm: ((vc.norm_type as string | undefined) ?? 'rms_norm') as VitSpec['norm'],
    qkvBias: Boolean(vc.qkv_bias ?? false),
    qkNorm: Boolean(vc.qk_normalization ?? false),
    eps: (vc.layer_norm_eps as number | undefined) ?? 1e-6,
    // Not an InternVisionConfig field: tests of the transformers-native InternVL (which fixes the
    // qk-norm eps at 1e-6 whatever layer_norm_eps is) set it; the original code uses layer_norm_eps.
    qkNormEps: (vc.qk_norm_eps as number | undefined) ?? (vc.layer_norm_eps as number | undefined) ?? 1e-6,
  };
}

function vitNorm(s: VitSpec, W: Weights, prefix: string, x: Float64Array, rows: number): Float64Array {
  const C = s.hidden;
  if (s.norm === 'rms_norm') return rmsNorm(x, rows, C, w(W, `${prefix}.weight`, C), s.eps);
  return layerNorm(x, rows, C, w(W, `${prefix}.weight`, C), w(W, `${prefix}.bias`, C), s.eps);
}

/** InternVisionEmbeddings.forward for one tile: [1 + gh*gw, C]. */
function vitEmbeddings(s: VitSpec, W: Weights, px: ArrayLike<number>, tile: number, H: number, Wd: number): { x: Float64Array; gh: number; gw: number } {
  const C = s.hidden;
  const p = s.patch;
  const gh = Math.floor(H / p);
  const gw = Math.floor(Wd / p);
  const N = 1 + gh * gw;
  const pw = w(W, 'vision_model.embeddings.patch_embedding.weight', C * 3 * p * p);
  const pb = w(W, 'vision_model.embeddings.patch_embedding.bias', C);
  const cls = w(W, 'vision_model.embeddings.class_embedding', C);
  const g0 = Math.floor(s.imageSize / p);
  const pos = w(W, 'vision_model.embeddings.position_embedding', (1 + g0 * g0) * C);
  const x = new Float64Array(N * C);
  const base = tile * 3 * H * Wd;
  for (let gy = 0; gy < gh; gy++) {
    for (let gx = 0; gx < gw; gx++) {
      const t = 1 + gy * gw + gx;
      for (let o = 0; o < C; o++) {
        let acc = pb[o]!;
        for (let c = 0; c < 3; c++) {
          for (let ky = 0; ky < p; ky++) {
            for (let kx = 0; kx < p; kx++) {
              acc += pw[((o * 3 + c) * p + ky) * p + kx]! * px[base + (c * H + gy * p + ky) * Wd + gx * p + kx]!;
            }
          }
        }
        x[t * C + o] = acc;
      }
    }
  }
  // Position embedding: the class slot as stored, the patch grid resized bicubically to (gh, gw).
  const grid = bicubicResize(pos.subarray(C), g0, g0, C, gh, gw);
  for (let o = 0; o < C; o++) x[o] = cls[o]! + pos[o]!;
  for (let t = 0; t < gh * gw; t++) for (let o = 0; o < C; o++) x[(1 + t) * C + o] = x[(1 + t) * C + o]! + grid[t * C + o]!;
  return { x, gh, gw };
}

function vitLayer(s: VitSpec, W: Weights, l: number, h: Float64Array, N: number): Float64Array {
  const C = s.hidden;
  const nh = s.heads;
  const hd = C / nh;
  const pre = `vision_model.encoder.layers.${l}`;
  // Attention (InternAttention._naive_attn).
  const xn = vitNorm(s, W, `${pre}.norm1`, h, N);
  const qkv = linear(xn, N, C, w(W, `${pre}.attn.qkv.weight`), 3 * C, s.qkvBias ? w(W, `${pre}.attn.qkv.bias`, 3 * C) : undefined);
  let q: Float64Array = new Float64Array(N * C);
  let k: Float64Array = new Float64Array(N * C);
  const v = new Float64Array(N * C);
  for (let t = 0; t < N; t++) {
    for (let i = 0; i < C; i++) {
      q[t * C + i] = qkv[t * 3 * C + i]!;
      k[t * C + i] = qkv[t * 3 * C + C + i]!;
      v[t * C + i] = qkv[t * 3 * C + 2 * C + i]!;
    }
  }
  if (s.qkNorm) {
    // q_norm / k_norm are InternRMSNorm over the whole embed_dim (heads flattened back together).
    q = rmsNorm(q, N, C, w(W, `${pre}.attn.q_norm.weight`, C), s.qkNormEps);
    k = rmsNorm(k, N, C, w(W, `${pre}.attn.k_norm.weight`, C), s.qkNormEps);
  }
  const ctx = new Float64Array(N * C);
  const scores = new Float64Array(N + 1);
  const scale = hd ** -0.5;
  for (let head = 0; head < nh; head++) {
    for (let i = 0; i < N; i++) {
      for (let j = 0; j < N; j++) {
        let d = 0;
        for (let e = 0; e < hd; e++) d += q[i * C + head * hd + e]! * scale * k[j * C + head * hd + e]!;
        scores[j] = d;
      }
      softmaxInPlace(scores, N);
      for (let e = 0; e < hd; e++) {
        let acc = 0;
        for (let j = 0; j < N; j++) acc += scores[j]! * v[j * C + head * hd + e]!;
        ctx[i * C + head * hd + e] = acc;
      }
    }
  }
  const attn = linear(ctx, N, C, w(W, `${pre}.attn.proj.weight`), C, w(W, `${pre}.attn.proj.bias`, C));
  const ls1 = w(W, `${pre}.ls1`, C);
  const out = Float64Array.from(h);
  for (let t = 0; t < N; t++) for (let i = 0; i < C; i++) out[t * C + i] = out[t * C + i]! + attn[t * C + i]! * ls1[i]!;
  // MLP.
  const xn2 = vitNorm(s, W, `${pre}.norm2`, out, N);
  const f1 = linear(xn2, N, C, w(W, `${pre}.mlp.fc1.weight`), s.inter, w(W, `${pre}.mlp.fc1.bias`, s.inter));
  for (let i = 0; i < f1.length; i++) f1[i] = gelu(f1[i]!);
  const f2 = linear(f1, N, s.inter, w(W, `${pre}.mlp.fc2.weight`), C, w(W, `${pre}.mlp.fc2.bias`, C));
  const ls2 = w(W, `${pre}.ls2`, C);
  for (let t = 0; t < N; t++) for (let i = 0; i < C; i++) out[t * C + i] = out[t * C + i]! + f2[t * C + i]! * ls2[i]!;
  return out;
}

/**
 * hidden_states = (embeddings, after layer 1, ..., after layer L); select_layer indexes it like a
 * Python tuple (negative from the end; -1 is last_hidden_state).
 */
export function selectedHiddenIndex(selectLayer: number, layers: number): number {
  const n = layers + 1;
  const idx = selectLayer < 0 ? n + selectLayer : selectLayer;
  if (idx < 0 || idx >= n) throw new Error(`reference: select_layer ${selectLayer} out of range for ${layers} layers`);
  return idx;
}

// ---------------------------------------------------------------------------------------------
// Pixel shuffle and projector

/**
 * InternVLChatModel.pixel_shuffle on x viewed as [n, w, h, c] (one tile here, n = 1):
 * view(w, h*s, c/s) -> permute -> view(h*s, w*s, c/s^2) -> (v2 only) permute back.
 * `view` on a contiguous tensor keeps the flat order, so only the permutes move data.
 */
export function pixelShuffle(x: Float64Array, wDim: number, hDim: number, c: number, s: number, version: string): { y: Float64Array; rows: number; cols: number; ch: number } {
  const h1 = Math.trunc(hDim * s);
  const c1 = Math.trunc(c / s);
  // permute(1, 0, 2) of [w, h1, c1] -> [h1, w, c1]
  const p1 = new Float64Array(x.length);
  for (let i = 0; i < wDim; i++) for (let j = 0; j < h1; j++) for (let e = 0; e < c1; e++) p1[(j * wDim + i) * c1 + e] = x[(i * h1 + j) * c1 + e]!;
  const w2 = Math.trunc(wDim * s);
  const c2 = Math.trunc(c / (s * s));
  // view as [h1, w2, c2]
  if (version === 'v1') return { y: p1, rows: h1, cols: w2, ch: c2 };
  if (version !== 'v2') throw new Error(`reference: ps_version '${version}'`);
  const p2 = new Float64Array(x.length);
  for (let i = 0; i < h1; i++) for (let j = 0; j < w2; j++) for (let e = 0; e < c2; e++) p2[(j * h1 + i) * c2 + e] = p1[(i * w2 + j) * c2 + e]!;
  return { y: p2, rows: w2, cols: h1, ch: c2 };
}

/** extract_feature for every tile: [tiles, tokens, llm_hidden]. */
function extractFeature(cfg: Json, W: Weights, inp: ReferenceInputs): { out: Float64Array; tokens: number; llmHidden: number } {
  const vc = cfg.vision_config as Json;
  const lc = cfg.llm_config as Json;
  const s = vitSpec(vc);
  const [tiles, ch, H, Wd] = inp.pixelShape;
  if (ch !== 3) throw new Error('reference: pixel_values must have 3 channels');
  const ratio = (cfg.downsample_ratio as number | undefined) ?? 0.5;
  const ps = (cfg.ps_version as string | undefined) ?? 'v1';
  const selectLayer = (cfg.select_layer as number | undefined) ?? -1;
  const target = selectedHiddenIndex(selectLayer, s.layers);
  const llmHidden = lc.hidden_size as number;
  const C = s.hidden;
  const inner = Math.trunc(C / (ratio * ratio));
  const chunks: Float64Array[] = [];
  let tokens = 0;
  for (let t = 0; t < tiles; t++) {
    const { x, gh, gw } = vitEmbeddings(s, W, inp.pixelValues, t, H, Wd);
    const N = 1 + gh * gw;
    let h = x;
    for (let l = 0; l < target; l++) h = vitLayer(s, W, l, h, N);
    // Drop the class token; h = w = sqrt(tokens).
    const side = Math.trunc(Math.sqrt(N - 1));
    if (side * side !== N - 1) throw new Error('reference: patch grid is not square');
    const patches = h.subarray(C);
    const { y, rows, cols, ch: c4 } = pixelShuffle(patches, side, side, C, ratio, ps);
    if (c4 !== inner) throw new Error('reference: pixel shuffle width mismatch');
    const n = rows * cols;
    tokens = n;
    // mlp1 = LayerNorm(eps 1e-5) -> Linear -> GELU -> Linear
    const ln = layerNorm(y, n, inner, w(W, 'mlp1.0.weight', inner), w(W, 'mlp1.0.bias', inner), 1e-5);
    const a = linear(ln, n, inner, w(W, 'mlp1.1.weight'), llmHidden, w(W, 'mlp1.1.bias', llmHidden));
    for (let i = 0; i < a.length; i++) a[i] = gelu(a[i]!);
    chunks.push(linear(a, n, llmHidden, w(W, 'mlp1.3.weight'), llmHidden, w(W, 'mlp1.3.bias', llmHidden)));
  }
  const out = new Float64Array(tiles * tokens * llmHidden);
  chunks.forEach((c, i) => out.set(c, i * tokens * llmHidden));
  return { out, tokens, llmHidden };
}

// ---------------------------------------------------------------------------------------------
// Language models

type Family = 'llama' | 'qwen2' | 'qwen3' | 'qwen3_moe' | 'gpt_oss' | 'internlm2' | 'phi3';

interface LlmSpec {
  family: Family;
  prefix: string;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  layers: number;
  inter: number;
  vocab: number;
  eps: number;
  tie: boolean;
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
}

function familyOf(lc: Json): Family {
  const arch = ((lc.architectures as string[] | undefined) ?? [])[0] ?? '';
  const mt = (lc.model_type as string | undefined) ?? '';
  if (arch === 'InternLM2ForCausalLM' || mt === 'internlm2') return 'internlm2';
  if (arch === 'Phi3ForCausalLM' || mt === 'phi3') return 'phi3';
  if (arch === 'Qwen2ForCausalLM' || mt === 'qwen2') return 'qwen2';
  if (arch === 'Qwen3ForCausalLM' || mt === 'qwen3') return 'qwen3';
  if (arch === 'Qwen3MoeForCausalLM' || mt === 'qwen3_moe') return 'qwen3_moe';
  if (arch === 'GptOssForCausalLM' || mt === 'gpt_oss') return 'gpt_oss';
  if (arch === 'LlamaForCausalLM' || mt === 'llama') return 'llama';
  throw new Error(`reference: LLM '${arch || mt}' not implemented`);
}

function llmSpec(lc: Json): LlmSpec {
  const family = familyOf(lc);
  const act = (lc.hidden_act as string | undefined) ?? 'silu';
  if (act !== 'silu') throw new Error(`reference: LLM hidden_act '${act}' not implemented`);
  const hidden = lc.hidden_size as number;
  const heads = lc.num_attention_heads as number;
  // GptOssConfig defaults attention_bias to true.
  const attnBias = Boolean(lc.attention_bias ?? familyOf(lc) === 'gpt_oss');
  return {
    family,
    prefix: 'language_model',
    hidden,
    heads,
    kvHeads: (lc.num_key_value_heads as number | undefined) ?? heads,
    // Llama honours an explicit head_dim; Qwen3Config defaults it to 128; the others use hidden / heads.
    headDim: family === 'gpt_oss' ? ((lc.head_dim as number | undefined) ?? 64) : family === 'llama' || family === 'qwen3_moe' ? ((lc.head_dim as number | undefined) ?? hidden / heads) : family === 'qwen3' ? ((lc.head_dim as number | undefined) ?? 128) : hidden / heads,
    layers: lc.num_hidden_layers as number,
    inter: lc.intermediate_size as number,
    vocab: lc.vocab_size as number,
    eps: (lc.rms_norm_eps as number | undefined) ?? 1e-6,
    // LlamaConfig, Qwen2Config, Phi3Config and InternLM2Config all default tie_word_embeddings to False.
    tie: Boolean(lc.tie_word_embeddings ?? false),
    qkvBias: family === 'qwen2' ? true : family === 'llama' || family === 'qwen3' || family === 'qwen3_moe' || family === 'gpt_oss' ? attnBias : family === 'internlm2' ? Boolean(lc.bias ?? false) : false,
    oBias: family === 'llama' || family === 'qwen3' || family === 'qwen3_moe' || family === 'gpt_oss' ? attnBias : family === 'internlm2' ? Boolean(lc.bias ?? false) : false,
    mlpBias: family === 'llama' ? Boolean(lc.mlp_bias ?? false) : false,
  };
}

/** Inverse frequencies and the cos/sin multiplier for a sequence whose largest position is seqLen - 1. */
export function ropeParams(lc: Json, headDim: number, seqLen: number): { invFreq: Float64Array; attnFactor: number } {
  const family = familyOf(lc);
  // GptOssConfig: rope_theta 150000 and, without a RoPE dict, YaRN factor 32 over 4096 positions.
  const gptOss = family === 'gpt_oss';
  const base = (lc.rope_theta as number | undefined) ?? (gptOss ? 150000 : 10000);
  const maxPos = (lc.max_position_embeddings as number | undefined) ?? 2048;
  const d = headDim;
  const half = d / 2;
  const defaultInv = (b: number) => Float64Array.from({ length: half }, (_, i) => 1 / b ** ((2 * i) / d));
  const gptOssYarn: Json = { rope_type: 'yarn', factor: 32, beta_fast: 32, beta_slow: 1, truncate: false, original_max_position_embeddings: 4096 };
  const rs = (lc.rope_scaling as Json | null | undefined) ?? (gptOss ? gptOssYarn : undefined);
  if (!rs) return { invFreq: defaultInv(base), attnFactor: 1 };
  const type = (rs.rope_type ?? rs.type) as string;
  switch (type) {
    case 'default':
      return { invFreq: defaultInv(base), attnFactor: 1 };
    case 'linear': {
      // InternLM2: t / factor; transformers: inv_freq / factor (the same angles).
      const f = rs.factor as number;
      return { invFreq: defaultInv(base).map((v) => v / f), attnFactor: 1 };
    }
    case 'dynamic': {
      // Cache built for max_position_embeddings; rebuilt with a larger base once seq_len exceeds it.
      const f = rs.factor as number;
      if (seqLen <= maxPos) return { invFreq: defaultInv(base), attnFactor: 1 };
      const b = base * ((f * seqLen) / maxPos - (f - 1)) ** (d / (d - 2));
      return { invFreq: defaultInv(b), attnFactor: 1 };
    }
    case 'llama3': {
      const factor = rs.factor as number;
      const low = rs.low_freq_factor as number;
      const high = rs.high_freq_factor as number;
      const old = rs.original_max_position_embeddings as number;
      const lowWavelen = old / low;
      const highWavelen = old / high;
      const inv = defaultInv(base);
      const out = new Float64Array(half);
      for (let i = 0; i < half; i++) {
        const wavelen = (2 * Math.PI) / inv[i]!;
        let v = wavelen > lowWavelen ? inv[i]! / factor : inv[i]!;
        const smooth = (old / wavelen - low) / (high - low);
        const medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
        if (medium) v = (1 - smooth) * (v / factor) + smooth * v;
        out[i] = v;
      }
      return { invFreq: out, attnFactor: 1 };
    }
    case 'su':
    case 'longrope': {
      if (family !== 'phi3' && type === 'su') throw new Error("reference: 'su' rope scaling outside Phi-3");
      const orig = (lc.original_max_position_embeddings ?? rs.original_max_position_embeddings ?? maxPos) as number;
      const ext = (seqLen > orig ? rs.long_factor : rs.short_factor) as number[];
      if (ext.length !== half) throw new Error(`reference: longrope factors need ${half} entries`);
      const invFreq = Float64Array.from({ length: half }, (_, i) => 1 / (ext[i]! * base ** ((2 * i) / d)));
      let attnFactor = rs.attention_factor as number | undefined;
      if (attnFactor === undefined) {
        const scale = lc.original_max_position_embeddings !== undefined || rs.original_max_position_embeddings !== undefined ? maxPos / orig : ((rs.factor as number | undefined) ?? 1);
        attnFactor = scale <= 1 ? 1 : Math.sqrt(1 + Math.log(scale) / Math.log(orig));
      }
      return { invFreq, attnFactor };
    }
    case 'proportional': {
      // _compute_proportional_rope_parameters: int(p * head_dim // 2) frequencies over head_dim, then zeros; all / factor.
      const angles = Math.floor((((lc.partial_rotary_factor as number | undefined) ?? 1) * d) / 2);
      const f = (rs.factor as number | undefined) ?? 1;
      return { invFreq: Float64Array.from({ length: half }, (_, i) => (i < angles ? 1 / base ** ((2 * i) / d) : 0) / f), attnFactor: 1 };
    }
    case 'yarn': {
      // transformers 5 _compute_yarn_parameters; original_max: the top-level field, the dict's, max positions.
      const orig = (lc.original_max_position_embeddings ?? rs.original_max_position_embeddings ?? maxPos) as number;
      const factor = (rs.factor as number | null) ?? maxPos / orig;
      const mscale = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
      const ms = rs.mscale as number | undefined;
      const msAll = rs.mscale_all_dim as number | undefined;
      const attnFactor = (rs.attention_factor as number | undefined) ?? (ms && msAll ? mscale(factor, ms) / mscale(factor, msAll) : mscale(factor));
      const betaFast = (rs.beta_fast as number | undefined) || 32;
      const betaSlow = (rs.beta_slow as number | undefined) || 1;
      const corr = (rot: number) => (d * Math.log(orig / (rot * 2 * Math.PI))) / (2 * Math.log(base));
      let low = corr(betaFast);
      let high = corr(betaSlow);
      if ((rs.truncate ?? true) !== false) [low, high] = [Math.floor(low), Math.ceil(high)];
      low = Math.max(low, 0);
      high = Math.min(high, d - 1);
      if (low === high) high += 0.001;
      const invFreq = Float64Array.from({ length: half }, (_, i) => {
        const posFreq = base ** ((2 * i) / d);
        const extrapFactor = 1 - Math.min(1, Math.max(0, (i - low) / (high - low)));
        return (1 / (factor * posFreq)) * (1 - extrapFactor) + (1 / posFreq) * extrapFactor;
      });
      return { invFreq, attnFactor };
    }
    default:
      throw new Error(`reference: rope scaling '${type}' not implemented`);
  }
}

/**
 * Keys a query of layer `l` attends to (itself included), or Infinity: the official code's window.
 * Qwen2 (transformers' own class, which InternVL uses): use_sliding_window, then layer_types or
 * layers >= max_window_layers (default 28), sliding_window default 4096; keys j > i - W.
 * Phi-3 (InternVL's remote code): every layer, keys i - W <= j <= i, i.e. W + 1.
 */
export function windowKeys(lc: Json, l: number): number {
  const family = familyOf(lc);
  const w = lc.sliding_window as number | null | undefined;
  if (family === 'phi3') return typeof w === 'number' ? w + 1 : Infinity;
  if (family === 'gpt_oss') {
    // GptOssConfig: layer_types, by default sliding on even layers; sliding_window 128.
    const types = lc.layer_types as string[] | undefined;
    const sliding = types ? types[l] === 'sliding_attention' : l % 2 === 0;
    return sliding ? (w ?? 128) : Infinity;
  }
  if (family !== 'qwen2' && family !== 'qwen3' && family !== 'qwen3_moe') return Infinity;
  if (lc.use_sliding_window !== true) return Infinity;
  // Qwen3MoeModel builds one mask for every layer.
  if (family === 'qwen3_moe') return w ?? 4096;
  const types = lc.layer_types as string[] | undefined;
  const sliding = types ? types[l] === 'sliding_attention' : l >= ((lc.max_window_layers as number | undefined) ?? 28);
  return sliding ? (w ?? 4096) : Infinity;
}

function embedKey(s: LlmSpec): string {
  return s.family === 'internlm2' ? `${s.prefix}.model.tok_embeddings.weight` : `${s.prefix}.model.embed_tokens.weight`;
}

function headKey(s: LlmSpec): string {
  return s.family === 'internlm2' ? `${s.prefix}.output.weight` : `${s.prefix}.lm_head.weight`;
}

/** q [N, heads*hd], k and v [N, kv*hd] for one layer, per the family's weight layout. */
function qkvProject(s: LlmSpec, W: Weights, l: number, x: Float64Array, N: number): { q: Float64Array; k: Float64Array; v: Float64Array } {
  const { hidden: Hd, heads, kvHeads: kv, headDim: hd } = s;
  const p = `${s.prefix}.model.layers.${l}`;
  if (s.family === 'internlm2') {
    const G = heads / kv;
    const rows = (heads + 2 * kv) * hd;
    const qkv = linear(x, N, Hd, w(W, `${p}.attention.wqkv.weight`, rows * Hd), rows, s.qkvBias ? w(W, `${p}.attention.wqkv.bias`, rows) : undefined);
    const q = new Float64Array(N * heads * hd);
    const k = new Float64Array(N * kv * hd);
    const v = new Float64Array(N * kv * hd);
    // rearrange 'b q (h gs d) -> b q h gs d', gs = G + 2: G queries, then the key, then the value.
    for (let t = 0; t < N; t++) {
      for (let g = 0; g < kv; g++) {
        for (let e = 0; e < hd; e++) {
          for (let j = 0; j < G; j++) q[t * heads * hd + (g * G + j) * hd + e] = qkv[t * rows + (g * (G + 2) + j) * hd + e]!;
          k[t * kv * hd + g * hd + e] = qkv[t * rows + (g * (G + 2) + G) * hd + e]!;
          v[t * kv * hd + g * hd + e] = qkv[t * rows + (g * (G + 2) + G + 1) * hd + e]!;
        }
      }
    }
    return { q, k, v };
  }
  if (s.family === 'phi3') {
    const qn = heads * hd;
    const kn = kv * hd;
    const rows = qn + 2 * kn;
    const qkv = linear(x, N, Hd, w(W, `${p}.self_attn.qkv_proj.weight`, rows * Hd), rows);
    const q = new Float64Array(N * qn);
    const k = new Float64Array(N * kn);
    const v = new Float64Array(N * kn);
    for (let t = 0; t < N; t++) {
      for (let i = 0; i < qn; i++) q[t * qn + i] = qkv[t * rows + i]!;
      for (let i = 0; i < kn; i++) {
        k[t * kn + i] = qkv[t * rows + qn + i]!;
        v[t * kn + i] = qkv[t * rows + qn + kn + i]!;
      }
    }
    return { q, k, v };
  }
  const b = (name: string, n: number) => (s.qkvBias ? w(W, `${p}.self_attn.${name}.bias`, n) : undefined);
  const q = linear(x, N, Hd, w(W, `${p}.self_attn.q_proj.weight`, heads * hd * Hd), heads * hd, b('q_proj', heads * hd));
  const k = linear(x, N, Hd, w(W, `${p}.self_attn.k_proj.weight`, kv * hd * Hd), kv * hd, b('k_proj', kv * hd));
  const v = linear(x, N, Hd, w(W, `${p}.self_attn.v_proj.weight`, kv * hd * Hd), kv * hd, b('v_proj', kv * hd));
  if (s.family !== 'qwen3' && s.family !== 'qwen3_moe') return { q, k, v };
  // Qwen3: q_norm / k_norm are RMSNorms over each head's head_dim features (eps rms_norm_eps), before rotary.
  return {
    q: rmsNorm(q, N * heads, hd, w(W, `${p}.self_attn.q_norm.weight`, hd), s.eps),
    k: rmsNorm(k, N * kv, hd, w(W, `${p}.self_attn.k_norm.weight`, hd), s.eps),
    v,
  };
}

function oProject(s: LlmSpec, W: Weights, l: number, ctx: Float64Array, N: number): Float64Array {
  const p = `${s.prefix}.model.layers.${l}`;
  const inF = s.heads * s.headDim;
  if (s.family === 'internlm2') return linear(ctx, N, inF, w(W, `${p}.attention.wo.weight`), s.hidden, s.oBias ? w(W, `${p}.attention.wo.bias`, s.hidden) : undefined);
  return linear(ctx, N, inF, w(W, `${p}.self_attn.o_proj.weight`), s.hidden, s.oBias ? w(W, `${p}.self_attn.o_proj.bias`, s.hidden) : undefined);
}

/** Qwen3MoeDecoderLayer: sparse unless in mlp_only_layers or off the decoder_sparse_step. */
function sparseLayer(lc: Json, l: number): boolean {
  const experts = (lc.num_experts ?? lc.num_local_experts ?? 128) as number;
  const only = (lc.mlp_only_layers ?? []) as number[];
  return experts > 0 && !only.includes(l) && (l + 1) % ((lc.decoder_sparse_step as number | undefined) ?? 1) === 0;
}

/**
 * Qwen3MoeSparseMoeBlock, token by token: softmax of the router logits, the top k (largest first),
 * divided by their sum with norm_topk_prob, each chosen expert's SwiGLU output weighted and added.
 */
function moeBlock(lc: Json, s: LlmSpec, W: Weights, l: number, x: Float64Array, N: number): Float64Array {
  const p = `${s.prefix}.model.layers.${l}.mlp`;
  const E = (lc.num_experts ?? lc.num_local_experts ?? 128) as number;
  const k = (lc.num_experts_per_tok as number | undefined) ?? 8;
  const I = (lc.moe_intermediate_size as number | undefined) ?? 768;
  const Hd = s.hidden;
  const logits = linear(x, N, Hd, w(W, `${p}.gate.weight`), E);
  const out = new Float64Array(N * Hd);
  for (let t = 0; t < N; t++) {
    const probs = logits.slice(t * E, (t + 1) * E);
    softmaxInPlace(probs, E);
    const top = Array.from({ length: E }, (_, e) => e).sort((a, b) => probs[b]! - probs[a]! || a - b).slice(0, k);
    const sum = top.reduce((acc, e) => acc + probs[e]!, 0);
    const xt = x.subarray(t * Hd, (t + 1) * Hd);
    for (const e of top) {
      const weight = lc.norm_topk_prob === true ? probs[e]! / sum : probs[e]!;
      const gate = linear(xt, 1, Hd, w(W, `${p}.experts.${e}.gate_proj.weight`), I);
      const up = linear(xt, 1, Hd, w(W, `${p}.experts.${e}.up_proj.weight`), I);
      const y = linear(gate.map((g, i) => silu(g) * up[i]!), 1, I, w(W, `${p}.experts.${e}.down_proj.weight`), Hd);
      for (let i = 0; i < Hd; i++) out[t * Hd + i] += weight * y[i]!;
    }
  }
  return out;
}

/**
 * GptOssMLP, token by token: router logits (with bias), the top k, softmax over those k; each
 * chosen expert: x @ gate_up_proj[e] + bias, gate = even columns, up = odd ones, gate clamped
 * above at swiglu_limit, up to ±limit, (up + 1) * gate * sigmoid(alpha * gate) @ down_proj[e] + bias.
 */
function gptOssMlp(lc: Json, s: LlmSpec, W: Weights, l: number, x: Float64Array, N: number): Float64Array {
  const p = `${s.prefix}.model.layers.${l}.mlp`;
  const E = (lc.num_local_experts ?? lc.num_experts ?? 128) as number;
  const k = (lc.num_experts_per_tok as number | undefined) ?? 4;
  const I = lc.intermediate_size as number;
  const limit = (lc.swiglu_limit as number | undefined) ?? 7.0;
  const alpha = (lc.swiglu_alpha as number | undefined) ?? 1.702;
  const Hd = s.hidden;
  const logits = linear(x, N, Hd, w(W, `${p}.router.weight`), E, w(W, `${p}.router.bias`, E));
  const gateUp = w(W, `${p}.experts.gate_up_proj`, E * Hd * 2 * I);
  const gateUpBias = w(W, `${p}.experts.gate_up_proj_bias`, E * 2 * I);
  const down = w(W, `${p}.experts.down_proj`, E * I * Hd);
  const downBias = w(W, `${p}.experts.down_proj_bias`, E * Hd);
  const out = new Float64Array(N * Hd);
  for (let t = 0; t < N; t++) {
    const row = logits.slice(t * E, (t + 1) * E);
    const top = Array.from({ length: E }, (_, e) => e).sort((a, b) => row[b]! - row[a]! || a - b).slice(0, k);
    const weights = Float64Array.from(top, (e) => row[e]!);
    softmaxInPlace(weights, k);
    top.forEach((e, slot) => {
      const act = new Float64Array(I);
      for (let i = 0; i < I; i++) {
        let g = gateUpBias[e * 2 * I + 2 * i]!;
        let u = gateUpBias[e * 2 * I + 2 * i + 1]!;
        for (let h = 0; h < Hd; h++) {
          const xv = x[t * Hd + h]!;
          g += xv * gateUp[(e * Hd + h) * 2 * I + 2 * i]!;
          u += xv * gateUp[(e * Hd + h) * 2 * I + 2 * i + 1]!;
        }
        g = Math.min(g, limit);
        u = Math.min(Math.max(u, -limit), limit);
        act[i] = (u + 1) * g * (1 / (1 + Math.exp(-alpha * g)));
      }
      for (let h = 0; h < Hd; h++) {
        let y = downBias[e * Hd + h]!;
        for (let i = 0; i < I; i++) y += act[i]! * down[(e * I + i) * Hd + h]!;
        out[t * Hd + h] += weights[slot]! * y;
      }
    });
  }
  return out;
}

function mlp(s: LlmSpec, W: Weights, l: number, x: Float64Array, N: number, lc: Json = {}): Float64Array {
  if (s.family === 'qwen3_moe' && sparseLayer(lc, l)) return moeBlock(lc, s, W, l, x, N);
  if (s.family === 'gpt_oss') return gptOssMlp(lc, s, W, l, x, N);
  const p = `${s.prefix}.model.layers.${l}`;
  const { hidden: Hd, inter: I } = s;
  let gate: Float64Array;
  let up: Float64Array;
  let downW: Float64Array;
  let downB: Float64Array | undefined;
  if (s.family === 'internlm2') {
    gate = linear(x, N, Hd, w(W, `${p}.feed_forward.w1.weight`), I);
    up = linear(x, N, Hd, w(W, `${p}.feed_forward.w3.weight`), I);
    downW = w(W, `${p}.feed_forward.w2.weight`);
  } else if (s.family === 'phi3') {
    // gate, up = gate_up_proj(x).chunk(2, dim=-1)
    const gu = linear(x, N, Hd, w(W, `${p}.mlp.gate_up_proj.weight`, 2 * I * Hd), 2 * I);
    gate = new Float64Array(N * I);
    up = new Float64Array(N * I);
    for (let t = 0; t < N; t++) {
      for (let i = 0; i < I; i++) {
        gate[t * I + i] = gu[t * 2 * I + i]!;
        up[t * I + i] = gu[t * 2 * I + I + i]!;
      }
    }
    downW = w(W, `${p}.mlp.down_proj.weight`);
  } else {
    const b = (n: string, size: number) => (s.mlpBias ? w(W, `${p}.mlp.${n}.bias`, size) : undefined);
    gate = linear(x, N, Hd, w(W, `${p}.mlp.gate_proj.weight`), I, b('gate_proj', I));
    up = linear(x, N, Hd, w(W, `${p}.mlp.up_proj.weight`), I, b('up_proj', I));
    downW = w(W, `${p}.mlp.down_proj.weight`);
    downB = b('down_proj', Hd);
  }
  const a = new Float64Array(N * I);
  for (let i = 0; i < a.length; i++) a[i] = silu(gate[i]!) * up[i]!;
  return linear(a, N, I, downW, Hd, downB);
}

function normKeys(s: LlmSpec, l: number): [string, string] {
  const p = `${s.prefix}.model.layers.${l}`;
  return s.family === 'internlm2' ? [`${p}.attention_norm.weight`, `${p}.ffn_norm.weight`] : [`${p}.input_layernorm.weight`, `${p}.post_attention_layernorm.weight`];
}

/** One row of the batch: embeddings [N, hidden] -> logits [N, vocab]. Positions 0..N-1, causal. */
function decoderRow(lc: Json, s: LlmSpec, W: Weights, emb: Float64Array, N: number): Float64Array {
  const { hidden: Hd, heads, kvHeads: kv, headDim: hd } = s;
  // transformers (Phi-3): only the first int(head_dim * partial_rotary_factor) features rotate.
  // Proportional RoPE (transformers 5) reads partial_rotary_factor as the share of frequencies that turn; rotate_half spans the head.
  const proportional = ((lc.rope_scaling as Json | null | undefined)?.rope_type ?? '') === 'proportional';
  const rd = proportional ? hd : Math.floor(hd * ((lc.partial_rotary_factor as number | undefined) ?? 1));
  const half = rd / 2;
  // All positions are arange(N): seq_len for the rotary caches is N.
  const { invFreq, attnFactor } = ropeParams(lc, rd, N);
  const cos = new Float64Array(N * half);
  const sin = new Float64Array(N * half);
  for (let t = 0; t < N; t++) {
    for (let i = 0; i < half; i++) {
      const ang = t * invFreq[i]!;
      cos[t * half + i] = Math.cos(ang) * attnFactor;
      sin[t * half + i] = Math.sin(ang) * attnFactor;
    }
  }
  const rope = (x: Float64Array, nh: number) => {
    const y = Float64Array.from(x); // features past rd pass through
    for (let t = 0; t < N; t++) {
      for (let h = 0; h < nh; h++) {
        const o = (t * nh + h) * hd;
        for (let i = 0; i < half; i++) {
          const c = cos[t * half + i]!;
          const sn = sin[t * half + i]!;
          const x1 = x[o + i]!;
          const x2 = x[o + half + i]!;
          // x * cos + rotate_half(x) * sin, rotate_half = cat(-x2, x1), emb = cat(freqs, freqs)
          y[o + i] = x1 * c - x2 * sn;
          y[o + half + i] = x2 * c + x1 * sn;
        }
      }
    }
    return y;
  };
  let h: Float64Array = Float64Array.from(emb);
  const rep = heads / kv;
  const scores = new Float64Array(N + 1);
  for (let l = 0; l < s.layers; l++) {
    const [n1, n2] = normKeys(s, l);
    const xn = rmsNorm(h, N, Hd, w(W, n1, Hd), s.eps);
    const p = qkvProject(s, W, l, xn, N);
    const q = rope(p.q, heads);
    const k = rope(p.k, kv);
    const v = p.v;
    const ctx = new Float64Array(N * heads * hd);
    const scale = 1 / Math.sqrt(hd);
    const window = windowKeys(lc, l);
    // GPT-OSS: each head's sink logit joins the softmax, then is dropped.
    const sinks = s.family === 'gpt_oss' ? w(W, `${s.prefix}.model.layers.${l}.self_attn.sinks`, heads) : undefined;
    for (let head = 0; head < heads; head++) {
      const kh = Math.floor(head / rep); // repeat_kv: kv head i serves query heads i*rep .. i*rep+rep-1
      for (let i = 0; i < N; i++) {
        const first = Math.max(0, i - window + 1);
        for (let j = first; j <= i; j++) {
          let d = 0;
          for (let e = 0; e < hd; e++) d += q[(i * heads + head) * hd + e]! * k[(j * kv + kh) * hd + e]!;
          scores[j - first] = d * scale;
        }
        if (sinks) {
          scores[i + 1 - first] = sinks[head]!;
          softmaxInPlace(scores, i + 2 - first);
        } else softmaxInPlace(scores, i + 1 - first);
        for (let e = 0; e < hd; e++) {
          let acc = 0;
          for (let j = first; j <= i; j++) acc += scores[j - first]! * v[(j * kv + kh) * hd + e]!;
          ctx[(i * heads + head) * hd + e] = acc;
        }
      }
    }
    addInPlace(h, oProject(s, W, l, ctx, N));
    const xn2 = rmsNorm(h, N, Hd, w(W, n2, Hd), s.eps);
    addInPlace(h, mlp(s, W, l, xn2, N, lc));
  }
  h = rmsNorm(h, N, Hd, w(W, `${s.prefix}.model.norm.weight`, Hd), s.eps);
  const head = s.tie ? w(W, embedKey(s), s.vocab * Hd) : w(W, headKey(s), s.vocab * Hd);
  return linear(h, N, Hd, head, s.vocab);
}

// ---------------------------------------------------------------------------------------------
// The whole model

/** InternVLChatModel.forward: vit features for every tile, the splice, the LLM, optionally the loss. */
export function internvlReference(cfg: Json, W: Weights, inp: ReferenceInputs, imgContextTokenId: number): ReferenceOutputs {
  const lc = cfg.llm_config as Json;
  const s = llmSpec(lc);
  const [B, N] = inp.inputShape;
  const tiles = inp.pixelShape[0];
  const { out: vit, tokens, llmHidden } = extractFeature(cfg, W, inp);
  const C = llmHidden;
  // input_embeds = embed_tokens(input_ids), flattened to [B*N, C].
  const E = w(W, embedKey(s), s.vocab * C);
  const ids = Array.from(inp.inputIds, (v) => Number(v));
  const emb = new Float64Array(B * N * C);
  for (let i = 0; i < B * N; i++) {
    const id = ids[i]!;
    if (id < 0 || id >= s.vocab) throw new Error(`reference: token id ${id} out of range`);
    emb.set(E.subarray(id * C, (id + 1) * C), i * C);
  }
  // vit_embeds[image_flags == 1] replaces the <IMG_CONTEXT> positions in row-major order.
  const kept: number[] = [];
  const flags = Array.from(inp.imageFlags, (v) => Number(v));
  if (flags.length !== tiles) throw new Error('reference: image_flags length differs from the tile count');
  for (let t = 0; t < tiles; t++) if (flags[t] === 1) kept.push(t);
  const selected: number[] = [];
  for (let i = 0; i < B * N; i++) if (ids[i] === imgContextTokenId) selected.push(i);
  const available = kept.length * tokens;
  let ignoreFlag = false;
  if (selected.length !== available) {
    // The official `except` branch: vit_embeds[:n_token], and the loss is zeroed.
    if (selected.length > available) throw new Error(`reference: ${selected.length} image positions but only ${available} image tokens`);
    ignoreFlag = true;
  }
  selected.forEach((pos, n) => {
    const tile = kept[Math.floor(n / tokens)]!;
    const tok = n % tokens;
    emb.set(vit.subarray((tile * tokens + tok) * C, (tile * tokens + tok + 1) * C), pos * C);
  });
  const logits = new Float64Array(B * N * s.vocab);
  for (let b = 0; b < B; b++) logits.set(decoderRow(lc, s, W, emb.subarray(b * N * C, (b + 1) * N * C), N), b * N * s.vocab);
  const result: ReferenceOutputs = { vitEmbeds: vit, vitEmbedsShape: [tiles, tokens, C], logits, logitsShape: [B, N, s.vocab], ignoreFlag };
  if (inp.labels) {
    const labels = Array.from(inp.labels, (v) => Number(v));
    let total = 0;
    let count = 0;
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < N - 1; t++) {
        const y = labels[b * N + t + 1]!;
        if (y === -100) continue;
        const row = logits.subarray((b * N + t) * s.vocab, (b * N + t + 1) * s.vocab);
        let m = -Infinity;
        for (const v of row) m = Math.max(m, v);
        let se = 0;
        for (const v of row) se += Math.exp(v - m);
        total += m + Math.log(se) - row[y]!;
        count++;
      }
    }
    result.loss = ignoreFlag ? 0 : total / count;
  }
  return result;
}
