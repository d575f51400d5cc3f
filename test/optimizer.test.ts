/** optimizer.onnx against a float64 transcription of torch.optim.AdamW's update (_single_tensor_adamw). */
import { describe, it, expect } from 'vitest';
import * as ortNs from 'onnxruntime-node';
import { compileOptimizer } from '../src/train/optimizer.ts';
import { buildModelProto, encodeModel } from '../src/onnx/emit.ts';

const ort = ((ortNs as unknown as { default?: typeof ortNs }).default ?? ortNs) as typeof ortNs;

interface State { p: Float64Array; m: Float64Array; v: Float64Array }

/** torch: p *= 1 - lr wd; m.lerp_(g, 1 - b1); v = b2 v + (1 - b2) g^2; p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps). */
function torchAdamW(s: State, g: Float64Array, step: number, h: { lr: number; beta1: number; beta2: number; eps: number; weight_decay: number }): void {
  const bc1 = 1 - h.beta1 ** step;
  const bc2 = 1 - h.beta2 ** step;
  const stepSize = h.lr / bc1;
  const bc2Sqrt = Math.sqrt(bc2);
  for (let i = 0; i < s.p.length; i++) {
    s.p[i]! *= 1 - h.lr * h.weight_decay;
    s.m[i] = s.m[i]! + (g[i]! - s.m[i]!) * (1 - h.beta1);
    s.v[i] = s.v[i]! * h.beta2 + g[i]! * g[i]! * (1 - h.beta2);
    const denom = Math.sqrt(s.v[i]!) / bc2Sqrt + h.eps;
    s.p[i] = s.p[i]! - stepSize * (s.m[i]! / denom);
  }
}

describe('optimizer.onnx (AdamW)', () => {
  it('matches torch.optim.AdamW over 5 steps for every parameter', async () => {
    const params = [
      { name: 'a.weight', shape: [3, 4] },
      { name: 'b.bias', shape: [5] },
    ];
    const graph = compileOptimizer(params);
    const session = await ort.InferenceSession.create(encodeModel(buildModelProto(graph, { location: 'none', entries: new Map() }, { producerVersion: 'test' })));
    const h = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.05 };
    let seed = 7;
    const rand = () => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1;
    const n = (s: number[]) => s.reduce((a, d) => a * d, 1);
    const ref = params.map((p) => ({ p: Float64Array.from({ length: n(p.shape) }, rand), m: new Float64Array(n(p.shape)), v: new Float64Array(n(p.shape)) }));
    const initial = Float32Array.from(ref[0]!.p);
    let cur: { p: Float32Array; m: Float32Array; v: Float32Array }[] = ref.map((r) => ({ p: Float32Array.from(r.p), m: new Float32Array(r.m.length), v: new Float32Array(r.v.length) }));
    for (let step = 1; step <= 5; step++) {
      const grads = params.map((p) => Float64Array.from({ length: n(p.shape) }, () => rand() * (step % 2 ? 1 : 1e-3)));
      const feeds: Record<string, ortNs.Tensor> = { step: new ort.Tensor('int64', BigInt64Array.of(BigInt(step)), []) };
      for (const [k, v] of Object.entries(h)) feeds[k] = new ort.Tensor('float32', Float32Array.of(v), []);
      params.forEach((p, i) => {
        feeds[`param.${p.name}`] = new ort.Tensor('float32', cur[i]!.p, p.shape);
        feeds[`grad.${p.name}`] = new ort.Tensor('float32', Float32Array.from(grads[i]!), p.shape);
        feeds[`exp_avg.${p.name}`] = new ort.Tensor('float32', cur[i]!.m, p.shape);
        feeds[`exp_avg_sq.${p.name}`] = new ort.Tensor('float32', cur[i]!.v, p.shape);
      });
      const out = await session.run(feeds);
      params.forEach((_p, i) => torchAdamW(ref[i]!, grads[i]!, step, h));
      cur = params.map((p) => ({
        p: out[`new_param.${p.name}`]!.data as Float32Array,
        m: out[`new_exp_avg.${p.name}`]!.data as Float32Array,
        v: out[`new_exp_avg_sq.${p.name}`]!.data as Float32Array,
      }));
      params.forEach((_p, i) => {
        for (const k of ['p', 'm', 'v'] as const) {
          const want = ref[i]![k];
          const got = cur[i]![k];
          for (let j = 0; j < want.length; j++) expect(Math.abs(got[j]! - want[j]!), `${k}[${j}] step ${step}`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(want[j]!)));
        }
      });
    }
    // Not a no-op: Adam moves each parameter by about lr per step.
    const moved = Math.max(...cur[0]!.p.map((v, j) => Math.abs(v - initial[j]!)));
    expect(moved).toBeGreaterThan(1e-2);
    await session.release();
  });
});
