/**
 * The `--target gpu` fusions. Composite ops (GELU) are lowered by the target's table before any
 * other pass (src/passes/lower.ts); the rest are passes that rewrite a decomposed pattern of the
 * portable graph into an ONNX Runtime fused op, in this order (attention before the norms, so a
 * norm's single-use checks see the final consumers), only where the target asks for them.
 */
import { UserError } from '../../errors.ts';
import type { Graph } from '../../ir/graph.ts';
import { removeDeadNodes } from '../dead-nodes.ts';
import { fuseVitAttention } from './attention.ts';
import { fuseGqa } from './gqa.ts';
import { LOWERED_FUSIONS, WHERE_USED_FUSIONS } from '../lower.ts';
import { fuseSkipLayerNorm } from './layernorm.ts';
import { fuseRmsNorm } from './rmsnorm.ts';
import { packProjections } from '../pack-projections.ts';

/**
 * `portable`: standard ONNX ops only. `gpu`: ONNX Runtime's fused ops (CPU and CUDA providers).
 * `webgpu`: the same fusions, limited to the ops and dtypes the WebGPU provider has kernels for
 * (src/passes/webgpu-profile.ts).
 */
export type Target = 'portable' | 'gpu' | 'webgpu';

export const TARGETS: readonly Target[] = ['portable', 'gpu', 'webgpu'];

/** Targets that lower to ONNX Runtime's fused ops. */
export const isFused = (target: Target): boolean => target !== 'portable';

/** Pattern fusion name (for --fuse) -> pass; each returns how many patterns it replaced. */
export const FUSIONS: Record<string, (graph: Graph, target: Target) => number> = {
  gqa: (graph, target) => fuseGqa(graph, target !== 'webgpu'),
  'vit-attention': fuseVitAttention,
  'skip-layernorm': fuseSkipLayerNorm,
  rmsnorm: fuseRmsNorm,
  // Last: the attention fusions match the separate q/k/v projections' outputs, not a Split.
  'pack-projections': packProjections,
};

/** Every fusion --fuse can name, in pipeline order: the pattern passes and the composites' lowerings. */
export const FUSION_NAMES = ['gqa', 'vit-attention', 'gelu', 'moe', 'skip-layernorm', 'rmsnorm', 'pack-projections'];
for (const name of [...Object.keys(FUSIONS), ...LOWERED_FUSIONS]) if (!FUSION_NAMES.includes(name)) throw new Error(`fusion ${name} has no place in FUSION_NAMES`);

/** `--fuse none|all|a,b` -> the fusion names, in pipeline order; a UserError for unknown names. */
export function parseFuse(spec: string | undefined, target: Target): string[] {
  if (spec === undefined) return isFused(target) ? FUSION_NAMES : [];
  if (spec === 'none') return [];
  if (spec === 'all') return FUSION_NAMES;
  const asked = spec.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  const unknown = asked.filter((s) => !FUSION_NAMES.includes(s));
  if (unknown.length > 0) throw new UserError(`--fuse: unknown fusion ${unknown.join(', ')} (known: none, all, ${FUSION_NAMES.join(', ')})`);
  if (asked.length > 0 && !isFused(target)) throw new UserError('--fuse needs --target gpu or webgpu: the fused ops run only on ONNX Runtime');
  return FUSION_NAMES.filter((n) => asked.includes(n));
}

/**
 * Runs the named pattern fusions; returns the count each replaced, with the counts of the lowerings
 * that already ran (`lowered`), in pipeline order (recorded in the graph's metadata).
 */
export function fuseGraph(graph: Graph, names: readonly string[], lowered: Record<string, number> = {}, target: Target = 'gpu'): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of FUSION_NAMES) {
    if (!names.includes(name)) continue;
    const pass = Object.hasOwn(FUSIONS, name) ? FUSIONS[name] : undefined;
    if (!pass) {
      if (Object.hasOwn(lowered, name) || !WHERE_USED_FUSIONS.includes(name)) counts[name] = lowered[name] ?? 0;
      continue;
    }
    counts[name] = pass(graph, target);
    removeDeadNodes(graph);
  }
  return counts;
}
