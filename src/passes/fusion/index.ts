/**
 * The `--target gpu` fusion passes: each rewrites one decomposed pattern of the portable graph into
 * an ONNX Runtime fused op. They run in this order (attention before the norms, so a norm's
 * single-use checks see the final consumers) and only where the target asks for them.
 */
import { UserError } from '../../errors.ts';
import type { Graph } from '../../ir/graph.ts';
import { removeDeadNodes } from '../dead-nodes.ts';
import { fuseVitAttention } from './attention.ts';
import { fuseGqa } from './gqa.ts';
import { fuseGelu } from './gelu.ts';
import { fuseSkipLayerNorm } from './layernorm.ts';
import { fuseRmsNorm } from './rmsnorm.ts';
import { packProjections } from '../pack-projections.ts';

export type Target = 'portable' | 'gpu';

/** Fusion name (for --fuse) -> pass; each returns how many patterns it replaced. */
export const FUSIONS: Record<string, (graph: Graph) => number> = {
  gqa: fuseGqa,
  'vit-attention': fuseVitAttention,
  gelu: fuseGelu,
  'skip-layernorm': fuseSkipLayerNorm,
  rmsnorm: fuseRmsNorm,
  // Last: the attention fusions match the separate q/k/v projections' outputs, not a Split.
  'pack-projections': packProjections,
};

export const FUSION_NAMES = Object.keys(FUSIONS);

/** `--fuse none|all|a,b` -> the fusion names, in pipeline order; a UserError for unknown names. */
export function parseFuse(spec: string | undefined, target: Target): string[] {
  if (spec === undefined) return target === 'gpu' ? FUSION_NAMES : [];
  if (spec === 'none') return [];
  if (spec === 'all') return FUSION_NAMES;
  const asked = spec.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  const unknown = asked.filter((s) => !(s in FUSIONS));
  if (unknown.length > 0) throw new UserError(`--fuse: unknown fusion ${unknown.join(', ')} (known: none, all, ${FUSION_NAMES.join(', ')})`);
  if (asked.length > 0 && target !== 'gpu') throw new UserError('--fuse needs --target gpu: the fused ops run only on ONNX Runtime');
  return FUSION_NAMES.filter((n) => asked.includes(n));
}

/** Runs the named fusions; returns the count each replaced (recorded in the graph's metadata). */
export function fuseGraph(graph: Graph, names: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of FUSION_NAMES) {
    if (!names.includes(name)) continue;
    counts[name] = FUSIONS[name]!(graph);
    removeDeadNodes(graph);
  }
  return counts;
}
