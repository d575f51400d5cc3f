/**
 * What every fusion pass needs: matching a node's producers, emitting a replacement node outside a
 * trace, and splicing it into the graph in topological order.
 */
import { GraphBuilder, withBuilder } from '../../ir/builder.ts';
import type { Graph, Node, Value } from '../../ir/graph.ts';
import type { OpSignature } from '../../ops/signature.ts';

/** Consumers of every value, for the single-use checks that keep a fusion from dropping work. */
export class Uses {
  private readonly map = new Map<Value, Node[]>();
  private readonly outputs: Set<Value>;
  constructor(graph: Graph) {
    for (const n of graph.nodes) for (const v of n.inputs) if (v) this.map.set(v, [...(this.map.get(v) ?? []), n]);
    this.outputs = new Set(graph.outputs);
  }
  /** True when `v` feeds only nodes of the pattern being replaced and is no graph output. */
  onlyWithin(v: Value, pattern: readonly Node[]): boolean {
    if (this.outputs.has(v)) return false;
    return (this.map.get(v) ?? []).every((n) => pattern.includes(n));
  }
}

/** `v`'s producer if it is an `op` node (default domain), else undefined. */
export function producer(v: Value | undefined, op: string): Node | undefined {
  const p = v?.producer;
  return p && p.op === op && p.domain === '' ? p : undefined;
}

/** The single value of a float scalar (or one-element) constant, else undefined. */
export function scalarConst(v: Value | undefined): number | undefined {
  const d = v?.data;
  if (!d || d.data.length !== 1 || (d.dtype !== 'float32' && d.dtype !== 'float64')) return undefined;
  return Number(d.data[0]);
}

export function intsAttr(node: Node, name: string): number[] | undefined {
  return node.attrs[name]?.value as number[] | undefined;
}

/** The permutation that takes [b, s, heads, d] to [b, heads, s, d] (and back). */
export const BSHD_TO_BHSD = '0,2,1,3';

/** The Transpose producing `v`, when its perm is `perm` (comma-joined). */
export function transposeOf(v: Value | undefined, perm: string): Node | undefined {
  const t = producer(v, 'Transpose');
  return t && (intsAttr(t, 'perm') ?? []).join() === perm ? t : undefined;
}

/** The values of an int64 constant, or undefined. */
export function constInts(v: Value | undefined): number[] | undefined {
  const d = v?.data;
  return d && d.dtype === 'int64' ? Array.from(d.data as BigInt64Array, Number) : undefined;
}

export function sameShape(a: Value, b: Value): boolean {
  return a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
}

/** One node built against `sig`, checked and shape-inferred like a traced one, in no graph yet. */
export function detachedNode(
  graph: Graph,
  scope: string,
  sig: OpSignature,
  inputs: (Value | undefined)[],
  attrs: Record<string, unknown>,
  numOutputs?: number,
): Node {
  const builder = new GraphBuilder(graph.opset);
  withBuilder(builder, () => builder.withScope(scope, undefined, () => builder.emit(sig, inputs, attrs, numOutputs)));
  return builder.nodes[0]!;
}

/** The nodes `build` emits (ops called as while tracing), in no graph yet; the last produces the result. */
export function detachedNodes(graph: Graph, scope: string, build: () => Value): Node[] {
  const builder = new GraphBuilder(graph.opset);
  withBuilder(builder, () => builder.withScope(scope, undefined, build));
  return builder.nodes;
}

/**
 * Puts `node` into the graph right after the last producer of its inputs and makes every use of
 * each `replaced[i]` (node inputs, graph outputs) read `node.outputs[i]` instead. The replaced
 * nodes become dead; removeDeadNodes drops them.
 */
export function splice(graph: Graph, node: Node, replaced: (Value | undefined)[]): void {
  const producers = new Set(node.inputs.map((v) => v?.producer).filter((p): p is Node => p !== undefined));
  let at = 0;
  graph.nodes.forEach((n, i) => {
    if (producers.has(n)) at = i + 1;
  });
  graph.nodes.splice(at, 0, node);
  const swap = new Map<Value, Value>();
  replaced.forEach((old, i) => {
    if (!old) return;
    // Same values, so the same (possibly symbolic) shape: graph outputs keep their declared dims.
    node.outputs[i]!.shape = old.shape;
    swap.set(old, node.outputs[i]!);
  });
  for (const n of graph.nodes) n.inputs = n.inputs.map((v) => (v && swap.get(v)) ?? v);
  graph.outputs = graph.outputs.map((v) => {
    const to = swap.get(v);
    if (!to) return v;
    to.name = v.name;
    return to;
  });
}
