/** The bind-time side of --quant: a write transform (src/artifact/write.ts) for each quantised parameter. */
import type { Param } from '../ir/graph.ts';
import type { ParamTransform } from '../artifact/write.ts';
import { RowQuantizer } from './blockwise.ts';

export function quantTransform(param: Param): ParamTransform | undefined {
  const q = param.quant;
  if (!q) return undefined;
  const [n, k] = param.shape as [number, number];
  const quantizer = new RowQuantizer(n, k, q);
  const b = param.value.shape as number[];
  return {
    dtype: 'uint8',
    length: b[0]! * b[1]! * b[2]!,
    push: (f32) => quantizer.push(f32),
    finish: () => {
      const { scales, zeroPoints } = quantizer.finish();
      const out: ReturnType<ParamTransform['finish']> = [{ name: q.scales.name!, dtype: 'float32', bytes: scales }];
      if (zeroPoints && q.zeroPoints) out.push({ name: q.zeroPoints.name!, dtype: 'uint8', bytes: zeroPoints });
      return out;
    },
    describe: { scheme: `int${q.bits}-${q.symmetric ? 'symmetric' : 'asymmetric'}`, bits: q.bits, block_size: q.blockSize, rounding: 'nearest' },
  };
}
