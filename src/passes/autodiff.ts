/**
 * Reverse-mode autodiff over the IR. Given the forward nodes, a scalar loss and the values to
 * differentiate (the trainable parameters), it appends the backward nodes, built with the same op
 * builders and shape inference as the forward, and returns each value's gradient.
 *
 * Pruned by construction: a node is differentiated only if the loss depends on it and one of its
 * inputs depends on a value in `wrt`; a rule computes the gradient of an input only if that input
 * depends on `wrt`. So a frozen weight gets no weight-gradient product and nothing upstream of
 * the earliest trainable parameter gets any backward node.
 */
import { GraphBuilder, withBuilder } from '../ir/builder.ts';
import { constValue, type Node, type Value } from '../ir/graph.ts';
import { GRAD_RULES, NON_DIFFERENTIABLE } from './grad-rules/index.ts';
import { floatArray } from './grad-rules/util.ts';
import { Add as opAdd } from '../ops/onnx.generated.ts';

const FLOAT = new Set(['float32', 'float64', 'float16', 'bfloat16']);

export interface Gradients {
  /** The gradient of the loss for each value of `wrt`; undefined where the loss does not depend on it. */
  grads: Map<Value, Value | undefined>;
  /** The backward nodes, in topological order (to append after the forward). */
  nodes: Node[];
}

export function differentiate(forward: readonly Node[], loss: Value, wrt: readonly Value[], opset: number): Gradients {
  if (loss.rank !== 0) throw new Error(`the loss must be a scalar, got ${loss.toString()}`);
  const requires = dependsOn(forward, wrt);
  const needed = lossDependencies(forward, loss);
  const builder = new GraphBuilder(opset);
  const acc = new Map<Value, Value>();
  withBuilder(builder, () => {
    acc.set(loss, constValue(loss.dtype, [], floatArray(loss.dtype, [1])));
    for (let i = forward.length - 1; i >= 0; i--) {
      const node = forward[i]!;
      if (!needed.has(node) || !node.inputs.some((v) => v && requires.has(v))) continue;
      const gys = node.outputs.map((o) => acc.get(o));
      if (gys.every((g) => g === undefined)) continue;
      builder.withScope(`backward${node.scope ? `.${node.scope}` : ''}`, undefined, () => {
        for (const [j, g] of backward(node, gys, requires).entries()) {
          const x = node.inputs[j];
          if (!g || !x || !requires.has(x)) continue;
          accumulate(acc, x, g);
        }
      });
    }
  });
  return { grads: new Map(wrt.map((v) => [v, acc.get(v)])), nodes: builder.nodes };
}

function backward(node: Node, gys: (Value | undefined)[], requires: Set<Value>): (Value | undefined)[] {
  const rule = GRAD_RULES[node.op];
  const where = node.scope || '<root>';
  if (!rule) throw new Error(`no gradient rule for ${node.op} (at ${where})`);
  const gy = gys[0] ?? zerosOf(node.outputs[0]!);
  try {
    return rule({ node, gy, gys, needs: (i) => Boolean(node.inputs[i] && requires.has(node.inputs[i]!)) });
  } catch (e) {
    throw new Error(`${where}: backward of ${node.op}: ${(e as Error).message}`);
  }
}

function zerosOf(v: Value): Value {
  if (!v.shape.every((d) => typeof d === 'number')) throw new Error(`no gradient reaches the first output of a multi-output node (${v.toString()})`);
  const n = (v.shape as number[]).reduce((p, d) => p * d, 1);
  return constValue(v.dtype, v.shape as number[], floatArray(v.dtype, new Array<number>(n).fill(0)));
}

function accumulate(acc: Map<Value, Value>, x: Value, g: Value): void {
  const prev = acc.get(x);
  if (!prev) {
    acc.set(x, g);
    return;
  }
  const sum = opAdd(prev, g);
  sum.shape = [...x.shape];
  acc.set(x, sum);
}


/** Float values that depend on one of `wrt` through differentiable ops. */
function dependsOn(forward: readonly Node[], wrt: readonly Value[]): Set<Value> {
  const set = new Set<Value>(wrt);
  for (const node of forward) {
    if (NON_DIFFERENTIABLE.has(node.op)) continue;
    if (!node.inputs.some((v) => v && set.has(v))) continue;
    for (const o of node.outputs) if (FLOAT.has(o.dtype)) set.add(o);
  }
  return set;
}

/** Nodes the loss depends on. */
function lossDependencies(forward: readonly Node[], loss: Value): Set<Node> {
  const live = new Set<Value>([loss]);
  const nodes = new Set<Node>();
  for (let i = forward.length - 1; i >= 0; i--) {
    const node = forward[i]!;
    if (!node.outputs.some((o) => live.has(o))) continue;
    nodes.add(node);
    for (const v of node.inputs) if (v) live.add(v);
  }
  return nodes;
}
