/**
 * The structure hash. Nodes are hashed Merkle-style: a node's hash covers its op, attributes and the
 * hashes of what feeds it, and the graph hash covers the sorted multiset of node hashes. So it does
 * not depend on node names (`MatMul_3` suffixes follow creation order), on the order nodes are
 * listed in, or on module names: a parameter is referenced by its path relative to the node's module
 * plus its shape and dtype, which a pure rename (`mlp1` -> `projector`) leaves unchanged while
 * miswiring (q_proj's MatMul reading k_proj.weight) changes it.
 */
import { createHash } from 'node:crypto';
import { UserError } from '../errors.ts';
import { intText } from '../onnx/proto.ts';
import { relativePath } from './tree.ts';
import type { IoEntry } from './types.ts';

export type InputRef =
  | { kind: 'none' }
  | { kind: 'input'; name: string }
  | { kind: 'param'; name: string; dtype: string; shape: number[] }
  /** A literal; `id` is content-derived (dtype, shape, bytes hash). */
  | { kind: 'const'; id: string }
  | { kind: 'node'; node: number; output: number }
  /** A name nothing in the graph defines (e.g. an outer-scope value). */
  | { kind: 'unknown'; name: string };

/** The source-independent view of a node that both the IR and the .onnx reader produce. */
export interface CanonNode {
  name: string;
  op: string;
  domain: string;
  /** Canonical attribute text (see `canonAttr`). */
  attrs: string;
  module: string | undefined;
  inputs: InputRef[];
  /** Input names as written, for the node-local signature. */
  inputNames: string[];
}

export interface CanonOutput extends IoEntry {
  ref: InputRef;
}

export const sha256Hex = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** An attribute as text. Floats go through float32 because ONNX stores them so (IR 1e-6 == .onnx 1e-6). */
export function canonAttr(type: string, value: unknown): string {
  switch (type) {
    case 'INT':
      return `INT:${intText(value)}`;
    case 'FLOAT':
      return `FLOAT:${String(Math.fround(Number(value)))}`;
    case 'STRING':
      return `STRING:${JSON.stringify(value)}`;
    case 'INTS':
      return `INTS:[${(value as unknown[]).map(intText).join(',')}]`;
    case 'FLOATS':
      return `FLOATS:[${(value as unknown[]).map((f) => String(Math.fround(Number(f)))).join(',')}]`;
    case 'STRINGS':
      return `STRINGS:${JSON.stringify(value)}`;
    default:
      // TENSOR and exotic types arrive already reduced to a content id.
      return `${type}:${String(value)}`;
  }
}


export const tensorId = (dtype: string, shape: readonly number[], bytes: Uint8Array): string => `${dtype}[${shape.join(',')}]#${sha256Hex(bytes).slice(0, 16)}`;

export function canonAttrs(entries: [string, string][]): string {
  return entries
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join(';');
}

/** Hash of a node's own content: op, attributes, input names. Changes on that node only. */
export function nodeSignature(n: CanonNode): string {
  return sha256Hex(`${n.domain}|${n.op}|${n.attrs}|${n.inputNames.join(',')}`).slice(0, 16);
}

/** Node indices in an order where producers come first (Kahn; stable for already-sorted input). */
export function topologicalOrder(nodes: readonly CanonNode[]): number[] {
  const consumers = nodes.map(() => [] as number[]);
  const pending = nodes.map((n, i) => {
    const producers = new Set<number>();
    for (const r of n.inputs) if (r.kind === 'node') producers.add(r.node);
    for (const p of producers) consumers[p]!.push(i);
    return producers.size;
  });
  const order: number[] = [];
  const ready = pending.flatMap((c, i) => (c === 0 ? [i] : [])).reverse();
  while (ready.length) {
    const i = ready.pop()!;
    order.push(i);
    const freed: number[] = [];
    for (const c of consumers[i]!) if (--pending[c]! === 0) freed.push(c);
    ready.push(...freed.reverse());
  }
  if (order.length !== nodes.length) throw new UserError('the graph has a cycle: its nodes cannot be ordered');
  return order;
}

export function structureHash(opset: Record<string, number>, inputs: readonly IoEntry[], nodes: readonly CanonNode[], outputs: readonly CanonOutput[]): string {
  const hashes = new Array<string>(nodes.length);
  const refText = (r: InputRef, module: string | undefined): string => {
    switch (r.kind) {
      case 'none':
        return '-';
      case 'input':
        return `in:${r.name}`;
      case 'param':
        return `param:${relativePath(module ?? '', r.name)}:${r.dtype}[${r.shape.join(',')}]`;
      case 'const':
        return `const:${r.id}`;
      case 'node':
        return `node:${hashes[r.node]}:${r.output}`;
      case 'unknown':
        return `unknown:${r.name}`;
    }
  };
  for (const i of topologicalOrder(nodes)) {
    const n = nodes[i]!;
    hashes[i] = sha256Hex(`${n.domain}|${n.op}|${n.attrs}|${n.inputs.map((r) => refText(r, n.module)).join(',')}`);
  }
  const h = createHash('sha256');
  h.update('vlmc-structure/1\n');
  for (const d of Object.keys(opset).sort()) h.update(`opset ${d} ${opset[d]}\n`);
  for (const io of inputs) h.update(`input ${io.name} ${io.dtype} [${io.shape.join(',')}]\n`);
  for (const o of outputs) h.update(`output ${o.name} ${o.dtype} [${o.shape.join(',')}] ${refText(o.ref, undefined)}\n`);
  for (const nh of [...hashes].sort()) h.update(`${nh}\n`);
  return `sha256:${h.digest('hex')}`;
}
