/**
 * torchvision's `ToTensor` + `Normalize(IMAGENET_MEAN, IMAGENET_STD)` in float32, bit-exact:
 * `v = fround(fround(fround(u / 255) - mean_c) / std_c)` with mean and std rounded to float32.
 * Each step is one float32 operation, which a float64 operation rounded to float32 reproduces
 * exactly (float64 carries more than twice float32's precision). `u / 255` must stay a division:
 * multiplying by fround(1 / 255) is not bit-exact.
 */

export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

/** `normalizeValue(c, u)` for every channel c and byte u: [3 * 256], channel-major. */
export const NORMALIZE_LUT: Float32Array = buildLut();

export function normalizeValue(channel: number, u: number): number {
  const f = Math.fround;
  return f(f(f(u / 255) - f(IMAGENET_MEAN[channel]!)) / f(IMAGENET_STD[channel]!));
}

function buildLut(): Float32Array {
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) for (let u = 0; u < 256; u++) lut[c * 256 + u] = normalizeValue(c, u);
  return lut;
}

/**
 * HWC uint8 tiles [tiles, S, S, 3] -> normalised CHW float32 [tiles, 3, S, S] (the model's
 * `pixel_values`).
 */
export function normalizeTiles(tilesU8: Uint8Array, tiles: number, size: number): Float32Array {
  const plane = size * size;
  if (tilesU8.length !== tiles * plane * 3) throw new RangeError(`normalizeTiles: ${tilesU8.length} bytes for ${tiles} tiles of ${size}x${size}x3`);
  const out = new Float32Array(tiles * 3 * plane);
  for (let t = 0; t < tiles; t++) {
    const src = t * plane * 3;
    const dst = t * 3 * plane;
    for (let c = 0; c < 3; c++) {
      const lut = NORMALIZE_LUT.subarray(c * 256, c * 256 + 256);
      const o = dst + c * plane;
      for (let i = 0; i < plane; i++) out[o + i] = lut[tilesU8[src + i * 3 + c]!]!;
    }
  }
  return out;
}
