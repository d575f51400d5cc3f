/**
 * The picture's data: a model's module tree as `vlmc view` draws it and `vlmc diff --format html`
 * marks it. Built from the summary that locks and diffs use (its parameters, and the module counts
 * of tree.ts's `buildModules`), with what an artifact's manifest adds per parameter: checkpoint
 * keys, the logical shape and stored bytes of a quantised weight (its `_scales` / `_zero_points`
 * companions fold into it), gradients. Runs of identical sibling layers fold into one node
 * (`layers.{0..79}`, 80 instances) so the 78B graphs stay small on the page and readable on the
 * screen; counts stay totals over every instance, so a parent's count is its children's sum.
 */
import { DTYPES } from '../../ir/dtype.ts';
import { elementCount } from '../../ir/dims.ts';
import type { Manifest } from '../../artifact/format.ts';
import { manifestParameters, type ResolvedOperand } from '../operand.ts';
import { indexSet } from '../fold.ts';
import { aggregateOps, buildModules, comparePaths, parentPath } from '../tree.ts';
import type { GraphSummary, ParamEntry } from '../types.ts';

export const VIEW_FORMAT = 'vlmc-view/1';

/** One parameter as drawn. */
export interface ParamFacts {
  name: string;
  /** The logical shape (a quantised weight's unpacked one, as the manifest records it). */
  shape: number[];
  dtype: string;
  elements: number;
  /** Bytes stored: the manifest's lengths (companions included) where known, else elements x dtype size. */
  bytes: number;
  trainable?: boolean;
  used: boolean;
  /** Checkpoint key(s) the parameter is read from; empty where unknown (a bare .onnx file). */
  keys: string[];
  /** `int4-symmetric, block 32` for a quantised weight. */
  quant?: string;
  /** train.onnx computes this parameter's gradient. */
  grad?: boolean;
}

/** What a diff says happened to a node; `other` is the node's path on the other side of a rename. */
export interface ChangeMark {
  kind: 'added' | 'removed' | 'renamed' | 'reshaped' | 'retyped' | 'trainable' | 'frozen' | 'weights';
  before?: string;
  after?: string;
  other?: string;
}

export interface ViewNode {
  /** Path segment (`q_proj`, `{0..79}` for folded layers); the model's name at the root. */
  name: string;
  /** Dotted module path or parameter name, folded indices included; '' at the root. */
  path: string;
  /** Parameter elements over every instance. */
  params: number;
  /** Trainable elements; absent when the freeze state is unknown (a bare .onnx file). */
  trainable?: number;
  tensors: number;
  bytes: number;
  /** Instances this node stands for (folded layers, and everything inside them). */
  repeat?: number;
  /** Backward nodes of train.onnx in this module's subtree (training artifacts). */
  backward?: number;
  marks?: ChangeMark[];
  /** Marked parameters below this node, over every instance (diff pages). */
  changed?: number;
  children?: ViewNode[];
  // Parameters only:
  shape?: number[];
  dtype?: string;
  quant?: string;
  keys?: string[];
  used?: boolean;
  grad?: boolean;
}

export interface ViewPanel {
  id: string;
  title: string;
  /** `params`: shaded by trainable / frozen; `grad`: by what the gradient graph covers. */
  mode: 'params' | 'grad';
  /** The graph's own tree (a split artifact's graphs); absent: the view's `root`. */
  root?: ViewNode;
}

export interface TrainFacts {
  graph: string;
  /** Parameters train.onnx computes gradients for. */
  gradTensors: number;
  gradParams: number;
  backwardNodes?: number;
  backwardNodesUnpruned?: number;
}

export interface View {
  format: typeof VIEW_FORMAT;
  name: string;
  source: { kind: ResolvedOperand['kind']; label: string };
  /** Parameter elements of the whole model (the manifest's `counts.total`). */
  total: number;
  /** Trainable elements (the manifest's `counts.trainable`); absent when unknown. */
  trainable?: number;
  tensors: number;
  bytes: number;
  root: ViewNode;
  panels: ViewPanel[];
  train?: TrainFacts;
}

export interface ViewOptions {
  /** Diff marks by unfolded path (module path or parameter name). */
  marks?: ReadonlyMap<string, readonly ChangeMark[]>;
}

export function buildView(operand: ResolvedOperand, options: ViewOptions = {}): View {
  const facts = paramFacts(operand.summary, operand);
  const backward = backwardCounts(operand);
  const root = foldRepeats(markTree(moduleTree(operand.summary.name, facts, backward), options.marks));
  const view: View = {
    format: VIEW_FORMAT,
    name: operand.summary.name,
    source: { kind: operand.kind, label: operand.label },
    total: root.params,
    ...(root.trainable === undefined ? {} : { trainable: root.trainable }),
    tensors: root.tensors,
    bytes: root.bytes,
    root,
    panels: panelsOf(operand, facts),
  };
  const train = trainFacts(operand, facts);
  return train ? { ...view, train } : view;
}

function panelsOf(operand: ResolvedOperand, facts: readonly ParamFacts[]): ViewPanel[] {
  if (operand.kind === 'split') {
    return (operand.graphs ?? []).map((g) => ({ id: g.name, title: g.file, mode: 'params' as const, root: foldRepeats(moduleTree(g.summary.name, paramFacts(g.summary, operand), undefined)) }));
  }
  const title = operand.kind === 'artifact' ? 'model.onnx' : operand.label;
  const model: ViewPanel = { id: 'model', title, mode: 'params' };
  if (!facts.some((f) => f.grad)) return [model];
  return [model, { id: 'train', title: 'train.onnx: what the gradient graph covers', mode: 'grad' }];
}

// ---------------------------------------------------------------------------------------------
// Parameters

/** The summary's parameters, with what the manifest (or a checkpoint's binding) says of each. */
export function paramFacts(summary: GraphSummary, operand: Pick<ResolvedOperand, 'kind' | 'manifest' | 'keys'>): ParamFacts[] {
  const manifest = manifestIndex(operand.manifest);
  const grads = new Set((operand.manifest?.train?.trainable ?? []).map((t) => t?.name));
  // A graph file's property paths are the unified checkpoint's keys (docs/dsl.md).
  const keysByName = operand.kind === 'graph' || operand.kind === 'git';
  const out: ParamFacts[] = [];
  for (const p of summary.params) {
    if (manifest.companions.has(p.name)) continue;
    const m = manifest.params.get(p.name);
    const shape = m?.shape ?? p.shape;
    const dtype = m?.dtype ?? p.dtype;
    const elements = elementCount(shape);
    const f: ParamFacts = {
      name: p.name,
      shape,
      dtype,
      elements,
      bytes: m?.bytes ?? elements * dtypeBytes(dtype),
      ...(p.trainable === undefined ? {} : { trainable: p.trainable }),
      used: p.used,
      keys: m?.keys ?? [...(operand.keys?.get(p.name) ?? (keysByName ? [p.name] : []))],
      ...(m?.quant ? { quant: m.quant } : {}),
    };
    if (grads.has(p.name)) f.grad = true;
    out.push(f);
  }
  return out;
}

const dtypeBytes = (dtype: string): number => (DTYPES as Record<string, { bytes: number } | undefined>)[dtype]?.bytes ?? 0;

interface ManifestFacts {
  shape?: number[];
  dtype?: string;
  bytes?: number;
  keys?: string[];
  quant?: string;
}

/** The manifest's per-parameter facts, each taken only when well-formed (a hand-edited manifest may lack any). */
function manifestIndex(manifest: Partial<Manifest> | undefined): { params: Map<string, ManifestFacts>; companions: Set<string> } {
  const params = new Map<string, ManifestFacts>();
  const companions = new Set<string>();
  for (const p of manifest ? manifestParameters(manifest) : []) {
    if (typeof p.name !== 'string') continue;
    const facts: ManifestFacts = {};
    if (isShape(p.shape)) facts.shape = p.shape;
    if (typeof p.dtype === 'string') facts.dtype = p.dtype;
    const keys = typeof p.key === 'string' ? [p.key] : Array.isArray(p.key) ? p.key.filter((k): k is string => typeof k === 'string') : undefined;
    if (keys) facts.keys = keys;
    const parts = quantCompanions(p.quant);
    for (const c of parts) companions.add(c.name);
    if (typeof p.length === 'number' && parts.every((c) => typeof c.length === 'number')) facts.bytes = p.length + parts.reduce((n, c) => n + (c.length as number), 0);
    const quant = quantLabel(p.quant);
    if (quant) facts.quant = quant;
    params.set(p.name, facts);
  }
  return { params, companions };
}

const isShape = (v: unknown): v is number[] => Array.isArray(v) && v.every((d) => Number.isSafeInteger(d) && d >= 0);

function quantCompanions(quant: unknown): { name: string; length: unknown }[] {
  const tensors = (quant as { tensors?: unknown } | undefined)?.tensors;
  if (!Array.isArray(tensors)) return [];
  return tensors.filter((t): t is { name: string; length: unknown } => typeof t?.name === 'string');
}

function quantLabel(quant: unknown): string | undefined {
  if (typeof quant !== 'object' || quant === null) return undefined;
  const q = quant as { scheme?: unknown; bits?: unknown; block_size?: unknown };
  const scheme = typeof q.scheme === 'string' ? q.scheme : typeof q.bits === 'number' ? `int${q.bits}` : 'quantised';
  return typeof q.block_size === 'number' ? `${scheme}, block ${q.block_size}` : scheme;
}

// ---------------------------------------------------------------------------------------------
// The tree

const asParamEntry = (f: ParamFacts): ParamEntry => ({ name: f.name, shape: f.shape, dtype: f.dtype, used: f.used, ...(f.trainable === undefined ? {} : { trainable: f.trainable }) });

/** The module tree with tree.ts's counts (those of the lock's `[modules]`), parameters as leaves. */
export function moduleTree(name: string, facts: readonly ParamFacts[], backward: ReadonlyMap<string, number> | undefined): ViewNode {
  const nodes = new Map<string, ViewNode>();
  for (const m of buildModules(facts.map(asParamEntry), [])) {
    const node: ViewNode = { name: m.path === '' ? name : lastSegment(m.path), path: m.path, params: m.params, ...(m.trainable === undefined ? {} : { trainable: m.trainable }), tensors: m.tensors, bytes: 0 };
    const b = backward?.get(m.path);
    if (b) node.backward = b;
    node.children = [];
    nodes.set(m.path, node);
    if (m.path !== '') nodes.get(parentPath(m.path))!.children!.push(node);
  }
  for (const f of facts) nodes.get(parentPath(f.name))!.children!.push(leaf(f));
  const root = nodes.get('')!;
  sumBytes(root);
  return root;
}

function leaf(f: ParamFacts): ViewNode {
  const node: ViewNode = { name: lastSegment(f.name), path: f.name, params: f.elements, ...(f.trainable === undefined ? {} : { trainable: f.trainable ? f.elements : 0 }), tensors: 1, bytes: f.bytes, shape: f.shape, dtype: f.dtype };
  if (f.quant) node.quant = f.quant;
  node.keys = f.keys;
  if (!f.used) node.used = false;
  if (f.grad) node.grad = true;
  return node;
}

const lastSegment = (path: string): string => path.slice(path.lastIndexOf('.') + 1);

function sumBytes(node: ViewNode): number {
  if (!node.children) return node.bytes;
  node.children.sort((a, b) => comparePaths(a.path, b.path));
  node.bytes = node.children.reduce((n, c) => n + sumBytes(c), 0);
  return node.bytes;
}

/** Puts the diff's marks on the nodes they name, and counts marked parameters into every ancestor. */
function markTree(root: ViewNode, marks: ReadonlyMap<string, readonly ChangeMark[]> | undefined): ViewNode {
  if (!marks || marks.size === 0) return root;
  const visit = (node: ViewNode): number => {
    const own = marks.get(node.path);
    if (own?.length) node.marks = [...own];
    if (!node.children) return own?.length ? 1 : 0;
    const below = node.children.reduce((n, c) => n + visit(c), 0);
    if (below > 0) node.changed = below;
    return below;
  };
  visit(root);
  return root;
}

/** Every node of a tree by path. */
export function nodesByPath(root: ViewNode): Map<string, ViewNode> {
  const out = new Map<string, ViewNode>();
  const visit = (n: ViewNode) => {
    out.set(n.path, n);
    for (const c of n.children ?? []) visit(c);
  };
  visit(root);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Folding repeated layers

/**
 * Consecutive siblings named by an index (`layers.0`, `layers.1`, ...) that are the same in every
 * respect the picture shows (parameter names, shapes, dtypes, quantisation, freeze and use states,
 * checkpoint keys up to the index, diff marks, backward nodes) become one node `{0..79}`.
 */
export function foldRepeats(node: ViewNode): ViewNode {
  if (!node.children) return node;
  const kids = node.children.map(foldRepeats);
  const sigs = kids.map((k) => (/^\d+$/.test(k.name) ? signature(k, k.name) : undefined));
  const out: ViewNode[] = [];
  for (let i = 0; i < kids.length; ) {
    let j = i + 1;
    if (sigs[i] !== undefined) while (j < kids.length && sigs[j] === sigs[i]) j++;
    out.push(j - i >= 2 ? folded(kids.slice(i, j)) : kids[i]!);
    i = j;
  }
  return { ...node, children: out };
}

/** A dotted path or key with the segments equal to `index` replaced. */
const replaceIndex = (path: string, index: string, by: string): string => path.split('.').map((s) => (s === index ? by : s)).join('.');

/** What the picture shows of a subtree, with its own index abstracted away. */
function signature(node: ViewNode, index: string): string {
  const shape = (n: ViewNode, top: boolean): unknown[] => [
    top ? '' : n.name,
    n.params,
    n.trainable ?? null,
    n.tensors,
    n.bytes,
    n.repeat ?? 1,
    n.backward ?? 0,
    n.changed ?? 0,
    (n.marks ?? []).map((m) => [m.kind, m.before ?? '', m.after ?? '', replaceIndex(m.other ?? '', index, '{i}')]),
    n.shape ?? null,
    n.dtype ?? null,
    n.quant ?? null,
    (n.keys ?? []).map((k) => replaceIndex(k, index, '{i}')),
    n.used ?? true,
    n.grad ?? false,
    (n.children ?? []).map((c) => shape(c, false)),
  ];
  return JSON.stringify(shape(node, true));
}

function folded(group: readonly ViewNode[]): ViewNode {
  const rep = group[0]!;
  const pattern = `{${indexSet(group.map((g) => Number(g.name)))}}`;
  const parent = parentPath(rep.path);
  const to = parent === '' ? pattern : `${parent}.${pattern}`;
  const node = instance(rep, rep.path, to, rep.name, pattern, group.length);
  return { ...node, name: pattern };
}

/** The representative's subtree standing for `n` instances: folded paths and keys, counts times n. */
function instance(node: ViewNode, from: string, to: string, index: string, pattern: string, n: number): ViewNode {
  const out: ViewNode = { ...node, path: to + node.path.slice(from.length), params: node.params * n, tensors: node.tensors * n, bytes: node.bytes * n, repeat: (node.repeat ?? 1) * n };
  if (node.trainable !== undefined) out.trainable = node.trainable * n;
  if (node.changed !== undefined) out.changed = node.changed * n;
  if (node.backward !== undefined) out.backward = node.backward * n;
  if (node.keys) out.keys = node.keys.map((k) => replaceIndex(k, index, pattern));
  if (node.marks) out.marks = node.marks.map((m) => (m.other === undefined ? m : { ...m, other: replaceIndex(m.other, index, pattern) }));
  if (node.children) out.children = node.children.map((c) => instance(c, from, to, index, pattern, n));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Training artifacts

/** Backward nodes per module subtree, from train.onnx's node scopes (`/backward/<module>/Op`). */
function backwardCounts(operand: ResolvedOperand): Map<string, number> | undefined {
  const train = operand.graphs?.find((g) => g.name === 'train');
  if (!train) return undefined;
  const out = new Map<string, number>();
  for (const [module, hist] of aggregateOps(train.summary.ops)) {
    if (module !== 'backward' && !module.startsWith('backward.')) continue;
    out.set(module === 'backward' ? '' : module.slice('backward.'.length), [...hist.values()].reduce((n, c) => n + c, 0));
  }
  return out;
}

function trainFacts(operand: ResolvedOperand, facts: readonly ParamFacts[]): TrainFacts | undefined {
  const train = operand.manifest?.train;
  if (!train || !operand.graphs?.some((g) => g.name === 'train')) return undefined;
  const grads = facts.filter((f) => f.grad);
  const out: TrainFacts = { graph: typeof train.graph === 'string' ? train.graph : 'train.onnx', gradTensors: grads.length, gradParams: grads.reduce((n, f) => n + f.elements, 0) };
  const pruning = train.pruning;
  if (typeof pruning?.backward_nodes === 'number') out.backwardNodes = pruning.backward_nodes;
  if (typeof pruning?.backward_nodes_unpruned === 'number') out.backwardNodesUnpruned = pruning.backward_nodes_unpruned;
  return out;
}
