/**
 * DSL -> training graph (train.onnx): the forward with a `labels` input and the loss, then the
 * backward from autodiff, pruned by the freeze rules. Inputs: the model's inputs, `labels`, and
 * every trainable parameter (which keeps its bound weight as the initializer's default, so a run
 * that feeds none uses the checkpoint). Outputs: `loss`, then `grad.<parameter>` per trainable
 * parameter, in parameter order.
 */
import { GraphBuilder, withBuilder } from '../ir/builder.ts';
import { UserError } from '../errors.ts';
import { Value, type Graph, type Param } from '../ir/graph.ts';
import { resetFreshDims } from '../ir/dims.ts';
import { assignPaths, collectParams } from '../dsl/module.ts';
import { applyFreezeRules, type FreezeRule } from '../dsl/freeze.ts';
import type { Model } from '../dsl/model.ts';
import { foldShapes } from '../passes/fold-shapes.ts';
import { removeDeadNodes } from '../passes/dead-nodes.ts';
import { nameGraph } from '../passes/naming.ts';
import { checkOpset } from '../passes/opset.ts';
import { storeParamsAs } from '../passes/param-storage.ts';
import { differentiate } from '../passes/autodiff.ts';
import { DEFAULT_OPSET } from '../compile.ts';
import type { ParamDType } from '../ir/dtype.ts';
import * as op from '../ops/index.ts';
import { i64 } from '../dsl/constants.ts';
import { causalLmLoss } from './loss.ts';
import { totalFlops, type DimSizes } from './flops.ts';

export const GRAD_PREFIX = 'grad.';

export interface TrainCompileOptions {
  opset?: number;
  paramDtype?: ParamDType;
  /** Rules applied after the model's own (`--preset`, `--freeze`, `--unfreeze`). */
  rules?: FreezeRule[];
  /** Sizes of the symbolic dims for the FLOP figures of the pruning report. */
  sizes?: DimSizes;
}

/** What pruning saved, against a backward with every parameter trainable. */
export interface PruningReport {
  backwardNodes: number;
  backwardNodesUnpruned: number;
  backwardFlops: number;
  backwardFlopsUnpruned: number;
  sizes: DimSizes;
}

export interface TrainGraph {
  graph: Graph;
  trainable: Param[];
  pruning: PruningReport;
}

export const DEFAULT_SIZES: DimSizes = { tiles: 1, batch: 1, seq: 320 };

export function compileTrain(model: Model, options: TrainCompileOptions = {}): TrainGraph {
  const opset = options.opset ?? DEFAULT_OPSET;
  resetFreshDims();
  assignPaths(model);
  const params = collectParams(model);
  // A model compiled before (model.onnx) may have left its parameters typed as stored (fp16).
  for (const p of params) p.value.dtype = 'float32';
  applyFreezeRules(params, [...model.train, ...(options.rules ?? [])], model.aliases());
  const inputs = model.inputs().map((spec) => named(new Value('input', spec.dtype, spec.shape), spec.name));
  const labels = named(new Value('input', 'int64', ['batch', 'seq']), 'labels');
  const builder = new GraphBuilder(opset);
  const loss = withBuilder(builder, () =>
    builder.withScope('', model.site, () => {
      const { logits } = model.forward(...inputs);
      if (!logits) throw new UserError('the model has no `logits` output: there is nothing to train');
      return builder.withScope('loss', undefined, () => causalLmLoss(logits, labels));
    }),
  );
  loss.name = 'loss';
  const trainable = params.filter((p) => p.trainable);
  const graph: Graph = { name: model.metadata()['vlmc.model'] ?? 'model', opset, inputs: [...inputs, labels], outputs: [loss], nodes: builder.nodes, params, metadata: { ...model.metadata(), 'vlmc.graph': 'train' } };
  foldShapes(graph);
  removeDeadNodes(graph);

  const sizes = options.sizes ?? DEFAULT_SIZES;
  const { grads, nodes } = differentiate(graph.nodes, loss, trainable.map((p) => p.value), opset);
  const unpruned = differentiate(graph.nodes, loss, params.map((p) => p.value), opset).nodes;
  const pruning: PruningReport = {
    backwardNodes: nodes.length,
    backwardNodesUnpruned: unpruned.length,
    backwardFlops: totalFlops(nodes, sizes),
    backwardFlopsUnpruned: totalFlops(unpruned, sizes),
    sizes,
  };

  const tail = new GraphBuilder(opset);
  const outputs = withBuilder(tail, () => trainable.map((p) => named(gradOutput(p, grads.get(p.value)), `${GRAD_PREFIX}${p.name}`)));
  graph.nodes = [...graph.nodes, ...nodes, ...tail.nodes];
  graph.inputs.push(...trainable.map((p) => p.value));
  graph.outputs.push(...outputs);
  foldShapes(graph);
  removeDeadNodes(graph);
  storeFrozenAs(graph, options.paramDtype ?? 'float32');
  nameGraph(graph);
  checkOpset(graph);
  return { graph, trainable, pruning };
}

/**
 * Frozen parameters are read in their stored dtype through a Cast, as in model.onnx; trainable ones
 * are float32 inputs whatever the storage, so the loop feeds and updates them in full precision.
 */
function storeFrozenAs(graph: Graph, dtype: ParamDType): void {
  const view: Graph = { ...graph, params: graph.params.filter((p) => !p.trainable) };
  storeParamsAs(view, dtype);
  graph.nodes = view.nodes;
}

function named(v: Value, name: string): Value {
  v.name = name;
  return v;
}

const claimed = new WeakSet<Value>();

/**
 * A value of its own for each gradient output: zeros where the loss does not depend on the
 * parameter (ViT layers past select_layer), an Identity where the value is shared or not computed.
 */
function gradOutput(p: Param, g: Value | undefined): Value {
  if (!g) {
    const zeros = op.ConstantOfShape(i64(p.shape), { value: { dtype: 'float32', shape: [1], data: new Float32Array(1) } });
    claimed.add(zeros);
    return zeros;
  }
  if (g.kind !== 'node' || claimed.has(g) || g.name !== undefined) return op.Identity(g);
  claimed.add(g);
  return g;
}

