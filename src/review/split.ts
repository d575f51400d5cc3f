/**
 * A split artifact (`vlmc build --split`) as a review operand: its three graphs (vision, embedding,
 * decoder) over one data file, each summarised on its own, and the model they make together as one
 * summary, so a split artifact diffs against another (or against the graph it was built from) like
 * any artifact. Parameters shared by two graphs (the embedding table a tied lm_head reads) count
 * once, as in the manifest.
 */
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { readPipeline, SPLIT_ENTRIES } from '../generate/pipeline.ts';
import { summaryFromOnnxFile, type OnnxSummaryOptions } from './onnx.ts';
import { buildModules, comparePaths, compareStrings, sortedRecord } from './tree.ts';
import type { GraphSummary, IoEntry, NodeEntry, ParamEntry } from './types.ts';

/** One graph of a folder: its role (`vision`, `train`), its file and its summary. */
export interface GraphPart {
  name: string;
  file: string;
  summary: GraphSummary;
}

export function summaryFromSplitArtifact(dir: string, options: OnnxSummaryOptions = {}): { summary: GraphSummary; graphs: GraphPart[] } {
  const pipeline = readPipeline(dir);
  const graphs = SPLIT_ENTRIES.map((name) => {
    const file = pipeline.graphs?.[name]?.file ?? `${name}.onnx`;
    return { name, file, summary: summaryFromOnnxFile(join(dir, file), options) };
  });
  return { summary: mergeSummaries(pipeline.model ?? graphs[0]!.summary.name, graphs), graphs };
}

/**
 * The graphs as one: parameters by name (used where any graph reads them), op histograms added
 * per module, I/O, metadata and nodes under `<graph>/` names, the structure hash over the graphs'.
 */
export function mergeSummaries(name: string, graphs: readonly GraphPart[]): GraphSummary {
  const params = new Map<string, ParamEntry>();
  for (const g of graphs) {
    for (const p of g.summary.params) {
      const seen = params.get(p.name);
      params.set(p.name, seen ? { ...seen, used: seen.used || p.used } : p);
    }
  }
  const sortedParams = [...params.values()].sort((a, b) => comparePaths(a.name, b.name));
  const ops = mergeOps(graphs);
  const prefixed = <T extends { name: string }>(g: GraphPart, xs: readonly T[]): T[] => xs.map((x) => ({ ...x, name: `${g.name}/${x.name}` }));
  const opset: Record<string, number> = {};
  for (const g of graphs) for (const [d, v] of Object.entries(g.summary.opset)) opset[d] = Math.max(opset[d] ?? 0, v);
  const hash = createHash('sha256').update('vlmc-split/1\n');
  for (const g of graphs) hash.update(`${g.name} ${g.summary.structureHash}\n`);
  return {
    format: 'vlmc-graph-summary/1',
    name,
    opset: sortedRecord(Object.entries(opset)),
    inputs: graphs.flatMap((g) => prefixed<IoEntry>(g, g.summary.inputs)),
    outputs: graphs.flatMap((g) => prefixed<IoEntry>(g, g.summary.outputs)),
    metadata: sortedRecord(graphs.flatMap((g) => Object.entries(g.summary.metadata).map(([k, v]) => [`${g.name}/${k}`, v] as [string, string]))),
    params: sortedParams,
    nodeModules: graphs.every((g) => g.summary.nodeModules),
    modules: buildModules(sortedParams, Object.keys(ops)),
    ops,
    nodes: graphs.flatMap((g) => prefixed<NodeEntry>(g, g.summary.nodes)),
    structureHash: `sha256:${hash.digest('hex')}`,
  };
}

function mergeOps(graphs: readonly GraphPart[]): GraphSummary['ops'] {
  const byModule = new Map<string, Map<string, number>>();
  for (const g of graphs) {
    for (const [module, hist] of Object.entries(g.summary.ops)) {
      let h = byModule.get(module);
      if (!h) byModule.set(module, (h = new Map()));
      for (const [op, n] of Object.entries(hist)) h.set(op, (h.get(op) ?? 0) + n);
    }
  }
  return sortedRecord(
    [...byModule.entries()].map(([m, h]) => [m, sortedRecord(h.entries(), compareStrings)] as [string, Record<string, number>]),
    comparePaths,
  );
}
