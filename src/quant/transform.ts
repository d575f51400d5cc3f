/** The bind-time side of --quant: a write transform (src/artifact/write.ts) for each quantised parameter. */
import type { Graph, GraphParam, ParamQuant, Value } from '../ir/graph.ts';
import { DTYPES } from '../ir/dtype.ts';
import { elementCount } from '../ir/dims.ts';
import type { ParamTransform } from '../artifact/write.ts';
import { RowQuantizer } from './blockwise.ts';
import { f32ToBf16, f32ToF16 } from '../tensor/convert.ts';

type ScaleDType = 'float32' | 'float16' | 'bfloat16';

/** Scales in the dtype MatMulNBits computes in (its T1, the activations' type). */
function scalesIn(dtype: ScaleDType, f32: Uint8Array): Uint8Array {
  if (dtype === 'float32') return f32;
  const values = new Float32Array(f32.buffer, f32.byteOffset, f32.byteLength / 4);
  const half = dtype === 'float16' ? f32ToF16(values) : f32ToBf16(values);
  return new Uint8Array(half.buffer, half.byteOffset, half.byteLength);
}

/** The write transform for the parameters `graph` stores quantised (by name: the plan may hold another graph's holding of them). */
export function quantTransformFor(graph: Graph): (param: GraphParam) => ParamTransform | undefined {
  const quantised = new Map(graph.params.filter((p) => p.quant).map((p) => [p.name, p]));
  return (param) => {
    const stored = quantised.get(param.name);
    return stored ? quantTransform(stored, stored.value.shape as number[], stored.quant!) : undefined;
  };
}

function quantTransform(param: GraphParam, b: number[], q: ParamQuant): ParamTransform {
  const [n, k] = param.shape as [number, number];
  const quantizer = new RowQuantizer(n, k, q);
  const tensorLength = (v: Value) => elementCount(v.shape as number[]) * DTYPES[v.dtype].bytes;
  return {
    dtype: 'uint8',
    length: b[0]! * b[1]! * b[2]!,
    companions: [q.scales, ...(q.zeroPoints ? [q.zeroPoints] : [])].map((v) => ({ name: v.name!, dtype: v.dtype as 'float32' | 'float16' | 'bfloat16' | 'uint8', length: tensorLength(v) })),
    push: (f32) => quantizer.push(f32),
    finish: () => {
      const { scales, zeroPoints } = quantizer.finish();
      const out: ReturnType<ParamTransform['finish']> = [{ name: q.scales.name!, dtype: q.scales.dtype as ScaleDType, bytes: scalesIn(q.scales.dtype as ScaleDType, scales) }];
      if (zeroPoints && q.zeroPoints) out.push({ name: q.zeroPoints.name!, dtype: 'uint8', bytes: zeroPoints });
      return out;
    },
    describe: { scheme: `int${q.bits}-${q.symmetric ? 'symmetric' : 'asymmetric'}`, bits: q.bits, block_size: q.blockSize, rounding: 'nearest' },
  };
}
