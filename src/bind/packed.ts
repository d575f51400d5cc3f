/**
 * Sources whose checkpoint stores weights quantised: the config's `quantization_config` (at the
 * top, or in the `llm_config` / `text_config` it carries) names the method. MXFP4 (GPT-OSS's
 * experts) is read through a PackedKeyLayout and dequantised while binding (src/quant/mxfp4.ts);
 * any other method is refused, naming the field, since vlmc binds float weights.
 */
import * as nodePath from 'node:path';
import { UserError } from '../errors.ts';
import { PackedKeyLayout } from '../dsl/layout.ts';
import type { WeightSource } from './source.ts';

/** The quantisation methods a checkpoint may declare and vlmc reads. */
export const PACKED_METHODS = ['mxfp4'] as const;

/** `quantization_config.quant_method` of a config (or of the LLM config inside it), with the field's path. */
export function quantMethodOf(config: Readonly<Record<string, unknown>>): { method: unknown; field: string } | undefined {
  for (const [inner, prefix] of [[config, ''], [config.llm_config, 'llm_config.'], [config.text_config, 'text_config.']] as const) {
    if (!inner || typeof inner !== 'object') continue;
    const q = (inner as Record<string, unknown>).quantization_config;
    if (q === undefined || q === null) continue;
    const method = typeof q === 'object' ? (q as Record<string, unknown>).quant_method : q;
    return { method, field: `${prefix}quantization_config` };
  }
  return undefined;
}

/** The source read through its packed layout where its config declares MXFP4; refused for any other method. */
export function withPackedLayout(source: WeightSource): WeightSource {
  const found = quantMethodOf(source.checkpoint.config);
  if (!found) return source;
  if (found.method !== 'mxfp4') {
    const file = nodePath.join(source.checkpoint.dir, 'config.json');
    throw new UserError(`${file}: field '${found.field}' (quant_method ${JSON.stringify(found.method)}) is not supported: vlmc binds float weights and dequantises only ${PACKED_METHODS.join(', ')} (*_blocks / *_scales) checkpoints`);
  }
  const { checkpoint } = source;
  return { ...source, layout: new PackedKeyLayout(source.layout, 'mxfp4', (k) => checkpoint.has(k)) };
}
