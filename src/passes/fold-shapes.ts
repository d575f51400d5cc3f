/**
 * Folds shape arithmetic whose result is known while tracing (every element a number) into
 * constants, so the emitted graph carries literal Reshape targets instead of Shape/Gather/Concat
 * chains. Symbolic parts (batch, seq) stay as computed in the graph.
 */
import { constValue, type Graph, type Value } from '../ir/graph.ts';

export function foldShapes(graph: Graph): void {
  const replacement = new Map<Value, Value>();
  for (const node of graph.nodes) {
    node.inputs = node.inputs.map((v) => (v && replacement.get(v)) ?? v);
    if (node.outputs.length !== 1) continue;
    const out = node.outputs[0]!;
    if (out.dtype !== 'int64' || !out.sym || !out.sym.every((d) => typeof d === 'number')) continue;
    if (out.rank > 1 || graph.outputs.includes(out)) continue;
    const values = out.sym as number[];
    replacement.set(out, constValue('int64', out.shape as number[], BigInt64Array.from(values, (v) => BigInt(v))));
  }
}
