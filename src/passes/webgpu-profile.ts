/**
 * The webgpu capability profile of the fused target: which ONNX Runtime fused (com.microsoft) ops
 * and element types the WebGPU execution provider has kernels for, and a check that refuses a graph
 * using anything outside it. A standalone table (the compile options are being redesigned); the
 * build wires it in by calling checkWebgpuGraph on each compiled graph, or webgpuSupports per node.
 *
 * Source: ONNX Runtime's kernel registrations (onnxruntime/contrib_ops/webgpu/webgpu_contrib_kernels.cc,
 * core/providers/webgpu/webgpu_execution_provider.cc; every WebGPU kernel is registered for
 * WebGpuSupportedFloatTypes = float32 and float16, MatMulNBits for 4 and 8 bits), checked against
 * onnxruntime-node 1.30 itself: test/webgpu-profile.test.ts reads the provider's node placement for
 * vlmc's fused graphs. WGSL has no bfloat16 and no float64 type, so no WebGPU kernel takes them.
 */
import type { DType } from '../ir/dtype.ts';
import type { Graph, Node } from '../ir/graph.ts';
import { UserError } from '../errors.ts';

const HALF_AND_SINGLE: readonly DType[] = ['float32', 'float16'];

/** com.microsoft ops with a WebGPU kernel, and the element type (T) each takes. */
export const WEBGPU_CONTRIB_OPS: Readonly<Record<string, readonly DType[]>> = {
  MultiHeadAttention: HALF_AND_SINGLE,
  GroupQueryAttention: HALF_AND_SINGLE,
  SkipLayerNormalization: HALF_AND_SINGLE,
  SkipSimplifiedLayerNormalization: HALF_AND_SINGLE,
  Gelu: HALF_AND_SINGLE,
  FastGelu: HALF_AND_SINGLE,
  BiasGelu: HALF_AND_SINGLE,
  QuickGelu: HALF_AND_SINGLE,
  BiasAdd: HALF_AND_SINGLE,
  RotaryEmbedding: HALF_AND_SINGLE,
  Attention: HALF_AND_SINGLE,
  /** T1 (activations); the packed weights are uint8, 4 or 8 bits. */
  MatMulNBits: HALF_AND_SINGLE,
};

/** Element types no WebGPU kernel takes (WGSL has no such type; ORT's CPU fallback lacks most bf16 kernels too). */
const NO_WGSL_TYPE: ReadonlySet<DType> = new Set(['bfloat16', 'float64']);

const isDefaultDomain = (domain: string) => domain === '' || domain === 'ai.onnx';

/**
 * Whether a node of `op` in `domain` computing in `dtype` runs under the WebGPU provider. Standard
 * ops: any type WGSL has (the shape arithmetic on int64 that ONNX Runtime keeps on the CPU on
 * purpose included); fused ops: the table above.
 */
export function webgpuSupports(op: string, domain: string, dtype: DType): boolean {
  if (NO_WGSL_TYPE.has(dtype)) return false;
  if (isDefaultDomain(domain)) return true;
  if (domain === 'com.microsoft') return WEBGPU_CONTRIB_OPS[op]?.includes(dtype) ?? false;
  return false;
}

const FLOATS: ReadonlySet<DType> = new Set(['float32', 'float16', 'bfloat16', 'float64']);

/** The element type that picks a node's kernel: its first float input (T, or T1 for MatMulNBits), else its first output's. */
export function kernelDType(node: Node): DType {
  return node.inputs.find((v) => v !== undefined && FLOATS.has(v.dtype))?.dtype ?? node.outputs[0]?.dtype ?? 'float32';
}

/**
 * Refuses a graph with a node outside the webgpu profile: one message naming each op and type
 * (with where it first occurs and how often) and what builds instead.
 */
export function checkWebgpuGraph(graph: Graph): void {
  const outside = new Map<string, { first: Node; count: number }>();
  for (const node of graph.nodes) {
    const dtype = kernelDType(node);
    if (webgpuSupports(node.op, node.domain, dtype)) continue;
    const key = `${node.domain ? `${node.domain} ` : ''}${node.op} in ${dtype}`;
    const seen = outside.get(key);
    if (seen) seen.count++;
    else outside.set(key, { first: node, count: 1 });
  }
  if (outside.size === 0) return;
  const list = [...outside].map(([key, { first, count }]) => `${key} (${count} node${count === 1 ? '' : 's'}, first in ${first.scope || 'the graph'})`);
  throw new UserError(`${graph.name}: the webgpu profile: ONNX Runtime's WebGPU provider has no kernel for ${list.join(', ')}; WebGPU computes in fp32 or fp16 (--dtype fp32 or fp16)`);
}
