/**
 * The IR: one plain data structure that every pass reads and rewrites.
 *
 * A `Graph` is a list of `Node`s in topological order over `Value`s. A value is a graph input, a
 * parameter (a named weight with a checkpoint key and a trainable flag), a constant, or a node
 * output. Shapes are symbolic: a dim is a number or a name (`tiles`, `batch*seq`).
 */
import type { DType, ParamDType } from './dtype.ts';

export type Dim = number | string;
export type Shape = Dim[];

export type AttrType = 'INT' | 'FLOAT' | 'STRING' | 'INTS' | 'FLOATS' | 'STRINGS' | 'TENSOR';
export interface Attr {
  type: AttrType;
  value: number | string | number[] | string[] | ConstData;
}

export type TypedData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array;

/** Literal tensor contents (constants, attribute tensors). */
export interface ConstData {
  dtype: DType;
  shape: number[];
  data: TypedData;
}

/** Where a module or node was declared: the graph file's line, for errors. */
export interface Site {
  /** Lazily formatted: V8 formats a stack only when it is read. */
  readonly error: Error;
}

export type ValueKind = 'input' | 'param' | 'const' | 'node';

let nextValueId = 1;

export class Value {
  readonly id = nextValueId++;
  /** Fixed name for inputs, params and graph outputs; other values are named by a pass. */
  name: string | undefined;
  producer: Node | undefined;
  /** Contents of a constant. */
  data: ConstData | undefined;
  /** Symbolic contents of a small 1-D integer tensor (shape arithmetic), when known. */
  sym: Dim[] | undefined;
  param: GraphParam | undefined;

  constructor(
    readonly kind: ValueKind,
    public dtype: DType,
    public shape: Shape,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  toString(): string {
    return `${this.dtype}[${this.shape.join(',')}]`;
  }
}

export type Init =
  | { kind: 'zeros' }
  | { kind: 'ones' }
  | { kind: 'constant'; value: number }
  | { kind: 'normal'; std: number; mean?: number }
  | { kind: 'uniform'; bound: number }
  | { kind: 'trunc_normal'; std: number };

/**
 * A weight stored quantised for MatMulNBits (src/passes/quantize.ts): the parameter's own value
 * holds the packed blocks; scales and zero points are companion initializers, filled at bind time.
 */
export interface ParamQuant {
  bits: 4 | 8;
  blockSize: number;
  symmetric: boolean;
  scales: Value;
  zeroPoints: Value | undefined;
}

/** One part of a packed parameter: its own name (its checkpoint key's source), shape and init. */
export interface PackedPart {
  name: string;
  shape: readonly number[];
  init: Init;
}

/** What a parameter is read as: a weight any op may read, or an embedding table (read by Gather, never quantised). */
export type ParamRole = 'weight' | 'embedding';

/**
 * A weight as the model declares it: its name (the module path, which is also its key in the
 * unified checkpoint), shape, declared dtype, init and role. Immutable: every graph traced from the
 * model holds the parameter through a `GraphParam` of its own, and passes edit only that.
 */
export class Param {
  private _name: string;
  constructor(
    name: string,
    readonly shape: readonly number[],
    readonly dtype: ParamDType,
    readonly init: Init,
    readonly role: ParamRole = 'weight',
  ) {
    this._name = name;
  }
  get name(): string {
    return this._name;
  }
  /**
   * Named once, from its place in the module tree (src/dsl/module.ts assignPaths); naming the same
   * tree again gives the same names, so a model's parameters never change after that.
   */
  nameOnce(name: string): void {
    if (this._name !== '' && this._name !== name) {
      throw new Error(`parameter '${this._name}' is also reachable as '${name}': a parameter belongs to one place in the module tree`);
    }
    this._name = name;
  }
  /** The value that reads this parameter in the graph being traced (each graph has its own). */
  get value(): Value {
    return activeGraphParam(this).value;
  }
}

/**
 * How one graph holds one parameter: its own value (whose dtype and shape are the stored ones once
 * the storage passes have run), quantisation, trainable flag and binding name. Made by tracing,
 * edited by passes; the model's `Param` is never touched.
 */
export class GraphParam {
  trainable = true;
  /** Set when the weight is stored quantised; its value then has the packed dtype and shape. */
  quant: ParamQuant | undefined;
  /** False for weights read other than as a Linear's (an embedding table, also when tied to lm_head). */
  quantizable: boolean;
  /** Set when this parameter is other parameters concatenated along axis 0 (src/passes/pack-projections.ts): bound from their keys, or initialised as they would be. */
  packs: readonly PackedPart[] | undefined;
  readonly value: Value;
  readonly shape: number[];
  constructor(
    readonly decl: Param,
    readonly name: string = decl.name,
    /** The name this parameter is bound from when it is not its own (a quantised copy of a tied weight). */
    readonly sourceName: string | undefined = undefined,
  ) {
    this.shape = [...decl.shape];
    this.quantizable = decl.role !== 'embedding';
    this.value = new Value('param', 'float32', [...decl.shape]);
    this.value.param = this;
    this.value.name = name;
  }
  get init(): Init {
    return this.decl.init;
  }
  get dtype(): ParamDType {
    return this.decl.dtype;
  }
}

/**
 * The graph being traced, as src/ir/builder.ts registers it on globalThis (there, not in a module,
 * so a graph file importing another copy of vlmc still traces into the same graph).
 */
export const ACTIVE_BUILDER = Symbol.for('vlmc.activeGraphBuilder');

function activeGraphParam(p: Param): GraphParam {
  const active = (globalThis as { [ACTIVE_BUILDER]?: { graphParam(p: Param): GraphParam } })[ACTIVE_BUILDER];
  if (!active) throw new Error(`parameter '${p.name}' read outside a trace: ops can only be called inside compile()`);
  return active.graphParam(p);
}

export interface Node {
  readonly id: number;
  op: string;
  domain: string;
  /** The since-version of the schema the node was built against. */
  since: number;
  inputs: (Value | undefined)[];
  outputs: Value[];
  attrs: Record<string, Attr>;
  /** Module path that produced the node (`language_model.model.layers.0.self_attn`). */
  scope: string;
  /** Unique, deterministic node name, set by the naming pass. */
  name: string;
  /** A Gather that is an embedding lookup with torch's padding_idx: that row gets no gradient. */
  paddingIdx?: number;
  /**
   * A composite op (domain COMPOSITE_DOMAIN): its attributes, and its decomposition into standard
   * ops traced when it was emitted (its outputs are this node's). A target's lowering table
   * replaces it by a fused kernel where it has one; otherwise the body takes its place.
   */
  composite?: { attrs: Record<string, unknown>; body: Node[] };
}

/** The domain of composite ops: never emitted, always lowered or decomposed first (src/passes/lower.ts). */
export const COMPOSITE_DOMAIN = 'vlmc.composite';

/** A stored tensor: initializer name, element type and shape. */
export interface StoredTensor {
  name: string;
  dtype: DType;
  shape: number[];
}

export interface Graph {
  name: string;
  opset: number;
  inputs: Value[];
  outputs: Value[];
  nodes: Node[];
  /** This graph's parameters: every one of the model, used by a node or not (e.g. ViT layers after select_layer), for the whole model; the ones it reads for an entry point. */
  params: GraphParam[];
  /** Free-form metadata carried into the ONNX model (metadata_props). */
  metadata: Record<string, string>;
}

export function constValue(dtype: DType, shape: number[], data: TypedData): Value {
  const v = new Value('const', dtype, shape);
  v.data = { dtype, shape, data };
  if ((dtype === 'int64' || dtype === 'int32') && shape.length <= 1) {
    v.sym = Array.from(data as ArrayLike<number | bigint>, Number);
  }
  return v;
}
