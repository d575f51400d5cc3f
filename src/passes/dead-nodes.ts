/** Removes nodes whose outputs no graph output depends on. Parameters stay (they are the model). */
import type { Graph, Node, Value } from '../ir/graph.ts';

export function removeDeadNodes(graph: Graph): void {
  const live = new Set<Value>(graph.outputs);
  const kept: Node[] = [];
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const node = graph.nodes[i]!;
    if (!node.outputs.some((o) => live.has(o))) continue;
    kept.push(node);
    for (const v of node.inputs) if (v) live.add(v);
  }
  graph.nodes = kept.reverse();
}

/** Drops parameters no node reads (a graph traced from one entry point of a larger model). */
export function removeUnusedParams(graph: Graph): void {
  const read = new Set<Value>();
  for (const node of graph.nodes) for (const v of node.inputs) if (v) read.add(v);
  graph.params = graph.params.filter((p) => read.has(p.value));
}
