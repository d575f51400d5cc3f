/**
 * DSL -> IR: trace a model's forward into a graph, then run the passes that make it small,
 * checked and deterministic.
 */
import { GraphBuilder, withBuilder } from './ir/builder.ts';
import { Value, type Graph } from './ir/graph.ts';
import { resetFreshDims } from './ir/dims.ts';
import { assignPaths, collectParams } from './dsl/module.ts';
import { applyFreezeRules } from './dsl/freeze.ts';
import type { Model } from './dsl/model.ts';
import { foldShapes } from './passes/fold-shapes.ts';
import { removeDeadNodes } from './passes/dead-nodes.ts';
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
  const inputs = model.inputs().map((spec) => {
    const v = new Value('input', spec.dtype, spec.shape);
    v.name = spec.name;
    return v;
  });
  const builder = new GraphBuilder(opset, options.structureOnly ?? false);
  const named = withBuilder(builder, () => builder.withScope('', model.site, () => model.forward(...inputs)));
  const outputs = Object.entries(named).map(([name, v]) => {
    if (v.name !== undefined && v.kind !== 'node') throw new Error(`output '${name}' must be computed, not a ${v.kind}`);
    v.name = name;
    return v;
  });
  const graph: Graph = { name: model.metadata()['vlmc.model'] ?? 'model', opset, inputs, outputs, nodes: builder.nodes, params, metadata: model.metadata() };
  foldShapes(graph);
  removeDeadNodes(graph);
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
    computeInHalf(graph, paramDtype);
    graph.metadata['vlmc.compute_dtype'] = paramDtype;
  }
  retargetOpset(graph);
  if (target !== 'gpu') storeParamsAs(graph, paramDtype);
  nameGraph(graph);
  checkOpset(graph);
  return graph;
}
