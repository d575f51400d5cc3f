/**
 * `GraphSummary` from a compiled IR graph: the facts a reviewer checks (I/O signature, parameters
 * and their freeze state, module tree with counts, op histogram, structure hash). The summary of
 * an .onnx file lives in onnx.ts and is re-exported here.
 */
import type { Attr, ConstData, Graph, Node, Value } from '../ir/graph.ts';
import { assembleSummary } from './assemble.ts';
import { canonAttr, canonAttrs, tensorId, type CanonNode, type InputRef } from './hash.ts';
import type { GraphSummary, IoEntry } from './types.ts';

export type * from './types.ts';
export { summaryFromOnnxFile, type OnnxSummaryOptions } from './onnx.ts';
export { withTrainable } from './assemble.ts';

export function summaryFromGraph(graph: Graph): GraphSummary {
  const index = new Map<Node, number>(graph.nodes.map((n, i) => [n, i]));
  const ref = (v: Value | undefined): InputRef => valueRef(v, index);
  return assembleSummary({
    name: graph.name,
    opset: { 'ai.onnx': graph.opset },
    inputs: graph.inputs.map(ioEntry),
    outputs: graph.outputs.map((v) => ({ ...ioEntry(v), ref: ref(v) })),
    metadata: graph.metadata,
    params: graph.params.map((p) => ({ name: p.name, shape: [...p.shape], dtype: p.dtype, trainable: p.trainable })),
    nodes: graph.nodes.map((n) => canonNode(n, ref)),
    nodeModules: true,
  });
}

function ioEntry(v: Value): IoEntry {
  return { name: v.name ?? '', dtype: v.dtype, shape: [...v.shape] };
}

function canonNode(n: Node, ref: (v: Value | undefined) => InputRef): CanonNode {
  return {
    name: n.name,
    op: n.op,
    domain: n.domain,
    attrs: canonAttrs(Object.entries(n.attrs).map(([k, a]) => [k, irAttr(a)])),
    module: n.scope,
    inputs: n.inputs.map(ref),
    // A parameter's value carries no name of its own; its checkpoint key is what the .onnx uses.
    inputNames: n.inputs.map((v) => v?.param?.name ?? v?.name ?? ''),
  };
}

function irAttr(a: Attr): string {
  if (a.type === 'TENSOR') return canonAttr('TENSOR', constId(a.value as ConstData));
  return canonAttr(a.type, a.value);
}

const constId = (c: ConstData): string => tensorId(c.dtype, c.shape, new Uint8Array(c.data.buffer, c.data.byteOffset, c.data.byteLength));

function valueRef(v: Value | undefined, index: ReadonlyMap<Node, number>): InputRef {
  if (!v) return { kind: 'none' };
  switch (v.kind) {
    case 'input':
      return { kind: 'input', name: v.name ?? '' };
    case 'param':
      return { kind: 'param', name: v.param!.name, dtype: v.param!.dtype, shape: [...v.param!.shape] };
    case 'const':
      return { kind: 'const', id: constId(v.data!) };
    case 'node': {
      const producer = v.producer;
      const i = producer ? index.get(producer) : undefined;
      if (producer === undefined || i === undefined) return { kind: 'unknown', name: v.name ?? '' };
      return { kind: 'node', node: i, output: producer.outputs.indexOf(v) };
    }
  }
}
