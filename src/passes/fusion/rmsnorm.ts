/**
 * fuse-rmsnorm: the decomposed RMSNorm (src/nn/layers.ts rmsNormalize, then the weight) becomes
 * com.microsoft SkipSimplifiedLayerNormalization when its input is a residual Add of two
 * same-shape tensors (the sum comes back as the op's 4th output, for the next residual). A norm
 * without a residual (the LLM's first input_layernorm, InternViT-6B's q/k norms) becomes the
 * standard RMSNormalization from opset 23 on; below that it stays decomposed: ORT's own
 * SimplifiedLayerNormalization sits in the default domain without an ONNX schema, so the ONNX
 * checker rejects it. Both fused ops accumulate in fp32.
 *
 *   y = Mul(Mul(x, Reciprocal(Sqrt(Add(ReduceMean(Mul(x, x), axes=[-1]), eps)))), weight)
 */
import type { Graph, Node, Value } from '../../ir/graph.ts';
import { SkipSimplifiedLayerNormalizationSig } from '../../ops/contrib.generated.ts';
import { RMSNormalizationSig } from '../../ops/onnx.generated.ts';
import { Uses, detachedNode, intsAttr, producer, sameShape, scalarConst, splice } from './rewrite.ts';

interface RmsNormMatch {
  x: Value;
  weight: Value;
  eps: number;
  out: Value;
  nodes: Node[];
}

/** Either operand order of a commutative binary node: [the one `test` accepts, the other]. */
function eitherOrder(node: Node, test: (v: Value) => boolean): [Value, Value] | undefined {
  const [a, b] = node.inputs as [Value, Value];
  if (test(a)) return [a, b];
  if (test(b)) return [b, a];
  return undefined;
}

function matchRmsNorm(scale: Node, uses: Uses): RmsNormMatch | undefined {
  if (scale.op !== 'Mul' || scale.domain !== '') return undefined;
  const pair = eitherOrder(scale, (v) => v.kind === 'param' && v.rank === 1);
  if (!pair) return undefined;
  const [weight, normalized] = pair;
  const norm = producer(normalized, 'Mul');
  if (!norm) return undefined;
  for (const [x, inv] of [norm.inputs, [...norm.inputs].reverse()] as [Value, Value][]) {
    const recip = producer(inv, 'Reciprocal');
    const sqrt = producer(recip?.inputs[0], 'Sqrt');
    const add = producer(sqrt?.inputs[0], 'Add');
    if (!recip || !sqrt || !add) continue;
    const addPair = eitherOrder(add, (v) => scalarConst(v) !== undefined);
    const mean = producer(addPair?.[1], 'ReduceMean');
    const square = producer(mean?.inputs[0], 'Mul');
    if (!addPair || !mean || !square || square.inputs[0] !== x || square.inputs[1] !== x) continue;
    if (mean.inputs.length > 1 || (intsAttr(mean, 'axes') ?? []).join() !== '-1' || (mean.attrs.keepdims?.value ?? 1) !== 1) continue;
    if (weight.shape[0] !== x.shape[x.rank - 1]) continue;
    const nodes = [square, mean, add, sqrt, recip, norm, scale];
    const inner = [square, mean, add, sqrt, recip, norm].map((n) => n.outputs[0]!);
    if (!inner.every((v) => uses.onlyWithin(v, nodes))) continue;
    return { x, weight, eps: scalarConst(addPair[0])!, out: scale.outputs[0]!, nodes };
  }
  return undefined;
}

/** The residual Add feeding `x`, if both its operands have x's shape (no broadcast). */
function residualAdd(x: Value): Node | undefined {
  const add = producer(x, 'Add');
  if (!add) return undefined;
  const [a, b] = add.inputs as [Value, Value];
  return sameShape(a, x) && sameShape(b, x) && a.dtype === x.dtype && b.dtype === x.dtype ? add : undefined;
}

/** The opset that has RMSNormalization. */
const RMS_NORMALIZATION_OPSET = 23;

export function fuseRmsNorm(graph: Graph): number {
  const uses = new Uses(graph);
  const matches = graph.nodes.map((n) => matchRmsNorm(n, uses)).filter((m): m is RmsNormMatch => m !== undefined);
  let fused = 0;
  for (const m of matches) {
    const scope = m.nodes.at(-1)!.scope;
    const add = residualAdd(m.x);
    if (add) {
      const node = detachedNode(graph, scope, SkipSimplifiedLayerNormalizationSig, [add.inputs[0], add.inputs[1], m.weight], { epsilon: m.eps }, 4);
      splice(graph, node, [m.out, undefined, undefined, m.x]);
    } else if (graph.opset >= RMS_NORMALIZATION_OPSET) {
      const node = detachedNode(graph, scope, RMSNormalizationSig, [m.x, m.weight], { axis: -1, epsilon: m.eps, stash_type: 1 });
      splice(graph, node, [m.out]);
    } else continue;
    fused++;
  }
  return fused;
}
