/**
 * DSL -> IR: trace a model's forward into a graph, then run the passes that make it small,
 * checked and deterministic.
 */
import { GraphBuilder, withBuilder } from './ir/builder.ts';
import { Value, type Graph } from './ir/graph.ts';
import { resetFreshDims } from './ir/dims.ts';
import { assignPaths, collectParams } from './dsl/module.ts';
import { applyFreezeRules } from './dsl/freeze.ts';
import { MODEL_ENTRY, type EntryPoint, type Model } from './dsl/model.ts';
import { UserError } from './errors.ts';
import { foldShapes } from './passes/fold-shapes.ts';
import { removeDeadNodes, removeUnusedParams } from './passes/dead-nodes.ts';
import { nameGraph } from './passes/naming.ts';
import { checkOpset } from './passes/opset.ts';
import { storeParamsAs } from './passes/param-storage.ts';
import type { ParamDType } from './ir/dtype.ts';

export const DEFAULT_OPSET = 17;

export interface CompileOptions {
  opset?: number;
  /** Element type parameters are stored in; the graph computes in fp32 either way. */
  paramDtype?: ParamDType;
  /** Trace for structure only (locks, diffs, counts): an unknown <IMG_CONTEXT> id becomes a placeholder. */
  structureOnly?: boolean;
  /** Which entry point to trace (`model`, the whole forward, by default; see Model.entryPoints). */
  entry?: string;
}

export function compile(model: Model, options: CompileOptions = {}): Graph {
  const opset = options.opset ?? DEFAULT_OPSET;
  resetFreshDims();
  assignPaths(model);
  const params = collectParams(model);
  applyFreezeRules(params, model.train, model.aliases());
  const entryName = options.entry ?? MODEL_ENTRY;
  const entry = entryPoint(model, entryName);
  const inputs = entry.inputs().map((spec) => {
    const v = new Value('input', spec.dtype, spec.shape);
    v.name = spec.name;
    return v;
  });
  const builder = new GraphBuilder(opset, options.structureOnly ?? false);
  const named = withBuilder(builder, () => builder.withScope('', model.site, () => entry.forward(...inputs)));
  const outputs = Object.entries(named).map(([name, v]) => {
    if (v.name !== undefined && v.kind !== 'node') throw new Error(`output '${name}' must be computed, not a ${v.kind}`);
    v.name = name;
    return v;
  });
  const metadata = entryName === MODEL_ENTRY ? model.metadata() : { ...model.metadata(), 'vlmc.entry': entryName };
  const graph: Graph = { name: model.metadata()['vlmc.model'] ?? 'model', opset, inputs, outputs, nodes: builder.nodes, params, metadata };
  foldShapes(graph);
  removeDeadNodes(graph);
  // The whole model keeps every parameter (it is the model); a part keeps the ones it uses.
  if (entryName !== MODEL_ENTRY) removeUnusedParams(graph);
  storeParamsAs(graph, options.paramDtype ?? 'float32');
  nameGraph(graph);
  checkOpset(graph);
  return graph;
}

function entryPoint(model: Model, name: string): EntryPoint {
  if (name === MODEL_ENTRY) return { inputs: () => model.inputs(), forward: (...xs) => model.forward(...xs) };
  const entries = model.entryPoints();
  const entry = entries[name];
  if (!entry) throw new UserError(`the model has no entry point '${name}'; it has: ${[MODEL_ENTRY, ...Object.keys(entries)].join(', ')}`);
  return entry;
}

/** The entry points of a model, `model` first. */
export function entryPointNames(model: Model): string[] {
  return [MODEL_ENTRY, ...Object.keys(model.entryPoints())];
}
