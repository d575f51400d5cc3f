/**
 * Composite ops -> what the target runs. A composite node (src/ir/builder.ts `composite`) carries
 * its attributes and its decomposition; each target has a lowering table from composite op to a
 * fused kernel. Where the target has a lowering and the build asked for it (`--fuse`), the kernel
 * replaces the node; everywhere else (the portable target, training graphs, kernels a target lacks)
 * the decomposition does, node for node as it was traced, so the portable graph is the same as if
 * the op had never been composite. Runs first, so every later pass sees standard and contrib ops only.
 */
import { COMPOSITE_DOMAIN, type Graph, type Node, type Value } from '../ir/graph.ts';
import { GeluSig } from '../ops/contrib.generated.ts';
import { detachedNode, detachedNodes, producer, transposeOf } from './fusion/rewrite.ts';
import * as op from '../ops/index.ts';
import { MoE } from '../ops/contrib.generated.ts';
import { i64 } from '../dsl/constants.ts';
import type { SparseMoeSpec } from '../models/llm/moe.ts';

/**
 * Builds the fused node for a composite (the last of the nodes returned, after any that prepare its
 * inputs), or undefined where this instance cannot use the kernel.
 */
type Lowering = (node: Node, graph: Graph) => Node | Node[] | undefined;

/** A lowering, named as --fuse names it. */
interface TableEntry {
  fusion: string;
  lower: Lowering;
  /** Counted only in graphs that have the composite (a family-specific block: no 'applied 0 times' on every other model). */
  whereUsed?: boolean;
}

/** Per target, composite op -> its lowering. The portable target has none: it decomposes everything. */
const ORT_FUSED: Record<string, TableEntry> = {
  // com.microsoft Gelu is the exact (erf) form; FastGelu would be the tanh approximation.
  Gelu: { fusion: 'gelu', lower: (node, graph) => detachedNode(graph, node.scope, GeluSig, node.inputs, {}) },
};

export const LOWERINGS: Record<string, Record<string, TableEntry>> = {
  // MoE: the CPU and CUDA providers have the kernel; the WebGPU provider has none.
  gpu: { ...ORT_FUSED, SparseMoe: { fusion: 'moe', lower: lowerSparseMoe, whereUsed: true } },
  // Every kernel of the table is in the WebGPU provider's profile (src/passes/webgpu-profile.ts).
  webgpu: ORT_FUSED,
};

/** Lowerings counted only where the graph has their composite (fuseGraph reports no 0 for the others). */
export const WHERE_USED_FUSIONS = [...new Set(Object.values(LOWERINGS).flatMap((t) => Object.values(t).filter((e) => e.whereUsed).map((e) => e.fusion)))];

/** The fusion names that are lowerings of composites (rather than pattern rewrites). */
export const LOWERED_FUSIONS = [...new Set(Object.values(LOWERINGS).flatMap((t) => Object.values(t).map((e) => e.fusion)))];

/** Lowers or decomposes every composite node; returns how often each fusion's lowering applied. */
export function lowerComposites(graph: Graph, target: string, fusions: readonly string[]): Record<string, number> {
  const table = LOWERINGS[target] ?? {};
  const counts: Record<string, number> = {};
  const present = new Set(graph.nodes.filter((n) => n.domain === COMPOSITE_DOMAIN).map((n) => n.op));
  for (const [op, e] of Object.entries(table)) if (fusions.includes(e.fusion) && (!e.whereUsed || present.has(op))) counts[e.fusion] = 0;
  const lower = (node: Node): Node[] => {
    if (node.domain !== COMPOSITE_DOMAIN) return [node];
    const entry = Object.hasOwn(table, node.op) ? table[node.op] : undefined;
    const fused = entry && fusions.includes(entry.fusion) ? entry.lower(node, graph) : undefined;
    // A decomposition may itself use composites.
    if (!fused) return node.composite!.body.flatMap(lower);
    counts[entry!.fusion]! += 1;
    if (Array.isArray(fused)) {
      const last = fused.at(-1)!;
      last.outputs = node.outputs.map((v) => {
        v.producer = last;
        return v;
      });
      return fused;
    }
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

/** gate_up [E, H, 2I] made as Concat(gateᵀ, upᵀ) on the last axis: the two [E, I, H] stacks. */
function untransposedHalves(gateUp: Value): [Value, Value] | undefined {
  const concat = producer(gateUp, 'Concat');
  if (!concat || concat.inputs.length !== 2 || concat.attrs.axis?.value !== 2) return undefined;
  const parts = concat.inputs.map((v) => transposeOf(v, '0,2,1')?.inputs[0]);
  return parts[0] && parts[1] ? [parts[0], parts[1]] : undefined;
}

/**
 * A sparse MoE block (src/models/llm/moe.ts `sparseMoe`) as ONNX Runtime's `MoE`: the weights
 * turned to the kernel's layout (fc1 [E, 2I, H] with gate and up rows alternating, fc2 [E, H, I]:
 * torch's [out, in]), which ORT constant-folds at session creation. Checked on ORT 1.30's CPU
 * kernel (docs/performance.md#mixture-of-experts): routing softmax over all experts, top k,
 * renormalised with normalize_routing_weights (both settings honoured), SwiGLU interleaved
 * (swiglu_fusion 1) with activation_alpha / activation_beta / swiglu_limit as GPT-OSS's clamp.
 */
function lowerSparseMoe(node: Node, graph: Graph): Node[] {
  const spec = node.composite!.attrs as unknown as SparseMoeSpec;
  const [tokens, logits, gateUp, down, gateUpBias, downBias] = node.inputs as Value[];
  return detachedNodes(graph, node.scope, () => {
    const [E, H, twoI] = gateUp!.shape as [number, number, number];
    const I = twoI / 2;
    // The kernel wants torch's [out, in]; where the block stacked [out, in] weights and transposed
    // them (Qwen3-MoE's per-expert Linears), the untransposed stacks are used as they are: ONNX
    // Runtime folds a transposing chain of this size only partly and then redoes the rest on every
    // call (measured: 2.2 s instead of 0.13 s a decode step for 128 experts).
    const halves = spec.gateUp === 'halves' ? untransposedHalves(gateUp!) : undefined;
    let fc1: Value;
    let fc1Bias = gateUpBias;
    if (halves) {
      // [E, I, H] twice -> [E, I, 2, H] -> [E, 2I, H]: rows gate0, up0, gate1, up1, ...
      fc1 = op.Reshape(op.Concat(halves.map((h) => op.Unsqueeze(h, i64([2]))), { axis: 2 }), i64([E, 2 * I, H]));
    } else {
      fc1 = op.Transpose(gateUp!, { perm: [0, 2, 1] });
      if (spec.gateUp === 'halves') fc1 = op.Reshape(op.Transpose(op.Reshape(fc1, i64([E, 2, I, H])), { perm: [0, 2, 1, 3] }), i64([E, 2 * I, H]));
    }
    if (fc1Bias && spec.gateUp === 'halves') fc1Bias = op.Reshape(op.Transpose(op.Reshape(fc1Bias, i64([E, 2, I])), { perm: [0, 2, 1] }), i64([E, 2 * I]));
    const fc2 = transposeOf(down, '0,2,1')?.inputs[0] ?? op.Transpose(down!, { perm: [0, 2, 1] });
    return MoE(tokens!, logits!, fc1, fc1Bias, fc2, downBias, undefined, undefined, {
      k: spec.topK,
      activation_type: 'swiglu',
      swiglu_fusion: 1,
      activation_alpha: spec.alpha,
      activation_beta: spec.beta,
      ...(spec.limit !== undefined ? { swiglu_limit: spec.limit } : {}),
      normalize_routing_weights: spec.normalize ? 1 : 0,
    });
  });
}
