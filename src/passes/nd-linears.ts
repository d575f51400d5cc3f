/**
 * nd-linears (`--target gpu`): a Linear over an N-D activation is, in the portable graph,
 * Reshape(x, [-1, K]) -> Gemm(transB) -> Reshape(y, [...x.shape[:-1], N]), where the second shape is
 * Concat(Shape(x)[:-1], [N]) whenever two leading dims are symbolic: five nodes per Linear, about
 * 700 of the 1B decoder's 1,250 nodes after ONNX Runtime's own optimisations, each paying a kernel
 * dispatch in every decode step. ONNX Runtime's kernels read N-D activations directly, so:
 *   - a bias-free Gemm becomes com.microsoft FusedMatMul(x, W, transB = 1) (fp32 graphs: the CPU EP
 *     has no half FusedMatMul); the same MLAS GEMM over [rows, K] x W^T, so the same values;
 *   - a MatMulNBits (after `quantize`) reads x as it is (its A may have any rank).
 * A Gemm with a bias stays as it is: FusedMatMul + Add would add the bias after the products
 * instead of accumulating onto it, which changes the rounding.
 * The flattened value's restoring Reshape may sit behind a Split (packed projections, each part
 * restored on its own); then the Split moves to the last axis of the N-D result.
 */
import type { Dim, Graph, Node, Value } from '../ir/graph.ts';
import { FusedMatMulSig, MatMulNBitsSig } from '../ops/contrib.generated.ts';
import { SplitSig } from '../ops/onnx.generated.ts';
import { constInts, detachedNode, producer, splice } from './fusion/rewrite.ts';
import { removeDeadNodes } from './dead-nodes.ts';

function consumers(graph: Graph): Map<Value, Node[]> {
  const map = new Map<Value, Node[]>();
  for (const n of graph.nodes) for (const v of n.inputs) if (v) map.set(v, [...(map.get(v) ?? []), n]);
  return map;
}

/** The Reshape that gives `y` [rows, n] back the leading dims `lead`, when it is y's only consumer. */
function restoring(y: Value, lead: Dim[], uses: Map<Value, Node[]>, outputs: Set<Value>): Node | undefined {
  const only = uses.get(y);
  if (outputs.has(y) || only?.length !== 1) return undefined;
  const r = only[0]!;
  if (r.op !== 'Reshape' || r.domain !== '' || r.inputs[0] !== y) return undefined;
  const want = [...lead, y.shape[1]];
  const got = r.outputs[0]!.shape;
  return got.length === want.length && got.every((d, i) => d === want[i]) ? r : undefined;
}

interface Flattened {
  linear: Node;
  /** The N-D activation before Reshape(x, [-1, K]). */
  x: Value;
  /** The values to replace, and a Split between when the result was split before restoring. */
  restored: Value[];
  split: Node | undefined;
}

function flattened(node: Node, uses: Map<Value, Node[]>, outputs: Set<Value>, halfCompute: boolean): Flattened | undefined {
  const gemm = node.op === 'Gemm' && node.domain === '' && !halfCompute && node.attrs.transB?.value === 1 && !node.attrs.transA?.value && !node.inputs[2] && ((node.attrs.alpha?.value as number | undefined) ?? 1) === 1;
  const nbits = node.op === 'MatMulNBits' && node.domain === 'com.microsoft';
  if (!gemm && !nbits) return undefined;
  const flatten = producer(node.inputs[0], 'Reshape');
  const x = flatten?.inputs[0];
  if (!flatten || !x || x.rank < 3 || constInts(flatten.inputs[1])?.join() !== `-1,${x.shape[x.rank - 1]}`) return undefined;
  const y = node.outputs[0]!;
  const lead = x.shape.slice(0, -1);
  const direct = restoring(y, lead, uses, outputs);
  if (direct) return { linear: node, x, restored: [direct.outputs[0]!], split: undefined };
  const split = uses.get(y)?.length === 1 && !outputs.has(y) ? uses.get(y)![0]! : undefined;
  if (!split || split.op !== 'Split' || split.domain !== '' || split.attrs.axis?.value !== 1) return undefined;
  const parts = split.outputs.map((o) => restoring(o, lead, uses, outputs));
  if (parts.some((p) => p === undefined)) return undefined;
  return { linear: node, x, restored: parts.map((p) => p!.outputs[0]!), split };
}

function rewrite(graph: Graph, f: Flattened): void {
  const { linear, x } = f;
  const inputs = [x, ...linear.inputs.slice(1)];
  const nd =
    linear.op === 'Gemm'
      ? detachedNode(graph, linear.scope, FusedMatMulSig, [x, linear.inputs[1]], { transB: 1 })
      : detachedNode(graph, linear.scope, MatMulNBitsSig, inputs, Object.fromEntries(Object.entries(linear.attrs).map(([k, a]) => [k, a.value])));
  if (!f.split) {
    splice(graph, nd, f.restored);
    return;
  }
  splice(graph, nd, []);
  const split = detachedNode(graph, f.split.scope, SplitSig, [nd.outputs[0], f.split.inputs[1]], { axis: -1 }, f.split.outputs.length);
  splice(graph, split, f.restored);
}

/** Returns how many Linears now read their N-D activation directly. */
export function ndLinears(graph: Graph, halfCompute: boolean): number {
  const uses = consumers(graph);
  const outputs = new Set(graph.outputs);
  const found = graph.nodes.map((n) => flattened(n, uses, outputs, halfCompute)).filter((f): f is Flattened => f !== undefined);
  for (const f of found) rewrite(graph, f);
  removeDeadNodes(graph);
  return found.length;
}
