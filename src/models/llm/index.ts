/** The LLM families vlmc knows, by the Hugging Face architecture name in their config.json. */
import { UserError } from '../../errors.ts';
import type { CausalLM, DecoderConfig } from './decoder.ts';
import { optBool, type HFConfig } from '../config-fields.ts';
import { decoderConfigFromHF } from './hf-config.ts';
import { gptOssSlidingWindow, phi3SlidingWindow, qwen2SlidingWindow, qwen3MoeSlidingWindow, type SlidingWindowSettings, type WindowSemantics } from './sliding-window.ts';
import { qwen3Moe, qwen3MoeFromHF } from './qwen3-moe.ts';
import { gptOss, gptOssDefaults, gptOssMoeFromHF } from './gpt-oss.ts';
import { internlm2 } from './internlm2.ts';
import { llama, qwen2 } from './llama.ts';
import { phi3 } from './phi3.ts';
import { QWEN3_DEFAULT_HEAD_DIM, qwen3 } from './qwen3.ts';

export interface LLMFamily {
  /** Name used in graph files (`qwen2({...})`). */
  builder: string;
  build(config: DecoderConfig): CausalLM;
  /** Family-specific config fields on top of the common ones. */
  adjust?(config: DecoderConfig, hf: HFConfig, where: string): DecoderConfig;
  /** Family-specific fields that change the numbers and that vlmc does not model: throw naming them. */
  check?(hf: HFConfig, where: string): void;
  /** The family's config class defaults that differ from the common readers', filled in before reading. */
  defaults?(hf: HFConfig, where: string): HFConfig;
  /** The family's sliding-window fields (src/models/llm/sliding-window.ts); none when absent. */
  window?(hf: HFConfig, where: string, semantics: WindowSemantics): SlidingWindowSettings;
}

export const LLM_FAMILIES: Record<string, LLMFamily> = {
  Qwen2ForCausalLM: { builder: 'qwen2', build: qwen2, adjust: (c) => ({ ...c, qkvBias: true }), window: qwen2SlidingWindow },
  LlamaForCausalLM: { builder: 'llama', build: llama },
  InternLM2ForCausalLM: {
    builder: 'internlm2',
    build: internlm2,
    // InternLM2 has one `bias` flag for wqkv and wo.
    adjust: (c, hf) => ({ ...c, qkvBias: optBool(hf, 'bias', false), oBias: optBool(hf, 'bias', false) }),
  },
  Phi3ForCausalLM: { builder: 'phi3', build: phi3, window: phi3SlidingWindow },
  // Qwen3Config's head_dim defaults to 128, not hidden / heads.
  // Qwen3 gates its sliding window as Qwen2 does (use_sliding_window, max_window_layers / layer_types).
  Qwen3ForCausalLM: { builder: 'qwen3', build: qwen3, window: qwen2SlidingWindow, adjust: (c, hf) => ({ ...c, headDim: hf.head_dim == null ? QWEN3_DEFAULT_HEAD_DIM : c.headDim }) },
  // Qwen3MoeConfig has no head_dim default of its own: hidden / heads unless the config says.
  Qwen3MoeForCausalLM: { builder: 'qwen3Moe', build: qwen3Moe, window: qwen3MoeSlidingWindow, adjust: (c, hf, where) => ({ ...c, moe: qwen3MoeFromHF(hf, where) }) },
  GptOssForCausalLM: {
    builder: 'gptOss',
    build: gptOss,
    defaults: gptOssDefaults,
    window: gptOssSlidingWindow,
    // intermediate_size is each expert's width; there is no dense MLP.
    adjust: (c, hf, where) => ({ ...c, moe: gptOssMoeFromHF(hf, where, c.intermediate) }),
  },
};

export function llmFamily(architecture: string, where: string): LLMFamily {
  // Own keys only: 'toString' or '__proto__' must never find a prototype member.
  const family = Object.hasOwn(LLM_FAMILIES, architecture) ? LLM_FAMILIES[architecture] : undefined;
  if (!family) {
    throw new UserError(`${where}: unknown LLM architecture '${architecture}'; supported: ${Object.keys(LLM_FAMILIES).join(', ')}`);
  }
  return family;
}

/** model_type -> architecture, for configs that omit `architectures`. */
const BY_MODEL_TYPE: Record<string, string> = {
  qwen2: 'Qwen2ForCausalLM',
  llama: 'LlamaForCausalLM',
  internlm2: 'InternLM2ForCausalLM',
  phi3: 'Phi3ForCausalLM',
  qwen3: 'Qwen3ForCausalLM',
  qwen3_moe: 'Qwen3MoeForCausalLM',
  gpt_oss: 'GptOssForCausalLM',
};

export function architectureOf(hf: HFConfig, where: string): string {
  const archs = hf.architectures;
  if (Array.isArray(archs) && typeof archs[0] === 'string') return archs[0];
  const byType = typeof hf.model_type === 'string' && Object.hasOwn(BY_MODEL_TYPE, hf.model_type) ? BY_MODEL_TYPE[hf.model_type] : undefined;
  if (byType) return byType;
  throw new UserError(`${where}: neither 'architectures' nor a known 'model_type' names the LLM; supported: ${Object.keys(LLM_FAMILIES).join(', ')}`);
}

/**
 * The LLM described by a Hugging Face config.json. `semantics` says whose numbers the checkpoint
 * stands for where transformers and InternVL's own code differ (Phi-3's window): `transformers` for
 * the HF-native layout, `internvl` for the original one and Path B (InternVLChatModel's code).
 */
export function llmFromHF(hf: HFConfig, where: string, semantics: WindowSemantics = 'transformers'): CausalLM {
  const family = llmFamily(architectureOf(hf, where), where);
  hf = family.defaults ? family.defaults(hf, where) : hf;
  family.check?.(hf, where);
  const base = { ...decoderConfigFromHF(hf, where), ...withoutUndefined(family.window?.(hf, where, semantics) ?? {}) };
  return family.build(family.adjust ? family.adjust(base, hf, where) : base);
}

function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
