/**
 * The training pass: from a traced forward that ends in a scalar `loss` (the `train` entry point),
 * append the backward for the trainable parameters (src/passes/autodiff.ts, pruned by the freeze
 * rules) and make train.onnx's signature: inputs are the data inputs then every trainable
 * parameter (which keeps its bound weight as the initializer's default, so a run that feeds none
 * uses the checkpoint); outputs are `loss`, then `grad.<parameter>` per trainable parameter, in
 * parameter order.
 */
import { GraphBuilder, withBuilder } from '../ir/builder.ts';
import type { Graph, GraphParam, Value } from '../ir/graph.ts';
import * as op from '../ops/index.ts';
import { i64 } from '../dsl/constants.ts';
import { differentiate } from './autodiff.ts';
import { foldShapes } from './fold-shapes.ts';
import { removeDeadNodes } from './dead-nodes.ts';
import { totalFlops, type DimSizes } from './flops.ts';

export type { DimSizes };
export const GRAD_PREFIX = 'grad.';
export const DEFAULT_SIZES: DimSizes = { tiles: 1, batch: 1, seq: 320 };

/** What pruning saved, against a backward with every parameter trainable. */
export interface PruningReport {
  backwardNodes: number;
  backwardNodesUnpruned: number;
  backwardFlops: number;
  backwardFlopsUnpruned: number;
  sizes: DimSizes;
}

export function appendBackward(graph: Graph, sizes: DimSizes = DEFAULT_SIZES): PruningReport {
  const loss = graph.outputs.find((v) => v.name === 'loss');
  if (!loss || graph.outputs.length !== 1) throw new Error('the training pass needs a graph whose one output is `loss`');
  const trainable = graph.params.filter((p) => p.trainable);
  const { grads, nodes } = differentiate(graph.nodes, loss, trainable.map((p) => p.value), graph.opset);
  const unpruned = differentiate(graph.nodes, loss, graph.params.map((p) => p.value), graph.opset).nodes;
  const tail = new GraphBuilder(graph.opset);
  const claimed = new Set<Value>();
  const outputs = withBuilder(tail, () => trainable.map((p) => named(gradOutput(p, grads.get(p.value), claimed), `${GRAD_PREFIX}${p.name}`)));
  graph.nodes = [...graph.nodes, ...nodes, ...tail.nodes];
  graph.inputs.push(...trainable.map((p) => p.value));
  graph.outputs.push(...outputs);
  foldShapes(graph);
  removeDeadNodes(graph);
  return {
    backwardNodes: nodes.length,
    backwardNodesUnpruned: unpruned.length,
    backwardFlops: totalFlops(nodes, sizes),
    backwardFlopsUnpruned: totalFlops(unpruned, sizes),
    sizes,
  };
}

function named(v: Value, name: string): Value {
  v.name = name;
  return v;
}

/**
 * A value of its own for each gradient output: zeros where the loss does not depend on the
 * parameter (ViT layers past select_layer), an Identity where the value is shared or not computed.
 */
function gradOutput(p: GraphParam, g: Value | undefined, claimed: Set<Value>): Value {
  if (!g) {
    const zeros = op.ConstantOfShape(i64(p.shape), { value: { dtype: 'float32', shape: [1], data: new Float32Array(1) } });
    claimed.add(zeros);
    return zeros;
  }
  if (g.kind !== 'node' || claimed.has(g) || g.name !== undefined) return op.Identity(g);
  claimed.add(g);
  return g;
}
