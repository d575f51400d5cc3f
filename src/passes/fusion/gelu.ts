/**
 * fuse-gelu: the exact (erf) GELU of src/nn/layers.ts, Mul(Mul(x, Add(1, Erf(Mul(x, 1/sqrt2)))), 0.5),
 * becomes com.microsoft Gelu (also exact erf; FastGelu would be the tanh approximation).
 */
import type { Graph, Node, Value } from '../../ir/graph.ts';
import { GeluSig } from '../../ops/contrib.generated.ts';
import { Uses, detachedNode, producer, scalarConst, splice } from './rewrite.ts';

const near = (a: number | undefined, b: number): boolean => a !== undefined && Math.abs(a - b) <= 1e-6 * Math.abs(b);

/** [the operand that is a constant equal to `c`, the other], either order. */
function withConst(node: Node, c: number): Value | undefined {
  const [a, b] = node.inputs as [Value, Value];
  if (near(scalarConst(b), c)) return a;
  if (near(scalarConst(a), c)) return b;
  return undefined;
}

function matchGelu(half: Node, uses: Uses): { x: Value; nodes: Node[] } | undefined {
  if (half.op !== 'Mul' || half.domain !== '') return undefined;
  const prod = producer(withConst(half, 0.5), 'Mul');
  if (!prod) return undefined;
  for (const [x, other] of [prod.inputs, [...prod.inputs].reverse()] as [Value, Value][]) {
    const add = producer(other, 'Add');
    const erf = producer(add && withConst(add, 1), 'Erf');
    const scaled = producer(erf?.inputs[0], 'Mul');
    if (!add || !erf || !scaled || withConst(scaled, Math.SQRT1_2) !== x) continue;
    const nodes = [scaled, erf, add, prod, half];
    if (![scaled, erf, add, prod].every((n) => uses.onlyWithin(n.outputs[0]!, nodes))) continue;
    return { x, nodes };
  }
  return undefined;
}

export function fuseGelu(graph: Graph): number {
  const uses = new Uses(graph);
  const matches = graph.nodes.flatMap((n) => {
    const m = matchGelu(n, uses);
    return m ? [{ ...m, out: n.outputs[0]! }] : [];
  });
  for (const m of matches) splice(graph, detachedNode(graph, m.nodes.at(-1)!.scope, GeluSig, [m.x], {}), [m.out]);
  return matches.length;
}
