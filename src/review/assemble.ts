/**
 * Builds a `GraphSummary` from the source-independent parts that the IR reader (summary.ts) and
 * the .onnx reader (onnx.ts) both produce, so the two kinds of summary compare like for like.
 */
import { nodeSignature, structureHash, type CanonNode, type CanonOutput } from './hash.ts';
import { buildModules, comparePaths, compareStrings, sortedRecord } from './tree.ts';
import type { GraphSummary, IoEntry, ParamEntry } from './types.ts';

export interface SummaryParts {
  name: string;
  opset: Record<string, number>;
  inputs: IoEntry[];
  outputs: CanonOutput[];
  metadata: Record<string, string>;
  /** Any order; `used` is filled in here from the nodes. */
  params: Omit<ParamEntry, 'used'>[];
  nodes: CanonNode[];
  nodeModules: boolean;
}

export function assembleSummary(parts: SummaryParts): GraphSummary {
  const used = new Set<string>();
  for (const n of parts.nodes) for (const r of n.inputs) if (r.kind === 'param') used.add(r.name);
  const params = parts.params
    .map((p) => ({ ...p, used: used.has(p.name) }))
    .sort((a, b) => comparePaths(a.name, b.name));
  const ops = opHistogram(parts.nodes);
  return {
    format: 'vlmc-graph-summary/1',
    name: parts.name,
    opset: sortedRecord(Object.entries(parts.opset)),
    inputs: parts.inputs,
    outputs: parts.outputs.map(({ name, dtype, shape }) => ({ name, dtype, shape })),
    metadata: sortedRecord(Object.entries(parts.metadata)),
    params: params.map(orderParamKeys),
    nodeModules: parts.nodeModules,
    modules: buildModules(params, Object.keys(ops)),
    ops,
    nodes: parts.nodes.map((n) => ({ name: n.name, op: opLabel(n), ...(n.module === undefined ? {} : { module: n.module }), sig: nodeSignature(n) })),
    structureHash: structureHash(parts.opset, parts.inputs, parts.nodes, parts.outputs),
  };
}

/** The op as counted: `MatMul`, or `com.microsoft.Attention` outside the default domain. */
const opLabel = (n: CanonNode): string => (n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.op}` : n.op);

function opHistogram(nodes: readonly CanonNode[]): Record<string, Record<string, number>> {
  const byModule = new Map<string, Map<string, number>>();
  for (const n of nodes) {
    const module = n.module ?? '';
    let h = byModule.get(module);
    if (!h) byModule.set(module, (h = new Map()));
    h.set(opLabel(n), (h.get(opLabel(n)) ?? 0) + 1);
  }
  return sortedRecord(
    [...byModule.entries()].map(([m, h]) => [m, sortedRecord(h.entries(), compareStrings)] as [string, Record<string, number>]),
    comparePaths,
  );
}

/** Same key order in every summary, so JSON output is byte-stable. */
function orderParamKeys(p: ParamEntry): ParamEntry {
  const out: ParamEntry = { name: p.name, shape: p.shape, dtype: p.dtype, used: p.used };
  if (p.trainable !== undefined) out.trainable = p.trainable;
  if (p.sha256 !== undefined) out.sha256 = p.sha256;
  return out;
}

/**
 * The summary with freeze states filled in from elsewhere (an artifact's manifest), module
 * trainable counts recomputed. Parameters the map does not name keep what they had.
 */
export function withTrainable(summary: GraphSummary, trainable: ReadonlyMap<string, boolean>): GraphSummary {
  const params = summary.params.map((p) => (trainable.has(p.name) ? orderParamKeys({ ...p, trainable: trainable.get(p.name)! }) : p));
  return { ...summary, params, modules: buildModules(params, Object.keys(summary.ops)) };
}
