/**
 * Rough FLOP counts of nodes, for the build summary's pruning report: 2 M N K for products, one per
 * output element for everything else. Symbolic dims are evaluated at a representative size.
 */
import type { Dim, Node } from '../ir/graph.ts';

export type DimSizes = Record<string, number>;

/** The value of a symbolic dim expression (`batch*seq`, `(seq)-1`); unknown names count as 1. */
export function evalDim(d: Dim, sizes: DimSizes): number {
  if (typeof d === 'number') return d;
  const expr = d.replace(/[A-Za-z_][A-Za-z0-9_]*/g, (name) => String(sizes[name] ?? 1));
  if (!/^[0-9+\-*/() .]+$/.test(expr)) return 1;
  const v = Number(Function(`"use strict"; return (${expr});`)());
  return Number.isFinite(v) && v > 0 ? Math.round(v) : 1;
}

export function nodeFlops(node: Node, sizes: DimSizes): number {
  const count = (shape: readonly Dim[]) => shape.reduce<number>((n, d) => n * evalDim(d, sizes), 1);
  const out = node.outputs[0];
  if (!out) return 0;
  const elements = count(out.shape);
  if (node.op === 'MatMul' || node.op === 'Gemm') {
    const a = node.inputs[0]!;
    const transA = node.op === 'Gemm' && node.attrs.transA?.value === 1;
    const k = evalDim(transA ? a.shape[0]! : a.shape[a.rank - 1]!, sizes);
    return 2 * elements * k;
  }
  if (node.op === 'Conv') {
    const w = node.inputs[1]!;
    return 2 * elements * count(w.shape.slice(1));
  }
  if (node.op === 'Shape' || node.op === 'Reshape' || node.op === 'Unsqueeze' || node.op === 'Squeeze') return 0;
  return elements;
}

export function totalFlops(nodes: readonly Node[], sizes: DimSizes): number {
  return nodes.reduce((n, node) => n + nodeFlops(node, sizes), 0);
}
