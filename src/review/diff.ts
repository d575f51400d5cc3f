/**
 * `vlmc diff`: compare two graph summaries the way a reviewer reads a pull request: I/O signature,
 * then parameters (renamed, added, removed, reshaped, retyped), freeze changes, parameter counts
 * per module, op counts; node detail only on request. Equal summaries give an empty diff.
 */
import { detectRenames, renamePath, type RenameMatch } from './renames.ts';
import { aggregateOps, ancestorsOf, buildModules, comparePaths, compareStrings, depthOf, parentPath } from './tree.ts';
import { elementCount } from '../ir/dims.ts';
import type {
  CountChange,
  Counts,
  GraphDiff,
  GraphSummary,
  IoChange,
  IoEntry,
  ModuleEntry,
  NodeChanges,
  OpChange,
  ParamEntry,
  ParamGroup,
  ValueChange,
} from './types.ts';

export { renderText, renderMarkdown, renderJson } from './render.ts';
export { isEmptyDiff, diffExitCode } from './empty.ts';

export interface DiffOptions {
  /** Include node-level changes (`--nodes`). */
  nodes?: boolean;
  /** Names for the two sides in headings; default: the graphs' names. */
  labels?: [string, string];
}

export function diffSummaries(a: GraphSummary, b: GraphSummary, options: DiffOptions = {}): GraphDiff {
  const renames = detectRenames(a.params, b.params, { a: kindsOf(a), b: kindsOf(b) });
  // Side a under side b's names, so everything below compares a renamed module with its old self.
  const mappedA = { params: a.params.map((p) => ({ ...p, name: renamePath(p.name, renames) })), ops: mapOps(a.ops, renames) };
  const diff: GraphDiff = {
    a: { label: options.labels?.[0] ?? a.name, name: a.name },
    b: { label: options.labels?.[1] ?? b.name, name: b.name },
    io: [...diffIo('input', a.inputs, b.inputs), ...diffIo('output', a.outputs, b.outputs)],
    opset: diffRecords(a.opset, b.opset),
    metadata: diffRecords(a.metadata, b.metadata),
    params: diffParams(a, mappedA.params, b, renames),
    weights: weightChanges(mappedA.params, b.params),
    freeze: flagChanges(mappedA.params, b.params, (p) => p.trainable),
    usage: flagChanges(mappedA.params, b.params, (p) => p.used),
    counts: diffCounts(buildModules(mappedA.params, Object.keys(mappedA.ops)), b.modules),
    ops: diffOps(mappedA.ops, b.ops),
  };
  if (a.structureHash !== b.structureHash) diff.structure = { before: a.structureHash, after: b.structureHash };
  if (options.nodes) diff.nodes = diffNodes(a, b);
  return diff;
}

/** A module's kind for rename detection: the op types in its subtree; '' where node paths are unknown. */
function kindsOf(s: GraphSummary): (path: string) => string {
  if (!s.nodeModules) return () => '';
  const ops = aggregateOps(s.ops);
  return (path) => [...(ops.get(path)?.keys() ?? [])].sort(compareStrings).join(',');
}

// ---------------------------------------------------------------------------------------------

const sameShape = (x: readonly (number | string)[], y: readonly (number | string)[]): boolean => x.length === y.length && x.every((d, i) => d === y[i]);

function diffIo(kind: 'input' | 'output', a: readonly IoEntry[], b: readonly IoEntry[]): IoChange[] {
  const byName = new Map(b.map((v) => [v.name, v]));
  const out: IoChange[] = [];
  for (const before of a) {
    const after = byName.get(before.name);
    if (!after) out.push({ kind, name: before.name, change: 'removed', before });
    else if (before.dtype !== after.dtype || !sameShape(before.shape, after.shape)) out.push({ kind, name: before.name, change: 'changed', before, after });
  }
  const inA = new Set(a.map((v) => v.name));
  for (const after of b) if (!inA.has(after.name)) out.push({ kind, name: after.name, change: 'added', after });
  // Position is part of the signature for callers that bind by position.
  const commonA = a.filter((v) => byName.has(v.name)).map((v) => v.name);
  const commonB = b.filter((v) => inA.has(v.name)).map((v) => v.name);
  commonA.forEach((name, i) => {
    const j = commonB.indexOf(name);
    if (j !== i) out.push({ kind, name, change: 'moved', before: a.find((v) => v.name === name)!, after: byName.get(name)!, position: { before: i, after: j } });
  });
  return out;
}

function diffRecords<T>(a: Record<string, T>, b: Record<string, T>): ValueChange<T>[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort(compareStrings);
  const out: ValueChange<T>[] = [];
  for (const key of keys) {
    if (a[key] === b[key]) continue;
    const change: ValueChange<T> = { key };
    if (key in a) change.before = a[key];
    if (key in b) change.after = b[key];
    out.push(change);
  }
  return out;
}

function mapOps(ops: GraphSummary['ops'], renames: readonly RenameMatch[]): GraphSummary['ops'] {
  const out: GraphSummary['ops'] = {};
  for (const [module, hist] of Object.entries(ops)) {
    const target = (out[renamePath(module, renames)] ??= {});
    for (const [op, n] of Object.entries(hist)) target[op] = (target[op] ?? 0) + n;
  }
  return out;
}

/** `mapped` is side a's parameters under b's names (same order as `a.params`). */
function diffParams(a: GraphSummary, mapped: readonly ParamEntry[], b: GraphSummary, renames: readonly RenameMatch[]): GraphDiff['params'] {
  const inB = new Map(b.params.map((p) => [p.name, p]));
  const inA = new Set(mapped.map((p) => p.name));
  const removed = a.params.filter((_, i) => !inB.has(mapped[i]!.name));
  const common = mapped.flatMap((p) => (inB.has(p.name) ? [[p, inB.get(p.name)!] as const] : []));
  return {
    renamed: renames.map((r) => {
      const moved = a.params.filter((p) => p.name === r.from || p.name.startsWith(`${r.from}.`));
      return { from: r.from, to: r.to, exact: r.exact, tensors: moved.length, params: moved.reduce((n, p) => n + elementCount(p.shape), 0) };
    }),
    added: groupParams(b.params.filter((p) => !inA.has(p.name)), b.params),
    removed: groupParams(removed, a.params),
    reshaped: common.filter(([x, y]) => !sameShape(x.shape, y.shape)).map(([x, y]) => ({ name: y.name, before: x.shape, after: y.shape })),
    retyped: common.filter(([x, y]) => x.dtype !== y.dtype).map(([x, y]) => ({ name: y.name, before: x.dtype, after: y.dtype })),
  };
}

/**
 * Groups parameters under the largest module all of whose parameters (in `universe`) are in the
 * set, so "froze vision_model" is one line and not three hundred.
 */
export function groupParams(members: readonly ParamEntry[], universe: readonly ParamEntry[]): ParamGroup[] {
  if (members.length === 0) return [];
  const total = countUnder(universe);
  const inSet = countUnder(members);
  const groups = new Map<string, ParamEntry[]>();
  for (const p of members) {
    const top = ancestorsOf(parentPath(p.name)).find((m) => inSet.get(m) === total.get(m)) ?? p.name;
    const group = groups.get(top);
    if (group) group.push(p);
    else groups.set(top, [p]);
  }
  return [...groups.entries()]
    .sort(([x], [y]) => comparePaths(x, y))
    .map(([path, ps]) => ({
      path,
      module: !(ps.length === 1 && ps[0]!.name === path),
      tensors: ps.length,
      params: ps.reduce((n, p) => n + elementCount(p.shape), 0),
      names: ps.map((p) => p.name).sort(comparePaths),
    }));
}

function countUnder(params: readonly ParamEntry[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const p of params) for (const m of ancestorsOf(parentPath(p.name))) out.set(m, (out.get(m) ?? 0) + 1);
  return out;
}

/** Parameters (present on both sides) whose flag flipped, grouped per direction. */
function flagChanges(a: readonly ParamEntry[], b: readonly ParamEntry[], flag: (p: ParamEntry) => boolean | undefined) {
  const before = new Map(a.map((p) => [p.name, flag(p)]));
  const comparable = b.filter((p) => flag(p) !== undefined && before.get(p.name) !== undefined);
  const flipped = (to: boolean) => comparable.filter((p) => flag(p) === to && before.get(p.name) === !to);
  return [true, false].flatMap((to) => groupParams(flipped(to), comparable).map((g) => ({ ...g, before: !to, after: to })));
}

/** Same name, same shape, different bytes; both sides must have been hashed. */
function weightChanges(a: readonly ParamEntry[], b: readonly ParamEntry[]): ParamGroup[] {
  const before = new Map(a.map((p) => [p.name, p]));
  const hashed = b.filter((p) => {
    const x = before.get(p.name);
    return p.sha256 !== undefined && x?.sha256 !== undefined && sameShape(x.shape, p.shape) && x.dtype === p.dtype;
  });
  return groupParams(hashed.filter((p) => before.get(p.name)!.sha256 !== p.sha256), hashed);
}

function diffCounts(a: readonly ModuleEntry[], b: readonly ModuleEntry[]): CountChange[] {
  const ma = new Map(a.map((m) => [m.path, m]));
  const mb = new Map(b.map((m) => [m.path, m]));
  const zero = (other: ModuleEntry | undefined): Counts => (other?.trainable === undefined ? { tensors: 0, params: 0 } : { tensors: 0, params: 0, trainable: 0 });
  const out: CountChange[] = [];
  for (const path of [...new Set([...ma.keys(), ...mb.keys()])].sort(comparePaths)) {
    const x = ma.get(path);
    const y = mb.get(path);
    // Inside a module that exists on one side only, the module's own line says it all.
    const parent = path === '' ? undefined : parentPath(path);
    if (parent !== undefined && (!ma.has(parent) || !mb.has(parent))) continue;
    const before = x ? countsOf(x) : zero(y);
    const after = y ? countsOf(y) : zero(x);
    // Unknown freeze state on one side (a bare .onnx) is not a change.
    const trainableChanged = before.trainable !== undefined && after.trainable !== undefined && before.trainable !== after.trainable;
    const changed = before.tensors !== after.tensors || before.params !== after.params || trainableChanged;
    if (changed || depthOf(path) <= 1) out.push({ module: path, before, after, changed });
  }
  return out;
}

const countsOf = (m: ModuleEntry): Counts => (m.trainable === undefined ? { tensors: m.tensors, params: m.params } : { tensors: m.tensors, params: m.params, trainable: m.trainable });

function diffOps(a: GraphSummary['ops'], b: GraphSummary['ops']): OpChange[] {
  const ha = aggregateOps(a);
  const hb = aggregateOps(b);
  const out: OpChange[] = [];
  for (const module of [...new Set([...ha.keys(), ...hb.keys()])].sort(comparePaths)) {
    const parent = module === '' ? undefined : parentPath(module);
    if (parent !== undefined && (!ha.has(parent) || !hb.has(parent))) continue;
    const x = ha.get(module) ?? new Map<string, number>();
    const y = hb.get(module) ?? new Map<string, number>();
    for (const op of [...new Set([...x.keys(), ...y.keys()])].sort(compareStrings)) {
      const before = x.get(op) ?? 0;
      const after = y.get(op) ?? 0;
      if (before !== after) out.push({ module, op, before, after });
    }
  }
  return out;
}

function diffNodes(a: GraphSummary, b: GraphSummary): NodeChanges {
  const sa = new Map(a.nodes.map((n) => [n.name, n]));
  const sb = new Map(b.nodes.map((n) => [n.name, n]));
  return {
    added: b.nodes.filter((n) => !sa.has(n.name)).map((n) => n.name),
    removed: a.nodes.filter((n) => !sb.has(n.name)).map((n) => n.name),
    changed: a.nodes.filter((n) => sb.has(n.name) && sb.get(n.name)!.sig !== n.sig).map((n) => n.name),
  };
}
