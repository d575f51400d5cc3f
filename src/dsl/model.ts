/**
 * A model: the root module of a graph file. It declares its graph inputs, computes named outputs,
 * and carries the freeze rules and the aliases they may use.
 */
import type { DType } from '../ir/dtype.ts';
import type { Dim } from '../ir/graph.ts';
import type { TraceFacts } from '../ir/builder.ts';
import { Module, type Tensor } from './module.ts';
import type { FreezeRule } from './freeze.ts';
import type { LoraDeclaration, LoraPartInfo } from './lora.ts';

export interface InputSpec {
  name: string;
  dtype: DType;
  shape: Dim[];
}

/**
 * A named way into the model: its own inputs and forward over the same modules (and so the same
 * parameters). The split artifact traces `vision`, `embedding` and `decoder`; `model` is the
 * whole forward (`inputs()` / `forward()`).
 */
export interface EntryPoint {
  inputs(): InputSpec[];
  forward(...inputs: Tensor[]): Record<string, Tensor>;
}

/** The entry point every model has: inputs() and forward(). */
export const MODEL_ENTRY = 'model';
/** The entry point every model with `logits` has: the forward with `labels`, ending in the loss (train.onnx). */
export const TRAIN_ENTRY = 'train';

export abstract class Model extends Module {
  /** Freeze rules, applied in order (see freeze.ts). Empty: everything trains. */
  train: FreezeRule[] = [];
  /** LoRA declared in the graph file (src/dsl/lora.ts); the build may add its own. */
  lora: LoraDeclaration | undefined = undefined;
  /** Short names for module paths usable in freeze rules (`vision` -> `vision_model`). */
  aliases(): Record<string, string> {
    return {};
  }
  abstract inputs(): InputSpec[];
  /** Named outputs, in the graph's output order. */
  abstract forward(...inputs: Tensor[]): Record<string, Tensor>;
  /** The parts LoRA can wrap, by name, with their family's target modules (none by default). */
  loraParts(): Record<string, LoraPartInfo> {
    return {};
  }
  /** Entry points besides `model` (none by default). */
  entryPoints(): Record<string, EntryPoint> {
    return {};
  }
  /**
   * Free-form facts carried into the artifact (e.g. the image-context token id); `facts` are the
   * ones the build decided (src/ir/builder.ts TraceFacts), for what the model leaves open.
   */
  metadata(_facts: TraceFacts = {}): Record<string, string> {
    return {};
  }
}
