/**
 * --dtype fp16|bf16 with --target gpu: the graph computes in the half dtype, not only stores in it.
 * Parameters are stored in it and read directly; float graph inputs are cast to it on entry and
 * float outputs back to fp32 on exit (onnxruntime-node has no bfloat16 tensors); in between every
 * node with a half input computes in half.
 *
 * What stays fp32, on purpose: values computed from integers alone (rotary angles from position
 * indices: fp16 cannot hold positions past 2048 exactly), until they meet half data, where one
 * Cast converts them; outputs an op defines as fp32 (the normalisations' mean / inv_std_var);
 * ops whose schema at the built opset lacks the dtype (Conv-11 has no bfloat16), fed through Casts;
 * and the accumulation inside LayerNormalization (stash_type 1), the Skip*LayerNormalization /
 * RMSNormalization kernels and Softmax, which ONNX Runtime does in fp32 for half inputs.
 * Float constants take the dtype of the node that reads them.
 */
import { DTYPES, type DType } from '../ir/dtype.ts';
import { constValue, type Graph, type Node, type Value } from '../ir/graph.ts';
import * as std from '../ops/onnx.generated.ts';
import * as contrib from '../ops/contrib.generated.ts';
import type { OpSignature } from '../ops/signature.ts';
import { CastSig } from '../ops/onnx.generated.ts';
import { f32ToBf16, f32ToF16 } from '../tensor/convert.ts';
import { detachedNode } from './fusion/rewrite.ts';

export type HalfDType = 'float16' | 'bfloat16';

function signatureOf(node: Node): OpSignature {
  const table = (node.domain === 'com.microsoft' ? contrib : std) as unknown as Record<string, OpSignature | undefined>;
  const sig = table[`${node.op}Sig`];
  if (!sig) throw new Error(`no signature for ${node.domain || 'ai.onnx'} ${node.op}`);
  return sig;
}

const formalAt = (formals: OpSignature['inputs'], i: number) => formals[Math.min(i, formals.length - 1)]!;

function halfConst(v: Value, dtype: HalfDType): Value {
  const src = Float32Array.from(v.data!.data as Float32Array);
  const bits = dtype === 'float16' ? f32ToF16(src) : f32ToBf16(src);
  return constValue(dtype, [...v.data!.shape], bits);
}

/**
 * `halfAtEdge(name)`: graph inputs / outputs that stay in the half dtype at the graph's edge (the
 * fp16 KV cache: onnxruntime-node feeds float16 tensors; it has no bfloat16 ones).
 */
export function computeInHalf(graph: Graph, dtype: HalfDType, halfAtEdge: (name: string) => boolean = () => false): void {
  for (const p of graph.params) {
    if (p.quant) p.quant.scales.dtype = dtype; // MatMulNBits: scales share A's type
    else if (p.value.dtype === 'float32') p.value.dtype = dtype;
  }
  const nodes: Node[] = [];
  const casts = new Map<Value, Value>();
  const castTo = (v: Value, to: DType, scope: string): Value => {
    const hit = casts.get(v);
    if (hit && hit.dtype === to) return hit;
    const node = detachedNode(graph, scope, CastSig, [v], { to: DTYPES[to].onnx });
    nodes.push(node);
    casts.set(v, node.outputs[0]!);
    return node.outputs[0]!;
  };
  const entry = new Map<Value, Value>();
  for (const input of graph.inputs) {
    if (input.dtype !== 'float32') continue;
    if (halfAtEdge(input.name!)) input.dtype = dtype;
    else entry.set(input, castTo(input, dtype, ''));
  }

  for (const node of graph.nodes) {
    node.inputs = node.inputs.map((v) => (v && entry.get(v)) ?? v);
    const sig = signatureOf(node);
    const halfTypes = new Set(node.inputs.flatMap((v, i) => (v && v.dtype === dtype ? [formalAt(sig.inputs, i).type] : [])));
    const unsupported = [...halfTypes].some((t) => !(sig.typeConstraints[t] ?? []).includes(dtype));
    if (unsupported) {
      // The op has no such type at its opset (e.g. Conv-11 and bfloat16): it runs in fp32.
      node.inputs = node.inputs.map((v) => (v && v.dtype === dtype ? castTo(v, 'float32', node.scope) : v));
    } else if (halfTypes.size > 0) {
      node.inputs = node.inputs.map((v, i) => {
        if (!v || v.dtype !== 'float32' || !halfTypes.has(formalAt(sig.inputs, i).type)) return v;
        return v.kind === 'const' ? halfConst(v, dtype) : castTo(v, dtype, node.scope);
      });
      node.outputs.forEach((o, i) => {
        if (o.dtype === 'float32' && halfTypes.has(formalAt(sig.outputs, i).type)) o.dtype = dtype;
      });
    }
    nodes.push(node);
  }
  graph.nodes = nodes;
  graph.outputs = graph.outputs.map((o) => {
    if (o.dtype !== dtype || halfAtEdge(o.name!)) return o;
    const back = castTo(o, 'float32', '');
    back.name = o.name;
    o.name = undefined;
    return back;
  });
}
