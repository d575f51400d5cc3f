/**
 * Sliding-window attention, which vlmc does not model (every layer attends causally to the whole
 * sequence). A config whose window is shorter than its context would give other numbers past the
 * window, so it is refused; a window that never applies is accepted. Each family decides as
 * transformers does.
 */
import { UserError } from '../../errors.ts';
import type { HFConfig } from '../config-fields.ts';

const maxPositionsOf = (hf: HFConfig): number => (typeof hf.max_position_embeddings === 'number' ? hf.max_position_embeddings : 2048);

function refuse(where: string, window: unknown, why: string, max: number): never {
  throw new UserError(`${where}: sliding_window ${JSON.stringify(window)} ${why}, inside the ${max}-token context; vlmc supports full causal attention only (set use_sliding_window false or sliding_window null if the model was trained without it)`);
}

/**
 * Qwen2: a window applies only with use_sliding_window true, and then to the layers from
 * max_window_layers on (transformers 5 spells them out in layer_types as 'sliding_attention').
 */
export function qwen2SlidingWindow(hf: HFConfig, where: string): void {
  const window = hf.sliding_window;
  // transformers sets sliding_window to None unless use_sliding_window is true.
  if (window === undefined || window === null || hf.use_sliding_window !== true) return;
  const max = maxPositionsOf(hf);
  if (typeof window !== 'number' || window >= max) return;
  const layerTypes = hf.layer_types;
  if (Array.isArray(layerTypes)) {
    const sliding = layerTypes.filter((t) => t === 'sliding_attention').length;
    if (sliding > 0) refuse(where, window, `applies to ${sliding} layer(s) (layer_types)`, max);
    return;
  }
  const layers = typeof hf.num_hidden_layers === 'number' ? hf.num_hidden_layers : 0;
  const from = typeof hf.max_window_layers === 'number' ? hf.max_window_layers : 28;
  if (from < layers) refuse(where, window, `applies to layers ${from}..${layers - 1} (use_sliding_window true, max_window_layers ${from})`, max);
}

/** Phi-3: every layer uses config.sliding_window when it is set. */
export function phi3SlidingWindow(hf: HFConfig, where: string): void {
  const window = hf.sliding_window;
  if (window === undefined || window === null) return;
  const max = maxPositionsOf(hf);
  if (typeof window === 'number' && window < max) refuse(where, window, 'applies to every layer', max);
}
