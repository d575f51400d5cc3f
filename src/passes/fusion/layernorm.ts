/**
 * fuse-skip-layernorm: LayerNormalization over the last dim of a residual Add (the ViT's
 * pre-norms, InternViT-300M style) becomes com.microsoft SkipLayerNormalization; the sum comes
 * back as its 4th output for the next residual.
 */
import type { Graph, Node, Value } from '../../ir/graph.ts';
import { SkipLayerNormalizationSig } from '../../ops/contrib.generated.ts';
import { detachedNode, producer, sameShape, splice } from './rewrite.ts';

function residualOperands(norm: Node): [Value, Value] | undefined {
  if (norm.op !== 'LayerNormalization' || norm.domain !== '' || !norm.inputs[2]) return undefined;
  const x = norm.inputs[0]!;
  if (((norm.attrs.axis?.value as number | undefined) ?? -1) !== -1 && norm.attrs.axis?.value !== x.rank - 1) return undefined;
  // ORT's kernel takes 3-D [batch, seq, hidden] or 2-D input.
  if (x.rank !== 3 && x.rank !== 2) return undefined;
  const add = producer(x, 'Add');
  if (!add) return undefined;
  const [a, b] = add.inputs as [Value, Value];
  return sameShape(a, x) && sameShape(b, x) ? [a, b] : undefined;
}

export function fuseSkipLayerNorm(graph: Graph): number {
  const matches = graph.nodes.flatMap((n) => {
    const operands = residualOperands(n);
    return operands ? [{ norm: n, operands }] : [];
  });
  for (const { norm, operands } of matches) {
    const eps = (norm.attrs.epsilon?.value as number | undefined) ?? 1e-5;
    const node = detachedNode(graph, norm.scope, SkipLayerNormalizationSig, [...operands, norm.inputs[1], norm.inputs[2]], { epsilon: eps }, 4);
    splice(graph, node, [norm.outputs[0], undefined, undefined, norm.inputs[0]]);
  }
  return matches.length;
}
