/**
 * Deterministic names: a node is named by its module path and op (`/language_model/model/layers.0/
 * self_attn/q_proj/MatMul`, then `_1`, `_2` for repeats), its outputs `<node>/output_<i>`; constants
 * by content. The same graph source always gives the same names, so builds and diffs are stable.
 */
import { createHash } from 'node:crypto';
import type { ConstData, Graph, Value } from '../ir/graph.ts';

export function nameGraph(graph: Graph): void {
  const used = new Map<string, number>();
  for (const node of graph.nodes) {
    const base = `/${node.scope.split('.').filter(Boolean).join('/')}${node.scope ? '/' : ''}${node.op}`;
    const n = used.get(base) ?? 0;
    used.set(base, n + 1);
    node.name = n === 0 ? base : `${base}_${n}`;
    node.outputs.forEach((o, i) => {
      if (!graph.outputs.includes(o)) o.name = `${node.name}/output_${i}`;
    });
    for (const v of node.inputs) if (v?.kind === 'const' && !v.name) v.name = constName(v.data!);
  }
}

export function constName(c: ConstData): string {
  const bytes = new Uint8Array(c.data.buffer, c.data.byteOffset, c.data.byteLength);
  const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 10);
  return `/const/${c.dtype}[${c.shape.join(',')}]/${hash}`;
}

/** Constants by name; equal contents share one name, hence one initializer. */
export function collectConstants(graph: Graph): Map<string, Value> {
  const out = new Map<string, Value>();
  for (const node of graph.nodes) for (const v of node.inputs) if (v?.kind === 'const' && !out.has(v.name!)) out.set(v.name!, v);
  return out;
}
