/**
 * train.onnx: the model's `train` entry point (forward + loss) through the one compiler pipeline
 * (src/compile.ts), whose differentiate pass appends the backward for the trainable parameters.
 */
import { compileWithReport, TRAIN_ENTRY, type CompileOptions } from '../compile.ts';
import type { Graph, GraphParam } from '../ir/graph.ts';
import type { Model } from '../dsl/model.ts';
import type { PruningReport } from '../passes/differentiate.ts';

export { GRAD_PREFIX, DEFAULT_SIZES, type PruningReport } from '../passes/differentiate.ts';

export type TrainCompileOptions = Omit<CompileOptions, 'entry'>;

export interface TrainGraph {
  graph: Graph;
  trainable: GraphParam[];
  pruning: PruningReport;
}

export function compileTrain(model: Model, options: TrainCompileOptions = {}): TrainGraph {
  const { graph, trainable, pruning } = compileWithReport(model, { ...options, entry: TRAIN_ENTRY });
  return { graph, trainable, pruning: pruning! };
}
