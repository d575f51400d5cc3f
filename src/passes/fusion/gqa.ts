/**
 * fuse-gqa: the split decoder's cached causal attention (src/nn/attention.ts causalGqa with a
 * KvCache) becomes com.microsoft GroupQueryAttention: q, k, v as [b, s, heads*d] (rotary already
 * applied by the family's own rotary, which stays as it is: exact for every RoPE variant), the past
 * cache in its BNSH layout [b, kv_heads, past, d] and present out in the same layout.
 *
 * GQA reads each row's keys as one run [0, seqlens_k]: seqlens_k = sum(attention_mask) - 1 and
 * total_sequence_length = the mask's width. That is exact when each row's attended keys are its
 * first sum(mask) cache slots — batch 1, or right-padded rows whose cache GQA itself wrote (it puts
 * each row's new keys right after that row's own, not after the padding); the portable decoder's
 * cache and a GQA decoder's cache are therefore not interchangeable for padded batches.
 */
import type { Graph, Node, Value } from '../../ir/graph.ts';
import { GroupQueryAttentionSig } from '../../ops/contrib.generated.ts';
import { CastSig, ReduceSumSig, ReshapeSig, ShapeSig, SqueezeSig, SubSig } from '../../ops/onnx.generated.ts';
import { DTYPES } from '../../ir/dtype.ts';
import { i64 } from '../../dsl/constants.ts';
import { BSHD_TO_BHSD, Uses, constInts, detachedNode, producer, scalarConst, splice, transposeOf } from './rewrite.ts';


/** Concat([past, Transpose(x4, 0213)], axis 2) -> { past, x4 }. */
function cacheConcat(v: Value | undefined): { past: Value; x4: Value; nodes: Node[] } | undefined {
  const cat = producer(v, 'Concat');
  if (!cat || cat.attrs.axis?.value !== 2 || cat.inputs.length !== 2) return undefined;
  const [past, fresh] = cat.inputs as [Value, Value];
  const t = transposeOf(fresh, BSHD_TO_BHSD);
  if (past.kind !== 'input' || !t) return undefined;
  return { past, x4: t.inputs[0]!, nodes: [cat, t] };
}

/** Unsqueeze(v, [2]) -> v. */
function unsqueezed2(v: Value | undefined): { inner: Value; node: Node } | undefined {
  const u = producer(v, 'Unsqueeze');
  return u && (constInts(u.inputs[1]) ?? []).join() === '2' ? { inner: u.inputs[0]!, node: u } : undefined;
}

/**
 * The window of a decoder mask (src/nn/attention.ts): `null` for the cached causal mask
 * `Unsqueeze(Or(later, padding), [1, 2])`, W for the sliding one
 * `Or(causal, Unsqueeze(GreaterOrEqual(distance, W), [1, 2]))`, undefined for any other mask (left
 * decomposed: GQA could not reproduce it).
 */
function maskWindow(mask: Value | undefined): number | null | undefined {
  const unsqueezed = (v: Value | undefined) => {
    const u = producer(v, 'Unsqueeze');
    return u && (constInts(u.inputs[1]) ?? []).join() === '1,2' ? u.inputs[0] : undefined;
  };
  const isCausal = (v: Value | undefined) => producer(unsqueezed(v), 'Or') !== undefined;
  if (isCausal(mask)) return null;
  const or = producer(mask, 'Or');
  const far = producer(unsqueezed(or?.inputs[1]), 'GreaterOrEqual');
  const window = constInts(far?.inputs[1]);
  if (!or || !isCausal(or.inputs[0]) || window?.length !== 1) return undefined;
  return window[0]!;
}

interface GqaMatch {
  q4: Value;
  k4: Value;
  v4: Value;
  pastKey: Value;
  pastValue: Value;
  heads: number;
  kvHeads: number;
  headDim: number;
  scale: number;
  /**
   * GQA's local_window_size, -1 for none. Since ONNX Runtime 1.23 (microsoft/onnxruntime#25927) it
   * counts the query itself: a window of W keys (transformers' sliding_window) is local_window_size
   * W; before, the kernels kept W + 1. vlmc's runtime is 1.30 (checked by test/variants.test.ts).
   */
  localWindow: number;
  /** Per-head sink logits [heads] (GPT-OSS): GQA's head_sink. */
  sinks?: Value;
  out: Value;
  presentKey: Value;
  presentValue: Value;
  scope: string;
}

/**
 * The attention probabilities: `Softmax(Where(...))`, or with sinks (src/nn/attention.ts
 * softmaxWithSinks) `Slice(Softmax(Concat([Where(...), Expand(Reshape(sinks), shape)])), 0, -1)`:
 * the Where, the sinks [heads] (GQA's head_sink) and the nodes to replace.
 */
function attentionProbs(v: Value | undefined): { where: Node; sinks?: Value; nodes: Node[] } | undefined {
  const plain = producer(v, 'Softmax');
  const plainWhere = producer(plain?.inputs[0], 'Where');
  if (plain && plainWhere) return { where: plainWhere, nodes: [plain] };
  const slice = producer(v, 'Slice');
  const softmax = producer(slice?.inputs[0], 'Softmax');
  const cat = producer(softmax?.inputs[0], 'Concat');
  const where = producer(cat?.inputs[0], 'Where');
  const expand = producer(cat?.inputs[1], 'Expand');
  const shaped = producer(expand?.inputs[0], 'Reshape');
  const shape = producer(expand?.inputs[1], 'Concat');
  const rows = producer(shape?.inputs[0], 'Shape');
  if (!slice || !softmax || !cat || cat.inputs.length !== 2 || !where || !shaped || !shape || !rows || rows.inputs[0] !== where.outputs[0]) return undefined;
  if ((constInts(slice.inputs[2]) ?? []).join() !== '-1' || (constInts(slice.inputs[3]) ?? []).join() !== '-1') return undefined;
  return { where, sinks: shaped.inputs[0]!, nodes: [slice, softmax, cat, expand!, shaped, shape, rows] };
}

function matchGqa(merge: Node, uses: Uses): GqaMatch | undefined {
  if (merge.op !== 'Reshape' || merge.domain !== '') return undefined;
  const back = transposeOf(merge.inputs[0], BSHD_TO_BHSD);
  const heads4 = producer(back?.inputs[0], 'Reshape');
  const pv = producer(heads4?.inputs[0], 'MatMul');
  const probs = attentionProbs(pv?.inputs[0]);
  const where = probs?.where;
  const scaled = producer(where?.inputs[2], 'Mul');
  const qk = producer(scaled?.inputs[0], 'MatMul');
  if (!back || !heads4 || !pv || !probs || !where || !scaled || !qk) return undefined;
  if (scalarConst(where.inputs[1]) !== -Infinity) return undefined;
  const window = maskWindow(where.inputs[0]);
  if (window === undefined) return undefined;
  const scale = scalarConst(scaled.inputs[1]);
  const kT = transposeOf(qk.inputs[1], '0,1,2,4,3');
  const kU = unsqueezed2(kT?.inputs[0]);
  const vU = unsqueezed2(pv.inputs[1]);
  const key = cacheConcat(kU?.inner);
  const value = cacheConcat(vU?.inner);
  const qg = producer(qk.inputs[0], 'Reshape');
  const qT = transposeOf(qg?.inputs[0], BSHD_TO_BHSD);
  if (scale === undefined || !kT || !kU || !vU || !key || !value || !qg || !qT) return undefined;
  const [, heads, , headDim] = qT.outputs[0]!.shape;
  const [, kvHeads] = key.past.shape;
  if (typeof heads !== 'number' || typeof headDim !== 'number' || typeof kvHeads !== 'number') return undefined;
  // ONNX Runtime's GQA kernels take head sizes in multiples of 8 (CPU: "head_size must be a multiple of 8").
  if (headDim % 8 !== 0) return undefined;
  if ((constInts(merge.inputs[1]) ?? []).join() !== `0,0,${heads * headDim}`) return undefined;
  const nodes = [qT, qg, qk, scaled, where, ...probs.nodes, pv, heads4, back, merge, kT, kU.node, vU.node, ...key.nodes, ...value.nodes];
  // The present caches (the Concats) may also be graph outputs; everything else stays inside.
  const inner = nodes.filter((n) => n !== merge && n !== key.nodes[0] && n !== value.nodes[0]).map((n) => n.outputs[0]!);
  if (!inner.every((v) => uses.onlyWithin(v, nodes))) return undefined;
  return {
    q4: qT.inputs[0]!,
    k4: key.x4,
    v4: value.x4,
    pastKey: key.past,
    pastValue: value.past,
    heads,
    kvHeads,
    headDim,
    scale,
    localWindow: window ?? -1,
    ...(probs.sinks ? { sinks: probs.sinks } : {}),
    out: merge.outputs[0]!,
    presentKey: key.nodes[0]!.outputs[0]!,
    presentValue: value.nodes[0]!.outputs[0]!,
    scope: merge.scope,
  };
}

/** seqlens_k (int32 [b]) and total_sequence_length (int32 scalar) from attention_mask [b, total]. */
function sequenceLengths(graph: Graph, mask: Value): [Value, Value] {
  const node = (sig: Parameters<typeof detachedNode>[2], inputs: (Value | undefined)[], attrs: Record<string, unknown>) => {
    const n = detachedNode(graph, '', sig, inputs, attrs);
    splice(graph, n, []);
    return n.outputs[0]!;
  };
  const lengths = node(ReduceSumSig, [mask, i64([1])], { keepdims: 0 });
  const last = node(SubSig, [lengths, i64([1])], {});
  const seqlens = node(CastSig, [last], { to: DTYPES.int32.onnx });
  const total = node(SqueezeSig, [node(ShapeSig, [mask], { start: 1, end: 2 }), i64([0])], {});
  return [seqlens, node(CastSig, [total], { to: DTYPES.int32.onnx })];
}

/**
 * `windowsAndSinks` false (the webgpu target): only plain causal attention fuses; a window or sinks
 * stay decomposed (exact anywhere), because the WebGPU kernel's local_window_size / head_sink were
 * not checked against transformers as the CPU kernel's were (test/variants.test.ts).
 */
export function fuseGqa(graph: Graph, windowsAndSinks = true): number {
  const mask = graph.inputs.find((v) => v.name === 'attention_mask');
  if (!mask) return 0;
  const uses = new Uses(graph);
  const checked = (m: GqaMatch) => windowsAndSinks || (m.localWindow < 0 && !m.sinks);
  const matches = graph.nodes.map((n) => matchGqa(n, uses)).filter((m): m is GqaMatch => m !== undefined && checked(m));
  if (matches.length === 0) return 0;
  const [seqlens, total] = sequenceLengths(graph, mask);
  for (const m of matches) {
    const flat = (x: Value, n: number) => {
      const r = detachedNode(graph, m.scope, ReshapeSig, [x, i64([0, 0, n * m.headDim])], {});
      splice(graph, r, []);
      return r.outputs[0]!;
    };
    // head_sink is input 11 (after cos/sin caches, position_ids and attention_bias, unused here).
    const sinks = m.sinks ? [undefined, undefined, undefined, undefined, m.sinks] : [];
    const inputs = [flat(m.q4, m.heads), flat(m.k4, m.kvHeads), flat(m.v4, m.kvHeads), m.pastKey, m.pastValue, seqlens, total, ...sinks];
    const node = detachedNode(graph, m.scope, GroupQueryAttentionSig, inputs, { num_heads: m.heads, kv_num_heads: m.kvHeads, scale: m.scale, ...(m.localWindow >= 0 ? { local_window_size: m.localWindow } : {}) }, 3);
    splice(graph, node, [m.out, m.presentKey, m.presentValue]);
  }
  return matches.length;
}
