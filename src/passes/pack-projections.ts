/**
 * pack-projections (`--target gpu`, a fusion named in `--fuse`): Linears that read the same input
 * (q/k/v, gate/up) become one Gemm over their weights concatenated along the output axis, and a
 * Split. The packed GEMM streams the same weight bytes as the separate ones, but a decode step
 * (M = 1) pays one kernel dispatch over the thread pool instead of three, and the small k/v
 * projections no longer run alone. Each output column is the same dot product over K as before,
 * so the outputs are unchanged.
 *
 * The packed parameter is named after its parts (`...self_attn.q_proj+k_proj+v_proj.weight`) and
 * bound by concatenating the parts' checkpoint keys along axis 0 while streaming
 * (`GraphParam.packs`, src/bind/plan.ts), for every weight source and layout. A later `quantize`
 * pass packs it like any other LLM Linear. Not packed: Linears whose weight or bias something else
 * also reads, and Linears that carry a LoRA adapter (`<module>.lora_A.weight`, src/dsl/lora.ts),
 * which stay separate so the adapter's weights keep their own Linear.
 */
import { GraphParam, Param, type Graph, type Node, type Value } from '../ir/graph.ts';
import { GemmSig, SplitSig } from '../ops/onnx.generated.ts';
import { i64 } from '../dsl/constants.ts';
import { loraModuleOf } from '../dsl/lora.ts';
import { constInts, detachedNode, producer, splice } from './fusion/rewrite.ts';

interface LinearUse {
  node: Node;
  weight: GraphParam;
  bias: GraphParam | undefined;
  /** What the Gemm reads: a 2-D value. */
  input: Value;
  /** The activation before linear()'s flattening Reshape ([..., K] -> [-1, K]), else the input itself. */
  source: Value;
}

/** How many node inputs read each parameter. */
function paramReads(graph: Graph): Map<GraphParam, number> {
  const reads = new Map<GraphParam, number>();
  for (const n of graph.nodes) for (const v of n.inputs) if (v?.param) reads.set(v.param, (reads.get(v.param) ?? 0) + 1);
  return reads;
}

/** The Linears (module paths) that carry a LoRA adapter as parameters. */
function modulesWithLora(graph: Graph): Set<string> {
  return new Set(graph.params.flatMap((p) => loraModuleOf(p.name)?.module ?? []));
}

const modulePath = (p: GraphParam) => p.name.replace(/\.weight$/, '');

function asLinear(node: Node, reads: Map<GraphParam, number>, lora: Set<string>): LinearUse | undefined {
  if (node.op !== 'Gemm' || node.domain !== '' || node.attrs.transB?.value !== 1 || node.attrs.transA?.value) return undefined;
  if (((node.attrs.alpha?.value as number | undefined) ?? 1) !== 1 || ((node.attrs.beta?.value as number | undefined) ?? 1) !== 1) return undefined;
  const [input, w, b] = node.inputs;
  const weight = w?.param;
  if (!input || !weight || weight.quant || weight.shape.length !== 2 || !weight.name.endsWith('.weight') || reads.get(weight) !== 1) return undefined;
  if (b && (!b.param || b.param.shape.length !== 1 || reads.get(b.param) !== 1)) return undefined;
  if (lora.has(modulePath(weight))) return undefined;
  const k = weight.shape[1]!;
  const flatten = producer(input, 'Reshape');
  const source = flatten && constInts(flatten.inputs[1])?.join() === `-1,${k}` ? flatten.inputs[0]! : input;
  return { node, weight, bias: b?.param, input, source };
}

/** Linears over one source that can share a Gemm: same K, dtype and trainability, biased alike. */
function packableGroups(graph: Graph): LinearUse[][] {
  const reads = paramReads(graph);
  const lora = modulesWithLora(graph);
  const bySource = new Map<Value, LinearUse[]>();
  for (const node of graph.nodes) {
    const l = asLinear(node, reads, lora);
    if (l) bySource.set(l.source, [...(bySource.get(l.source) ?? []), l]);
  }
  const groups: LinearUse[][] = [];
  for (const uses of bySource.values()) {
    const first = uses[0]!;
    const alike = uses.filter(
      (u) =>
        u.weight.shape[1] === first.weight.shape[1] &&
        u.weight.dtype === first.weight.dtype &&
        u.weight.trainable === first.weight.trainable &&
        (u.bias === undefined) === (first.bias === undefined) &&
        modulePath(u.weight).replace(/\.[^.]+$/, '') === modulePath(first.weight).replace(/\.[^.]+$/, ''),
    );
    if (alike.length >= 2) groups.push(alike);
  }
  return groups;
}

/** `a.b.q_proj.weight` + `a.b.k_proj.weight` -> `a.b.q_proj+k_proj.weight` (same for `.bias`). */
function packedName(parts: GraphParam[], suffix: 'weight' | 'bias'): string {
  const paths = parts.map((p) => p.name.slice(0, -(suffix.length + 1)));
  const parent = paths[0]!.replace(/\.[^.]+$/, '');
  return `${parent}.${paths.map((p) => p.slice(parent.length + 1)).join('+')}.${suffix}`;
}

/** One parameter bound as the parts concatenated along axis 0; it takes the first part's place in graph.params. */
function packParams(graph: Graph, parts: GraphParam[], suffix: 'weight' | 'bias'): GraphParam {
  const first = parts[0]!;
  const rows = parts.reduce((n, p) => n + p.shape[0]!, 0);
  const decl = new Param(packedName(parts, suffix), [rows, ...first.shape.slice(1)], first.dtype, first.init, first.decl.role);
  const packed = new GraphParam(decl);
  packed.packs = parts.map((p) => ({ name: p.sourceName ?? p.name, shape: p.shape, init: p.init }));
  packed.trainable = first.trainable;
  packed.quantizable = parts.every((p) => p.quantizable);
  const at = graph.params.indexOf(first);
  graph.params = graph.params.filter((p) => !parts.includes(p));
  graph.params.splice(at, 0, packed);
  return packed;
}

function packGroup(graph: Graph, group: LinearUse[]): void {
  const weight = packParams(graph, group.map((u) => u.weight), 'weight');
  const bias = group[0]!.bias ? packParams(graph, group.map((u) => u.bias!), 'bias') : undefined;
  const scope = group[0]!.node.scope.replace(/\.[^.]+$/, '');
  const gemm = detachedNode(graph, scope, GemmSig, [group[0]!.input, weight.value, bias?.value], { transB: 1 });
  splice(graph, gemm, []);
  const widths = group.map((u) => u.weight.shape[0]!);
  const split = detachedNode(graph, scope, SplitSig, [gemm.outputs[0], i64(widths)], { axis: 1 }, group.length);
  splice(graph, split, group.map((u) => u.node.outputs[0]));
}

/** Returns how many groups it packed. */
export function packProjections(graph: Graph): number {
  const groups = packableGroups(graph);
  for (const g of groups) packGroup(graph, g);
  return groups.length;
}
