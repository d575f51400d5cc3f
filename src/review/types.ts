/**
 * The data the review tools pass around: a `GraphSummary` (what a lock file records and what `vlmc
 * diff` compares) and a `GraphDiff`. Both are plain JSON-serialisable objects; every list is in
 * canonical order so equal graphs give equal summaries and equal diffs.
 */

export type Dim = number | string;

/** One graph input or output: its signature. */
export interface IoEntry {
  name: string;
  dtype: string;
  shape: Dim[];
}

export interface ParamEntry {
  /** Dotted module path + attribute (`language_model.model.norm.weight`). */
  name: string;
  shape: number[];
  dtype: string;
  /** Absent when unknown (a bare .onnx file carries no freeze information). */
  trainable?: boolean;
  /** False when no node reads the parameter (e.g. ViT layers past select_layer). */
  used: boolean;
  /** sha256 of the tensor's bytes; only when weights were asked for. */
  sha256?: string;
}

/** A module (every prefix of a parameter or node path), counts aggregated over its subtree. */
export interface ModuleEntry {
  /** '' is the root. */
  path: string;
  /** Parameter tensors under the module. */
  tensors: number;
  /** Parameter elements under the module. */
  params: number;
  /** Trainable elements; absent when any parameter's freeze state is unknown. */
  trainable?: number;
}

/** Node-level facts, for `--nodes`. */
export interface NodeEntry {
  name: string;
  op: string;
  /** Module path; absent when the node's name does not follow the `/a/b/Op` convention. */
  module?: string;
  /** Hash of the node's own op, attributes and input names (not of anything upstream). */
  sig: string;
}

export interface GraphSummary {
  format: 'vlmc-graph-summary/1';
  name: string;
  /** Opset version per domain (`ai.onnx` for the default domain). */
  opset: Record<string, number>;
  inputs: IoEntry[];
  outputs: IoEntry[];
  metadata: Record<string, string>;
  /** Sorted by module path (numeric segments numerically). */
  params: ParamEntry[];
  /** Whether node module paths are known (IR graphs, or .onnx files whose node names follow `/a/b/Op`). */
  nodeModules: boolean;
  modules: ModuleEntry[];
  /** Op histogram per module, counting only the module's own nodes (not its children's). */
  ops: Record<string, Record<string, number>>;
  nodes: NodeEntry[];
  /** `sha256:<hex>` over the wiring, ops and attributes; independent of node and parameter names. */
  structureHash: string;
}

// ---------------------------------------------------------------------------------------------
// Diff

/** `moved`: same signature, another position among the inputs (or outputs) both sides have. */
export type ChangeKind = 'added' | 'removed' | 'changed' | 'moved';

export interface IoChange {
  kind: 'input' | 'output';
  name: string;
  change: ChangeKind;
  before?: IoEntry;
  after?: IoEntry;
  /** For `moved`: the index before and after. */
  position?: { before: number; after: number };
}

export interface ValueChange<T> {
  key: string;
  before?: T;
  after?: T;
}

/** A group of parameters, reported under the largest module that contains only them. */
export interface ParamGroup {
  /** Module path, or the parameter's own name when it is reported alone. */
  path: string;
  /** True when `path` is a module (all of its parameters are in the group). */
  module: boolean;
  tensors: number;
  params: number;
  names: string[];
}

export interface Rename {
  from: string;
  to: string;
  /** False when the contents changed too; those changes are reported under the new name. */
  exact: boolean;
  /** Size on side a. */
  tensors: number;
  params: number;
}

export interface ShapeChange {
  name: string;
  before: number[];
  after: number[];
}

export interface DtypeChange {
  name: string;
  before: string;
  after: string;
}

export interface FreezeChange extends ParamGroup {
  /** Trainable before -> after. */
  before: boolean;
  after: boolean;
}

export interface UsageChange extends ParamGroup {
  /** Used by a node before -> after. */
  before: boolean;
  after: boolean;
}

export interface Counts {
  tensors: number;
  params: number;
  trainable?: number;
}

export interface CountChange {
  module: string;
  before: Counts;
  after: Counts;
  /** Top-level modules (and the root) are always listed; `changed` tells them apart. */
  changed: boolean;
}

export interface OpChange {
  module: string;
  op: string;
  before: number;
  after: number;
}

export interface NodeChanges {
  added: string[];
  removed: string[];
  /** Same name, different op, attributes or inputs. */
  changed: string[];
}

export interface GraphDiff {
  a: { label: string; name: string };
  b: { label: string; name: string };
  io: IoChange[];
  opset: ValueChange<number>[];
  metadata: ValueChange<string>[];
  params: {
    renamed: Rename[];
    added: ParamGroup[];
    removed: ParamGroup[];
    reshaped: ShapeChange[];
    retyped: DtypeChange[];
  };
  /** Parameters whose bytes differ (only when both sides were read with weights). */
  weights: ParamGroup[];
  freeze: FreezeChange[];
  usage: UsageChange[];
  counts: CountChange[];
  /** Op-count changes over the whole graph (module ''), then per module (aggregated over subtrees). */
  ops: OpChange[];
  /** Structure hash before -> after, when it changed. */
  structure?: { before: string; after: string };
  /** Only with `nodes: true`. */
  nodes?: NodeChanges;
}
