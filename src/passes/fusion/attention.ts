/**
 * fuse-vit-attention: the ViT's bidirectional attention core (src/nn/attention.ts fullAttention)
 * becomes com.microsoft MultiHeadAttention over the [batch, seq, heads*head_dim] q, k, v it was
 * reshaped from (no mask, no cache; the scale carried over).
 *
 *   Reshape(Transpose(MatMul(Softmax(MatMul(Mul(Tq(q4), s), Tk(k4))), Tv(v4)), 0213), [0, 0, H*d])
 *   with q4 = Reshape(q, [0, 0, H, d]), likewise k4 and v4
 */
import type { Graph, Node, Value } from '../../ir/graph.ts';
import { MultiHeadAttentionSig } from '../../ops/contrib.generated.ts';
import { BSHD_TO_BHSD, Uses, constInts, detachedNode, producer, scalarConst, splice, transposeOf } from './rewrite.ts';


/** q of q4 = Reshape(q, [0, 0, heads, headDim]) with q [b, s, heads*headDim]. */
function splitHeads(v: Value | undefined, heads: number, headDim: number): { q: Value; node: Node } | undefined {
  const r = producer(v, 'Reshape');
  const target = constInts(r?.inputs[1]);
  if (!r || !target || target.join() !== `0,0,${heads},${headDim}` || r.inputs[0]!.rank !== 3) return undefined;
  return { q: r.inputs[0]!, node: r };
}

interface AttentionMatch {
  q: Value;
  k: Value;
  v: Value;
  heads: number;
  scale: number;
  out: Value;
  nodes: Node[];
}

function matchAttention(merge: Node, uses: Uses): AttentionMatch | undefined {
  if (merge.op !== 'Reshape' || merge.domain !== '') return undefined;
  const back = transposeOf(merge.inputs[0], BSHD_TO_BHSD);
  const pv = producer(back?.inputs[0], 'MatMul');
  const softmax = producer(pv?.inputs[0], 'Softmax');
  const qk = producer(softmax?.inputs[0], 'MatMul');
  const scaled = producer(qk?.inputs[0], 'Mul');
  if (!back || !pv || !softmax || !qk || !scaled) return undefined;
  if (((softmax.attrs.axis?.value as number | undefined) ?? -1) !== -1 && softmax.attrs.axis?.value !== 3) return undefined;
  const tq = transposeOf(scaled.inputs[0], BSHD_TO_BHSD);
  const scale = scalarConst(scaled.inputs[1]);
  const tk = transposeOf(qk.inputs[1], '0,2,3,1');
  const tv = transposeOf(pv.inputs[1], BSHD_TO_BHSD);
  if (!tq || scale === undefined || !tk || !tv) return undefined;
  const [, heads, , headDim] = tq.outputs[0]!.shape;
  if (typeof heads !== 'number' || typeof headDim !== 'number') return undefined;
  if ((constInts(merge.inputs[1]) ?? []).join() !== `0,0,${heads * headDim}`) return undefined;
  const [q, k, v] = [tq, tk, tv].map((t) => splitHeads(t.inputs[0], heads, headDim));
  if (!q || !k || !v) return undefined;
  const nodes = [q.node, k.node, v.node, tq, tk, tv, scaled, qk, softmax, pv, back, merge];
  if (!nodes.slice(0, -1).every((n) => uses.onlyWithin(n.outputs[0]!, nodes))) return undefined;
  return { q: q.q, k: k.q, v: v.q, heads, scale, out: merge.outputs[0]!, nodes };
}

export function fuseVitAttention(graph: Graph): number {
  const uses = new Uses(graph);
  const matches = graph.nodes.map((n) => matchAttention(n, uses)).filter((m): m is AttentionMatch => m !== undefined);
  for (const m of matches) {
    const node = detachedNode(graph, m.nodes.at(-1)!.scope, MultiHeadAttentionSig, [m.q, m.k, m.v], { num_heads: m.heads, scale: m.scale });
    splice(graph, node, [m.out]);
  }
  return matches.length;
}
