/**
 * optimizer.onnx: one torch.optim.AdamW step (amsgrad off, maximize off) for every trainable
 * parameter, from standard ops:
 *
 *   p  <- p (1 - lr wd)                          decoupled weight decay
 *   m  <- b1 m + (1 - b1) g
 *   v  <- b2 v + (1 - b2) g^2
 *   p  <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *
 * Hyperparameters are scalar inputs (`lr`, `beta1`, `beta2`, `eps`, `weight_decay`: F32; `step`:
 * I64, the step being taken, from 1). Per parameter P the inputs are `param.P`, `grad.P`,
 * `exp_avg.P`, `exp_avg_sq.P` and the outputs `new_param.P`, `new_exp_avg.P`, `new_exp_avg_sq.P`.
 */
import { GraphBuilder, withBuilder } from '../ir/builder.ts';
import { Value, type Graph, type Param } from '../ir/graph.ts';
import { DEFAULT_OPSET } from '../compile.ts';
import * as op from '../ops/index.ts';
import { f32Scalar } from '../dsl/constants.ts';
import { DTYPES } from '../ir/dtype.ts';
import { finishGraph } from '../passes/pipeline.ts';

export const HYPERPARAMETERS = ['lr', 'beta1', 'beta2', 'eps', 'weight_decay'] as const;
export const STATE_PREFIXES = { param: 'param.', grad: 'grad.', expAvg: 'exp_avg.', expAvgSq: 'exp_avg_sq.' } as const;
export const NEW_PREFIXES = { param: 'new_param.', expAvg: 'new_exp_avg.', expAvgSq: 'new_exp_avg_sq.' } as const;

const input = (name: string, dtype: 'float32' | 'int64', shape: number[]): Value => {
  const v = new Value('input', dtype, shape);
  v.name = name;
  return v;
};

export function compileOptimizer(params: readonly Pick<Param, 'name' | 'shape'>[], options: { opset?: number } = {}): Graph {
  const opset = options.opset ?? DEFAULT_OPSET;
  const hyper = Object.fromEntries(HYPERPARAMETERS.map((h) => [h, input(h, 'float32', [])])) as Record<(typeof HYPERPARAMETERS)[number], Value>;
  const step = input('step', 'int64', []);
  const inputs: Value[] = [...Object.values(hyper), step];
  const outputs: Value[] = [];
  const builder = new GraphBuilder(DEFAULT_OPSET);
  withBuilder(builder, () => {
    const one = f32Scalar(1);
    const t = op.Cast(step, { to: DTYPES.float32.onnx });
    const stepSize = builder.withScope('adamw', undefined, () => op.Div(hyper.lr, op.Sub(one, op.Pow(hyper.beta1, t))));
    const rootBias2 = builder.withScope('adamw', undefined, () => op.Sqrt(op.Sub(one, op.Pow(hyper.beta2, t))));
    const decay = builder.withScope('adamw', undefined, () => op.Sub(one, op.Mul(hyper.lr, hyper.weight_decay)));
    for (const p of params) {
      const [value, grad, m, v] = (['param', 'grad', 'expAvg', 'expAvgSq'] as const).map((k) => input(`${STATE_PREFIXES[k]}${p.name}`, 'float32', [...p.shape]));
      inputs.push(value!, grad!, m!, v!);
      builder.withScope(`adamw.${p.name}`, undefined, () => {
        const m1 = op.Add(op.Mul(hyper.beta1, m!), op.Mul(op.Sub(one, hyper.beta1), grad!));
        const v1 = op.Add(op.Mul(hyper.beta2, v!), op.Mul(op.Sub(one, hyper.beta2), op.Mul(grad!, grad!)));
        const denom = op.Add(op.Div(op.Sqrt(v1), rootBias2), hyper.eps);
        const p1 = op.Sub(op.Mul(value!, decay), op.Mul(stepSize, op.Div(m1, denom)));
        const out = [p1, m1, v1];
        (['param', 'expAvg', 'expAvgSq'] as const).forEach((k, i) => {
          const o = op.Identity(out[i]!);
          o.name = `${NEW_PREFIXES[k]}${p.name}`;
          outputs.push(o);
        });
      });
    }
  });
  const graph: Graph = { name: 'adamw', opset, inputs, outputs, nodes: builder.nodes, params: [], metadata: { 'vlmc.graph': 'optimizer', 'vlmc.optimizer': 'adamw' } };
  finishGraph(graph);
  return graph;
}
