/**
 * --quant int4|int8: weight-only quantisation of the LLM's linear layers. Each Gemm(x, W, b,
 * transB=1) over a parameter W [N, K] under `language_model` becomes com.microsoft MatMulNBits
 * (x, W packed, scales, zero points, -, b); the values are quantised while binding
 * (src/quant/blockwise.ts through the write hook in src/artifact/write.ts).
 *
 * Policy: the token embedding stays in the stored float dtype (a Gather reads it). A tied lm_head
 * (a Gemm over the embedding) gets its own quantised copy, `<embedding>.lm_head` bound from the
 * embedding's key: it is the largest matrix a decode step reads (Qwen2-0.5B: 136M of 494M
 * parameters). An untied lm_head / output projection is quantised like the other linears. The
 * vision tower and the projector stay float.
 */
import { GraphParam, Value, type Graph, type Node } from '../ir/graph.ts';
import { MatMulNBitsSig } from '../ops/contrib.generated.ts';
import { quantShapes, type QuantScheme } from '../quant/blockwise.ts';
import { detachedNode, splice } from './fusion/rewrite.ts';
import { removeDeadNodes } from './dead-nodes.ts';

const LLM_SCOPE = 'language_model';

/** Gemm nodes that read each LLM weight, or undefined for weights something else also reads. */
function linearUses(graph: Graph): Map<GraphParam, Node[]> {
  const uses = new Map<GraphParam, Node[]>();
  const excluded = new Set<GraphParam>();
  for (const node of graph.nodes) {
    node.inputs.forEach((v, i) => {
      const p = v?.param;
      if (!p) return;
      const linear = node.op === 'Gemm' && node.domain === '' && i === 1 && node.attrs.transB?.value === 1 && !node.attrs.transA?.value;
      const alpha = (node.attrs.alpha?.value as number | undefined) ?? 1;
      const beta = (node.attrs.beta?.value as number | undefined) ?? 1;
      if (!linear || alpha !== 1 || beta !== 1 || !p.quantizable || !p.name.startsWith(`${LLM_SCOPE}.`) || p.shape.length !== 2) excluded.add(p);
      else uses.set(p, [...(uses.get(p) ?? []), node]);
    });
  }
  for (const p of excluded) uses.delete(p);
  return uses;
}

function companion(name: string, dtype: 'float32' | 'uint8', shape: number[]): Value {
  const v = new Value('param', dtype, shape);
  v.name = name;
  return v;
}

/** Gemms (transB) over a weight that must stay float, such as a tied lm_head over the embedding. */
function linearsOverFloatWeights(graph: Graph): Node[] {
  return graph.nodes.filter((n) => {
    const p = n.inputs[1]?.param;
    // An embedding read as a head; other float-only weights (LoRA adapters) stay as they are.
    return n.op === 'Gemm' && n.domain === '' && n.attrs.transB?.value === 1 && p !== undefined && p.decl.role === 'embedding' && p.name.startsWith(`${LLM_SCOPE}.`) && p.shape.length === 2;
  });
}

/** Reads the tied weight through a copy of its own (same key, same values) that can be quantised. */
function untie(graph: Graph, gemm: Node): void {
  const tied = gemm.inputs[1]!.param!;
  const copy = new GraphParam(tied.decl, `${tied.name.replace(/\.weight$/, '')}.lm_head`, tied.sourceName ?? tied.name);
  copy.trainable = tied.trainable;
  copy.quantizable = true; // only this Gemm reads the copy
  graph.params.push(copy);
  gemm.inputs = gemm.inputs.map((v, i) => (i === 1 ? copy.value : v));
}

/** Returns how many weights it quantised. */
export function quantizeLinears(graph: Graph, scheme: QuantScheme): number {
  for (const gemm of linearsOverFloatWeights(graph)) untie(graph, gemm);
  const uses = linearUses(graph);
  for (const [param, gemms] of uses) {
    const [n, k] = param.shape as [number, number];
    const shapes = quantShapes(n, k, scheme);
    param.value.dtype = 'uint8';
    param.value.shape = shapes.b;
    param.quant = {
      ...scheme,
      scales: companion(`${param.name}_scales`, 'float32', shapes.scales),
      zeroPoints: shapes.zeroPoints ? companion(`${param.name}_zero_points`, 'uint8', shapes.zeroPoints) : undefined,
    };
    for (const gemm of gemms) {
      const [x, , bias] = gemm.inputs;
      const node = detachedNode(graph, gemm.scope, MatMulNBitsSig, [x, param.value, param.quant.scales, param.quant.zeroPoints, undefined, bias], {
        K: k,
        N: n,
        bits: scheme.bits,
        block_size: scheme.blockSize,
        // Activations quantised to int8 inside the kernel (ORT's CPU fast path); weights already are.
        accuracy_level: 4,
      });
      splice(graph, node, [gemm.outputs[0]]);
    }
  }
  removeDeadNodes(graph);
  return uses.size;
}
