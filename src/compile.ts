/**
 * DSL -> IR: trace a model's forward into a graph, then run the passes that make it small,
 * checked and deterministic.
 */
import { GraphBuilder, withBuilder } from './ir/builder.ts';
import { Value, type Graph, type StoredParam } from './ir/graph.ts';
import { resetFreshDims } from './ir/dims.ts';
import { assignPaths, collectParams } from './dsl/module.ts';
import { applyFreezeRules } from './dsl/freeze.ts';
import { MODEL_ENTRY, type EntryPoint, type Model } from './dsl/model.ts';
import { foldShapes } from './passes/fold-shapes.ts';
import { removeDeadNodes, removeUnusedParams } from './passes/dead-nodes.ts';
import { nameGraph } from './passes/naming.ts';
import { checkOpset, retargetOpset } from './passes/opset.ts';
import { storeParamsAs } from './passes/param-storage.ts';
import type { ParamDType } from './ir/dtype.ts';
import { fuseGraph, parseFuse, type Target } from './passes/fusion/index.ts';
import { quantizeLinears } from './passes/quantize.ts';
import { computeInHalf } from './passes/half-precision.ts';
import type { QuantScheme } from './quant/blockwise.ts';
import { UserError } from './errors.ts';

export const DEFAULT_OPSET = 17;

export interface CompileOptions {
  opset?: number;
  /** Element type parameters are stored in; the graph computes in fp32 either way. */
  paramDtype?: ParamDType;
  /** Trace for structure only (locks, diffs, counts): an unknown <IMG_CONTEXT> id becomes a placeholder. */
  structureOnly?: boolean;
  /** `portable` (default): standard ONNX ops only. `gpu`: ONNX Runtime fused ops (src/passes/fusion). */
  target?: Target;
  /** Which fusions (`none`, `all` or a comma list); defaults to all for `gpu`, none for `portable`. */
  fuse?: string;
  /** Weight-only quantisation of the LLM's linear layers (MatMulNBits; needs target gpu). */
  quant?: QuantScheme;
  /** Which entry point to trace (`model`, the whole forward, by default; see Model.entryPoints). */
  entry?: string;
}

export function compile(model: Model, options: CompileOptions = {}): Graph {
  const opset = options.opset ?? DEFAULT_OPSET;
  resetFreshDims();
  assignPaths(model);
  const params = collectParams(model);
  // A model object may be compiled again: undo what storage, quantisation or half passes set last time.
  for (const p of params) {
    p.value.dtype = 'float32';
    p.value.shape = p.shape;
    p.quant = undefined;
  }
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
  const target = options.target ?? 'portable';
  const fusions = parseFuse(options.fuse, target);
  if (target !== 'portable') {
    const counts = fuseGraph(graph, fusions);
    graph.metadata['vlmc.target'] = target;
    graph.metadata['vlmc.fusions'] = Object.entries(counts).map(([n, c]) => `${n}:${c}`).join(',');
  }
  if (options.quant) {
    if (target !== 'gpu') throw new UserError('--quant needs --target gpu: MatMulNBits is an ONNX Runtime contrib op');
    const q = options.quant;
    const count = quantizeLinears(graph, q);
    graph.metadata['vlmc.quant'] = `int${q.bits} ${q.symmetric ? 'symmetric' : 'asymmetric'} block ${q.blockSize}: ${count} weights`;
  }
  const paramDtype = options.paramDtype ?? 'float32';
  // The gpu target computes in a half storage dtype; the portable graph only stores in it.
  if (target === 'gpu' && paramDtype !== 'float32') {
    // The KV cache stays in the compute dtype between steps where onnxruntime-node can hold it.
    const kvCache = (name: string) => paramDtype === 'float16' && /^(past_key_values|present)\./.test(name);
    computeInHalf(graph, paramDtype, kvCache);
    graph.metadata['vlmc.compute_dtype'] = paramDtype;
  }
  retargetOpset(graph);
  if (target !== 'gpu') storeParamsAs(graph, paramDtype);
  nameGraph(graph);
  checkOpset(graph);
  graph.stored = snapshotStorage(graph);
  return graph;
}

/**
 * How this graph stores each parameter, fixed now: Param objects are shared by every graph traced
 * from one model (the parts of a split artifact), and the next compile re-derives their state.
 */
function snapshotStorage(graph: Graph): Map<string, StoredParam> {
  const info = (v: Value) => ({ name: v.name!, dtype: v.dtype, shape: [...v.shape] as number[] });
  return new Map(
    graph.params.map((p) => {
      const q = p.quant;
      const quant = q && { bits: q.bits, blockSize: q.blockSize, symmetric: q.symmetric, scales: info(q.scales), zeroPoints: q.zeroPoints && info(q.zeroPoints) };
      return [p.name, { ...info(p.value), quant }];
    }),
  );
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
