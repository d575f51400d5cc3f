/**
 * Parameters stored in fp16 / bf16 while the graph computes in fp32: each such parameter is read
 * through one Cast, placed in the parameter's own module scope.
 */
import { GraphBuilder, withBuilder } from '../ir/builder.ts';
import type { ParamDType } from '../ir/dtype.ts';
import { DTYPES } from '../ir/dtype.ts';
import type { Graph, Node, Value } from '../ir/graph.ts';
import { Cast } from '../ops/onnx.generated.ts';

/** A parameter that is a graph input (train.onnx's trainable ones) is fed in float32 whatever the storage. */
export function storeParamsAs(graph: Graph, dtype: ParamDType): void {
  if (dtype === 'float32') return;
  const fed = new Set(graph.inputs);
  const consumers = new Map<Value, Node[]>();
  for (const node of graph.nodes) {
    for (const v of node.inputs) if (v?.kind === 'param') consumers.set(v, [...(consumers.get(v) ?? []), node]);
  }
  const builder = new GraphBuilder(graph.opset);
  const casts = new Map<Value, Value>();
  withBuilder(builder, () => {
    for (const p of graph.params) {
      if (p.quant || fed.has(p.value)) continue; // stored packed (its kernel dequantises), or fed
      p.value.dtype = dtype;
      if (!consumers.has(p.value)) continue;
      const scope = p.name.split('.').slice(0, -1).join('.');
      casts.set(p.value, builder.withScope(scope, undefined, () => Cast(p.value, { to: DTYPES.float32.onnx })));
    }
  });
  for (const [param, nodes] of consumers) {
    const cast = casts.get(param);
    if (cast) for (const n of nodes) n.inputs = n.inputs.map((v) => (v === param ? cast : v));
  }
  graph.nodes = [...builder.nodes, ...graph.nodes];
}
