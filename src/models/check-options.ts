/**
 * Run-time checks of the zoo's DSL option objects, before any module is built: unknown keys (with a
 * did-you-mean), counts that are not whole numbers or are absurdly large, heads that do not divide
 * the width. The config readers (from-config.ts, llm/hf-config.ts) check the same things naming
 * config.json fields; these name the graph file line.
 */
import { checkOptionKeys, checkWhole, optionError } from '../dsl/options.ts';
import { LIMITS } from './config-fields.ts';
import type { DecoderConfig } from './llm/decoder.ts';
import { LAYER_TYPES } from './llm/sliding-window.ts';
import type { InternViTConfig } from './internvit-config.ts';

const DECODER_KEYS = ['hidden', 'heads', 'kvHeads', 'headDim', 'layers', 'intermediate', 'vocab', 'rmsNormEps', 'ropeTheta', 'maxPositions', 'ropeScaling', 'tieEmbeddings', 'qkvBias', 'oBias', 'mlpBias', 'partialRotaryFactor', 'padTokenId', 'slidingWindow', 'layerTypes', 'moe'] as const;
const MOE_KEYS = ['experts', 'topK', 'intermediate', 'normTopKProb', 'decoderSparseStep', 'mlpOnlyLayers', 'swigluLimit', 'swigluAlpha'] as const;
const ROPE_KEYS: Record<string, readonly string[]> = {
  linear: ['type', 'factor'],
  dynamic: ['type', 'factor'],
  llama3: ['type', 'factor', 'lowFreqFactor', 'highFreqFactor', 'originalMaxPositions'],
  longrope: ['type', 'shortFactor', 'longFactor', 'originalMaxPositions', 'attentionFactor'],
  yarn: ['type', 'factor', 'originalMaxPositions', 'attentionFactor', 'betaFast', 'betaSlow', 'truncate'],
  proportional: ['type', 'factor', 'proportion'],
};
const VIT_KEYS = ['hidden', 'heads', 'layers', 'intermediate', 'imageSize', 'patchSize', 'norm', 'qkvBias', 'qkNorm', 'qkNormEps', 'eps', 'layerScaleInit'] as const;
const INTERNVL_KEYS = ['vision', 'llm', 'downsampleRatio', 'psVersion', 'selectLayer', 'imageSize', 'projector', 'imgContextTokenId', 'imageFlags', 'train', 'lora', 'name'] as const;

export function checkDecoderOptions(what: string, c: DecoderConfig): void {
  checkOptionKeys(what, c, DECODER_KEYS);
  checkWhole(what, 'hidden', c.hidden, LIMITS.hidden);
  checkWhole(what, 'heads', c.heads, LIMITS.heads);
  checkWhole(what, 'kvHeads', c.kvHeads, LIMITS.heads);
  checkWhole(what, 'layers', c.layers, LIMITS.layers);
  checkWhole(what, 'intermediate', c.intermediate, LIMITS.intermediate);
  checkWhole(what, 'vocab', c.vocab, LIMITS.vocab);
  checkWhole(what, 'maxPositions', c.maxPositions, LIMITS.positions);
  if (c.heads % c.kvHeads !== 0) throw optionError(what, `heads (${c.heads}) must be a multiple of kvHeads (${c.kvHeads})`);
  if (c.headDim !== undefined) checkWhole(what, 'headDim', c.headDim, LIMITS.headDim);
  else if (c.hidden % c.heads !== 0) throw optionError(what, `hidden (${c.hidden}) is not divisible by heads (${c.heads}); set headDim or fix one of them`);
  checkSlidingWindow(what, c);
  if (c.moe) checkMoe(what, c);
  const s = c.ropeScaling;
  if (s) {
    const known = Object.hasOwn(ROPE_KEYS, s.type) ? ROPE_KEYS[s.type]! : undefined;
    if (!known) throw optionError(what, `ropeScaling.type ${JSON.stringify(s.type)} is not supported (supported: ${Object.keys(ROPE_KEYS).join(', ')})`);
    checkOptionKeys(`${what} ropeScaling`, s, known);
    if (s.type === 'longrope') {
      const half = Math.floor((c.headDim ?? c.hidden / c.heads) * (c.partialRotaryFactor ?? 1)) / 2;
      for (const key of ['shortFactor', 'longFactor'] as const) {
        if (s[key].length !== half) throw optionError(what, `ropeScaling.${key} has ${s[key].length} entries; it needs ${half} (rotary dim / 2)`);
      }
    }
  }
}

function checkMoe(what: string, c: DecoderConfig): void {
  const m = c.moe!;
  checkOptionKeys(`${what} moe`, m, MOE_KEYS);
  checkWhole(what, 'moe.experts', m.experts, LIMITS.experts, 0);
  checkWhole(what, 'moe.topK', m.topK, Math.max(m.experts, 1));
  checkWhole(what, 'moe.intermediate', m.intermediate, LIMITS.intermediate);
  if (m.decoderSparseStep !== undefined) checkWhole(what, 'moe.decoderSparseStep', m.decoderSparseStep, LIMITS.layers);
  if (m.mlpOnlyLayers !== undefined && !(Array.isArray(m.mlpOnlyLayers) && m.mlpOnlyLayers.every((i) => Number.isInteger(i) && i >= 0 && i < c.layers))) {
    throw optionError(what, `moe.mlpOnlyLayers must list layer indices below ${c.layers}`);
  }
}

function checkSlidingWindow(what: string, c: DecoderConfig): void {
  if (c.slidingWindow !== undefined) checkWhole(what, 'slidingWindow', c.slidingWindow, LIMITS.positions * 64);
  const types = c.layerTypes;
  if (types === undefined) return;
  if (!Array.isArray(types) || types.length !== c.layers || !types.every((t) => (LAYER_TYPES as readonly string[]).includes(t))) {
    throw optionError(what, `layerTypes must list one of ${LAYER_TYPES.map((t) => `'${t}'`).join(' / ')} per layer (${c.layers})`);
  }
  if (c.slidingWindow === undefined && types.includes('sliding_attention')) throw optionError(what, "layerTypes names 'sliding_attention' layers but slidingWindow is not set");
}

export function checkViTOptions(what: string, c: InternViTConfig): void {
  checkOptionKeys(what, c, VIT_KEYS);
  checkWhole(what, 'hidden', c.hidden, LIMITS.hidden);
  checkWhole(what, 'heads', c.heads, LIMITS.heads);
  checkWhole(what, 'layers', c.layers, LIMITS.layers);
  checkWhole(what, 'intermediate', c.intermediate, LIMITS.intermediate);
  checkWhole(what, 'imageSize', c.imageSize, LIMITS.imageSize);
  checkWhole(what, 'patchSize', c.patchSize, LIMITS.imageSize);
  if (c.hidden % c.heads !== 0) throw optionError(what, `hidden (${c.hidden}) is not divisible by heads (${c.heads})`);
  if (c.imageSize % c.patchSize !== 0) throw optionError(what, `imageSize (${c.imageSize}) is not a multiple of patchSize (${c.patchSize})`);
}

/**
 * What the InternVL check reads of `InternVLOptions`. Spelled out over the towers' config types
 * rather than imported: internvl.ts calls this check, so importing its options type back would
 * make a cycle.
 */
export interface InternVLOptionsChecked {
  vision: { config: InternViTConfig };
  llm: { config: DecoderConfig };
  downsampleRatio?: number;
  psVersion?: string;
  selectLayer?: number;
  imageSize?: number;
  imgContextTokenId?: number;
}

export function checkInternVLOptions(o: InternVLOptionsChecked): void {
  const what = 'internvl';
  checkOptionKeys(what, o, INTERNVL_KEYS);
  const v = o.vision.config;
  const imageSize = o.imageSize ?? v.imageSize;
  checkWhole(what, 'imageSize', imageSize, LIMITS.imageSize);
  if (imageSize % v.patchSize !== 0) throw optionError(what, `imageSize (${imageSize}) is not a multiple of the vision patchSize (${v.patchSize})`);
  const r = o.downsampleRatio ?? 0.5;
  const k = Math.round(1 / r);
  if (!(r > 0 && r <= 1) || Math.abs(1 / r - k) > 1e-9) throw optionError(what, `downsampleRatio must be 1/k for a whole number k (0.5, 0.25, ...; got ${r})`);
  if ((imageSize / v.patchSize) % k !== 0) throw optionError(what, `downsampleRatio ${r} needs the ${imageSize / v.patchSize}-patch grid to be a multiple of ${k}`);
  const s = o.selectLayer ?? -1;
  if (!Number.isInteger(s) || s < -(v.layers + 1) || s > v.layers) throw optionError(what, `selectLayer must be a whole number from ${-(v.layers + 1)} to ${v.layers} (got ${s})`);
  if (o.psVersion !== undefined && o.psVersion !== 'v1' && o.psVersion !== 'v2') throw optionError(what, `psVersion must be 'v1' or 'v2' (got ${JSON.stringify(o.psVersion)})`);
  const id = o.imgContextTokenId;
  if (id !== undefined && (!Number.isSafeInteger(id) || id < 0 || id >= o.llm.config.vocab)) {
    throw optionError(what, `imgContextTokenId ${id} is not a token of the LLM (0 to ${o.llm.config.vocab - 1})`);
  }
}
