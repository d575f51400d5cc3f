/**
 * Composite ops -> what the target runs. A composite node (src/ir/builder.ts `composite`) carries
 * its attributes and its decomposition; each target has a lowering table from composite op to a
 * fused kernel. Where the target has a lowering and the build asked for it (`--fuse`), the kernel
 * replaces the node; everywhere else (the portable target, training graphs, kernels a target lacks)
 * the decomposition does, node for node as it was traced, so the portable graph is the same as if
 * the op had never been composite. Runs first, so every later pass sees standard and contrib ops only.
 */
import { COMPOSITE_DOMAIN, type Graph, type Node } from '../ir/graph.ts';
import { GeluSig } from '../ops/contrib.generated.ts';
import { detachedNode } from './fusion/rewrite.ts';

/** Builds the fused node for a composite, or undefined where this instance cannot use the kernel. */
type Lowering = (node: Node, graph: Graph) => Node | undefined;

/** A lowering, named as --fuse names it. */
interface TableEntry {
  fusion: string;
  lower: Lowering;
}

/** Per target, composite op -> its lowering. The portable target has none: it decomposes everything. */
const ORT_FUSED: Record<string, TableEntry> = {
  // com.microsoft Gelu is the exact (erf) form; FastGelu would be the tanh approximation.
  Gelu: { fusion: 'gelu', lower: (node, graph) => detachedNode(graph, node.scope, GeluSig, node.inputs, {}) },
};

export const LOWERINGS: Record<string, Record<string, TableEntry>> = {
  gpu: ORT_FUSED,
  // Every kernel of the table is in the WebGPU provider's profile (src/passes/webgpu-profile.ts).
  webgpu: ORT_FUSED,
};

/** The fusion names that are lowerings of composites (rather than pattern rewrites). */
export const LOWERED_FUSIONS = [...new Set(Object.values(LOWERINGS).flatMap((t) => Object.values(t).map((e) => e.fusion)))];

/** Lowers or decomposes every composite node; returns how often each fusion's lowering applied. */
export function lowerComposites(graph: Graph, target: string, fusions: readonly string[]): Record<string, number> {
  const table = LOWERINGS[target] ?? {};
  const counts: Record<string, number> = {};
  for (const e of Object.values(table)) if (fusions.includes(e.fusion)) counts[e.fusion] = 0;
  const lower = (node: Node): Node[] => {
    if (node.domain !== COMPOSITE_DOMAIN) return [node];
    const entry = Object.hasOwn(table, node.op) ? table[node.op] : undefined;
    const fused = entry && fusions.includes(entry.fusion) ? entry.lower(node, graph) : undefined;
    // A decomposition may itself use composites.
    if (!fused) return node.composite!.body.flatMap(lower);
    counts[entry!.fusion]! += 1;
    // The kernel produces the composite's own output values, so nothing downstream changes.
    fused.outputs = node.outputs.map((v) => {
      v.producer = fused;
      return v;
    });
    return [fused];
  };
  graph.nodes = graph.nodes.flatMap(lower);
  return counts;
}
