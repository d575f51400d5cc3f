/**
 * MXFP4 (OCP microscaling FP4), as GPT-OSS checkpoints store their expert weights and as
 * transformers 5.17 reads them when it dequantises (`integrations/mxfp4.py`,
 * `convert_moe_packed_tensors`, the path it takes without the triton kernels):
 *
 * - `X_blocks` uint8 [E, R, G, 16]: R output rows, G = K / 32 blocks of 32 FP4 (e2m1) values along
 *   the input axis K, two per byte, the low nibble first (value 2j is `b & 0xF`, 2j + 1 is `b >> 4`);
 * - `X_scales` uint8 [E, R, G]: one e8m0 exponent per block, bias 127: value = e2m1 · 2^(s - 127);
 * - the dense weight is [E, R, K] transposed to [E, K, R]: `gate_up_proj` [E, H, 2I], `down_proj`
 *   [E, I, H], exactly GPT-OSS's float tensors.
 *
 * Every e2m1 value times a power of two is exact in float32 (transformers' bf16 holds the same
 * numbers), so the dequantised weights are the checkpoint's values, not approximations.
 */

/** e2m1 code -> value: sign bit 3, exponent bits 2-1, mantissa bit 0. */
export const FP4_E2M1 = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6] as const;

export const MXFP4_BLOCK = 32;
export const MXFP4_SCALE_BIAS = 127;

/** How the manifest records a parameter dequantised from MXFP4 while binding. */
export const MXFP4_TRANSFORM = 'mxfp4 dequantise: e2m1 (low nibble first) * 2^(e8m0 - 127), blocks of 32, [E, R, K] -> [E, K, R]';

/** The dense shape [E, K, R] of a blocks / scales pair, or why the pair is not one. */
export function mxfp4DenseShape(blocks: readonly number[], scales: readonly number[]): number[] | string {
  if (blocks.length !== 4 || blocks[3] !== MXFP4_BLOCK / 2) return `blocks must be [experts, rows, blocks, ${MXFP4_BLOCK / 2}], got [${blocks.join(', ')}]`;
  if (scales.length !== 3 || scales.some((d, i) => d !== blocks[i])) return `scales [${scales.join(', ')}] must be the blocks' first three dims [${blocks.slice(0, 3).join(', ')}]`;
  const [e, r, g] = blocks as [number, number, number, number];
  return [e, g * MXFP4_BLOCK, r];
}

/** 2^(s - 127) for every e8m0 byte (2^128 is Infinity in float32, as torch.ldexp gives). */
const SCALE_OF = Float64Array.from({ length: 256 }, (_, s) => 2 ** (s - MXFP4_SCALE_BIAS));

/**
 * One expert's dense [K, R] weight from its blocks [R, G, 16] and scales [R, G]: value (r, k) is
 * code `k % 2 ? hi : lo` of byte blocks[r, k / 32, (k % 32) / 2], times 2^(scales[r, k / 32] - 127).
 */
export function dequantizeMxfp4Expert(blocks: Uint8Array, scales: Uint8Array, rows: number, groups: number, out = new Float32Array(rows * groups * MXFP4_BLOCK)): Float32Array {
  if (out.length !== rows * groups * MXFP4_BLOCK) throw new Error(`mxfp4: an output of ${out.length} values for ${rows} rows of ${groups} blocks`);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const scale = SCALE_OF[scales[r * groups + g]!]!;
      const base = (r * groups + g) * (MXFP4_BLOCK / 2);
      for (let j = 0; j < MXFP4_BLOCK / 2; j++) {
        const byte = blocks[base + j]!;
        const col = g * MXFP4_BLOCK + 2 * j;
        // Transposed as it is written: row k of the [K, R] output.
        out[col * rows + r] = FP4_E2M1[byte & 0xf]! * scale;
        out[(col + 1) * rows + r] = FP4_E2M1[byte >> 4]! * scale;
      }
    }
  }
  return out;
}
