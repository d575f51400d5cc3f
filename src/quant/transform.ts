/** The bind-time side of --quant: a write transform (src/artifact/write.ts) for each quantised parameter. */
import type { Graph, Param, StoredParam } from '../ir/graph.ts';
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

/** The write transform for the parameters `graph` stores quantised (its storage snapshot). */
export function quantTransformFor(graph: Graph): (param: Param) => ParamTransform | undefined {
  return (param) => {
    const stored = graph.stored?.get(param.name);
    return stored?.quant ? quantTransform(param, stored.shape, stored.quant) : undefined;
  };
}

function quantTransform(param: Param, b: number[], q: NonNullable<StoredParam['quant']>): ParamTransform {
  const [n, k] = param.shape as [number, number];
  const quantizer = new RowQuantizer(n, k, q);
  return {
    dtype: 'uint8',
    length: b[0]! * b[1]! * b[2]!,
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
