/**
 * Builds a graph while the DSL is traced: keeps the scope (module path) stack, appends nodes, and
 * checks every node as it is created so errors point at the module and graph-file line.
 */
import { GraphError } from '../errors.ts';
import type { DType } from './dtype.ts';
import { ACTIVE_BUILDER, COMPOSITE_DOMAIN, GraphParam, Value, type Attr, type AttrType, type Node, type Param, type Site } from './graph.ts';
import type { OpSignature } from '../ops/signature.ts';
import { inferNode } from './infer.ts';
import { formatSite } from './site.ts';

interface Scope {
  path: string;
  site: Site | undefined;
}

let nextNodeId = 1;

/**
 * Facts decided at build time that a model's forward reads while it is traced, for what the model
 * leaves open (never stored on the model): the `<IMG_CONTEXT>` id from a flag or the tokenizer files.
 */
export interface TraceFacts {
  imgContextTokenId?: number | undefined;
}

export class GraphBuilder {
  readonly nodes: Node[] = [];
  private readonly scopes: Scope[] = [{ path: '', site: undefined }];
  /** This graph's own holding of each model parameter it reads (made on first read). */
  private readonly params = new Map<Param, GraphParam>();

  /**
   * @param structureOnly the graph is traced for its structure (locks, diffs, counts), not to be run:
   *   facts only a checkpoint can give (the <IMG_CONTEXT> id) may be left as placeholders.
   */
  constructor(
    readonly opset: number,
    readonly structureOnly = false,
    readonly facts: TraceFacts = {},
  ) {}

  /** The graph's own GraphParam for a model parameter. */
  graphParam(p: Param): GraphParam {
    let held = this.params.get(p);
    if (!held) this.params.set(p, (held = new GraphParam(p)));
    return held;
  }

  get scope(): Scope {
    return this.scopes[this.scopes.length - 1]!;
  }

  withScope<T>(path: string, site: Site | undefined, fn: () => T): T {
    this.scopes.push({ path, site: site ?? this.scope.site });
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  /** A GraphError prefixed with the graph file's line and the module path. */
  error(message: string): GraphError {
    const where = formatSite(this.scope.site);
    const scope = this.scope.path || '<root>';
    return new GraphError(`${where ? `${where}: ` : ''}${scope}: ${message}`);
  }

  /**
   * A composite op: `decompose` traces its standard-op form now (so its outputs are shape-checked
   * and inferred like any other), and the nodes it emitted become the composite node's body.
   */
  composite(op: string, inputs: Value[], attrs: Record<string, unknown>, decompose: () => Value[]): Value[] {
    const start = this.nodes.length;
    const outputs = decompose();
    const body = this.nodes.splice(start);
    const node: Node = { id: nextNodeId++, op, domain: COMPOSITE_DOMAIN, since: 1, inputs, outputs, attrs: {}, scope: this.scope.path, name: '', composite: { attrs, body } };
    this.nodes.push(node);
    return outputs;
  }

  emit(sig: OpSignature, inputs: (Value | undefined)[], attrs: Record<string, unknown>, numOutputs?: number): Value[] {
    checkArity(sig, inputs, (m) => this.error(`${sig.op}: ${m}`));
    const bound = checkTypes(sig, inputs, (m) => this.error(`${sig.op}: ${m}`));
    const node: Node = {
      id: nextNodeId++,
      op: sig.op,
      domain: sig.domain,
      since: sig.since,
      inputs: trimTrailingUndefined(inputs),
      outputs: [],
      attrs: toAttrs(sig, attrs, (m) => this.error(`${sig.op}: ${m}`)),
      scope: this.scope.path,
      name: '',
    };
    const count = numOutputs ?? sig.outputs.filter((o) => o.option === 'single').length;
    for (let i = 0; i < count; i++) {
      const formal = sig.outputs[Math.min(i, sig.outputs.length - 1)]!;
      const v = new Value('node', outputDtype(sig, formal.type, bound), []);
      v.producer = node;
      node.outputs.push(v);
    }
    try {
      inferNode(node, sig);
    } catch (e) {
      if (e instanceof GraphError) throw e;
      const shapes = node.inputs.map((v) => (v ? v.toString() : '-')).join(', ');
      throw this.error(`${sig.op}: ${(e as Error).message} (inputs: ${shapes})`);
    }
    this.nodes.push(node);
    return node.outputs;
  }
}

function trimTrailingUndefined(inputs: (Value | undefined)[]): (Value | undefined)[] {
  let n = inputs.length;
  while (n > 0 && inputs[n - 1] === undefined) n--;
  return inputs.slice(0, n);
}

function checkArity(sig: OpSignature, inputs: (Value | undefined)[], fail: (m: string) => Error): void {
  const variadic = sig.inputs.some((f) => f.option === 'variadic');
  if (!variadic && inputs.length > sig.inputs.length) throw fail(`takes at most ${sig.inputs.length} inputs, got ${inputs.length}`);
  sig.inputs.forEach((formal, i) => {
    if (formal.option === 'single' && inputs[i] === undefined) throw fail(`input '${formal.name}' is required`);
  });
}

/** Checks dtypes against type constraints; returns the dtype bound to each type parameter. */
function checkTypes(sig: OpSignature, inputs: (Value | undefined)[], fail: (m: string) => Error): Map<string, DType> {
  const bound = new Map<string, DType>();
  inputs.forEach((v, i) => {
    if (!v) return;
    const formal = sig.inputs[Math.min(i, sig.inputs.length - 1)]!;
    const allowed = sig.typeConstraints[formal.type];
    if (allowed) {
      if (!allowed.includes(v.dtype)) throw fail(`input '${formal.name}' has dtype ${v.dtype}; ${formal.type} allows ${allowed.join(', ')}`);
      const prev = bound.get(formal.type);
      if (prev && prev !== v.dtype) throw fail(`inputs bound to ${formal.type} disagree: ${prev} vs ${v.dtype} (at '${formal.name}')`);
      bound.set(formal.type, v.dtype);
    }
  });
  return bound;
}

const CONCRETE: Record<string, DType> = {
  'tensor(int64)': 'int64',
  'tensor(int32)': 'int32',
  'tensor(bool)': 'bool',
  'tensor(float)': 'float32',
};

function outputDtype(sig: OpSignature, type: string, bound: Map<string, DType>): DType {
  const b = bound.get(type);
  if (b) return b;
  const concrete = CONCRETE[type];
  if (concrete) return concrete;
  const allowed = sig.typeConstraints[type];
  if (allowed?.length === 1) return allowed[0]!;
  return 'float32'; // refined by inference (Cast, ConstantOfShape)
}

function toAttrs(sig: OpSignature, attrs: Record<string, unknown>, fail: (m: string) => Error): Record<string, Attr> {
  const out: Record<string, Attr> = {};
  for (const [name, spec] of Object.entries(sig.attrs)) {
    const value = attrs[name];
    if (value === undefined) {
      if (spec.required) throw fail(`attribute '${name}' is required`);
      continue;
    }
    out[name] = { type: spec.type as AttrType, value: value as Attr['value'] };
  }
  for (const name of Object.keys(attrs)) {
    if (!(name in sig.attrs) && attrs[name] !== undefined) throw fail(`unknown attribute '${name}'`);
  }
  return out;
}

/**
 * The graph being traced lives on globalThis, not in this module: a graph file that imports the zoo
 * from another copy of vlmc than the one compiling it still emits into the same graph.
 */
const ACTIVE = ACTIVE_BUILDER;
const state = globalThis as { [ACTIVE]?: GraphBuilder };

export function activeBuilder(): GraphBuilder {
  const active = state[ACTIVE];
  if (!active) throw new Error('no graph is being traced: ops can only be called inside compile()');
  return active;
}

export function withBuilder<T>(builder: GraphBuilder, fn: () => T): T {
  const prev = state[ACTIVE];
  state[ACTIVE] = builder;
  try {
    return fn();
  } finally {
    state[ACTIVE] = prev;
  }
}
