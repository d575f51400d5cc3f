/**
 * Pillow's bicubic `Image.resize`, reproduced bit for bit (src/libImaging/Resample.c, 8 bits per
 * channel). InternVL's tiles are made by it, and a float bicubic is off by up to 28 levels because
 * Pillow works in fixed point and rounds + clips to uint8 between its two passes:
 *
 * - separable: a horizontal pass into a uint8 image, then a vertical pass over that;
 * - per output pixel, a window of source pixels around `center = (i + 0.5) * scale`, its bounds
 *   truncated as C's `(int)` does, weighted by the bicubic kernel (a = -0.5) stretched by
 *   `max(scale, 1)` (so downscaling antialiases), the weights normalised to sum 1;
 * - weights in fixed point with 22 fractional bits, each rounded half away from zero;
 * - each sum starts at half a unit, and is shifted down and clipped to 0..255.
 *
 * A pass whose size does not change is skipped (Pillow's `need_horizontal` / `need_vertical`), and
 * an unchanged size is a plain copy.
 */

/** Fractional bits of Pillow's fixed-point weights: 32 - 8 (result) - 2 (overflow headroom). */
const PRECISION_BITS = 22;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);
const BICUBIC_SUPPORT = 2;

/** The bicubic convolution kernel with a = -0.5 (Keys), as Pillow writes it. */
function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** One axis's resampling plan: for output i, `count[i]` weights from source index `first[i]`. */
export interface AxisCoefficients {
  /** Window size (the stride of `weights`). */
  ksize: number;
  first: Int32Array;
  count: Int32Array;
  /** Fixed-point weights, `ksize` per output index (unused tail entries are 0). */
  weights: Int32Array;
}

/** Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for a full-range box (0..inSize). */
export function axisCoefficients(inSize: number, outSize: number): AxisCoefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = BICUBIC_SUPPORT * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const row = new Float64Array(ksize);
  // Pillow multiplies by the reciprocal (not divides by the scale); the last bit matters.
  const inverseScale = 1 / filterScale;
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    // C's (int) truncates toward zero; negatives are clamped right after, so trunc is exact here.
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), inSize);
    const n = hi - lo;
    let sum = 0;
    for (let x = 0; x < n; x++) {
      const w = bicubic((x + lo - center + 0.5) * inverseScale);
      row[x] = w;
      sum += w;
    }
    for (let x = 0; x < n; x++) {
      const w = sum !== 0 ? row[x]! / sum : row[x]!;
      weights[i * ksize + x] = Math.trunc(w < 0 ? -0.5 + w * ONE : 0.5 + w * ONE);
    }
    first[i] = lo;
    count[i] = n;
  }
  return { ksize, first, count, weights };
}

/** `ss >> 22` clipped to a byte, as Pillow's `clip8` lookup does. */
function clip8(ss: number): number {
  const v = ss >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Rows `rowFirst .. rowFirst + rows` of `src` resampled along x into a `outWidth`-wide image. */
function horizontalPass(src: Uint8Array, width: number, channels: number, rowFirst: number, rows: number, c: AxisCoefficients, outWidth: number): Uint8Array {
  if (channels === 3) return horizontalPassRgb(src, width, rowFirst, rows, c, outWidth);
  const out = new Uint8Array(outWidth * rows * channels);
  const { ksize, first, count, weights } = c;
  const acc = new Float64Array(channels);
  for (let y = 0; y < rows; y++) {
    const srcRow = (y + rowFirst) * width * channels;
    const outRow = y * outWidth * channels;
    for (let xx = 0; xx < outWidth; xx++) {
      acc.fill(HALF);
      const k0 = xx * ksize;
      let p = srcRow + first[xx]! * channels;
      for (let x = 0, n = count[xx]!; x < n; x++, p += channels) {
        const w = weights[k0 + x]!;
        for (let ch = 0; ch < channels; ch++) acc[ch]! += src[p + ch]! * w;
      }
      const o = outRow + xx * channels;
      for (let ch = 0; ch < channels; ch++) out[o + ch] = clip8(acc[ch]!);
    }
  }
  return out;
}

/** `horizontalPass` for RGB with the three sums in locals (about twice as fast as the general loop). */
function horizontalPassRgb(src: Uint8Array, width: number, rowFirst: number, rows: number, c: AxisCoefficients, outWidth: number): Uint8Array {
  const out = new Uint8Array(outWidth * rows * 3);
  const { ksize, first, count, weights } = c;
  for (let y = 0; y < rows; y++) {
    const srcRow = (y + rowFirst) * width * 3;
    let o = y * outWidth * 3;
    for (let xx = 0; xx < outWidth; xx++, o += 3) {
      let r = HALF, g = HALF, b = HALF;
      const k0 = xx * ksize;
      let p = srcRow + first[xx]! * 3;
      for (let x = 0, n = count[xx]!; x < n; x++, p += 3) {
        const w = weights[k0 + x]!;
        r += src[p]! * w;
        g += src[p + 1]! * w;
        b += src[p + 2]! * w;
      }
      out[o] = clip8(r);
      out[o + 1] = clip8(g);
      out[o + 2] = clip8(b);
    }
  }
  return out;
}

/** `src` (`width` x any rows) resampled along y; window starts are shifted by `rowShift`. */
function verticalPass(src: Uint8Array, width: number, channels: number, c: AxisCoefficients, rowShift: number, outHeight: number): Uint8Array {
  const stride = width * channels;
  const out = new Uint8Array(stride * outHeight);
  const { ksize, first, count, weights } = c;
  // One accumulator per value of the output row: the inner loop then walks source rows linearly.
  const acc = new Float64Array(stride);
  for (let yy = 0; yy < outHeight; yy++) {
    acc.fill(HALF);
    const k0 = yy * ksize;
    const y0 = first[yy]! - rowShift;
    for (let y = 0, n = count[yy]!; y < n; y++) {
      const w = weights[k0 + y]!;
      const srcRow = (y0 + y) * stride;
      for (let i = 0; i < stride; i++) acc[i]! += src[srcRow + i]! * w;
    }
    const o = yy * stride;
    for (let i = 0; i < stride; i++) out[o + i] = clip8(acc[i]!);
  }
  return out;
}

/**
 * Resizes an interleaved 8-bit image (`channels` values per pixel, row-major) to
 * `outWidth` x `outHeight` exactly as Pillow's `Image.resize(size, Image.BICUBIC)` does for an
 * 8-bit mode (RGB, L, ...). Returns a new array.
 */
export function resizeBicubic(src: Uint8Array, width: number, height: number, outWidth: number, outHeight: number, channels = 3): Uint8Array {
  checkSize(src, width, height, channels, outWidth, outHeight);
  const needHorizontal = outWidth !== width;
  const needVertical = outHeight !== height;
  if (!needHorizontal && !needVertical) return src.slice();
  const vertical = axisCoefficients(height, outHeight);
  // The horizontal pass only computes the source rows the vertical pass will read.
  const rowFirst = vertical.first[0]!;
  const rowLast = vertical.first[outHeight - 1]! + vertical.count[outHeight - 1]!;
  let image = src;
  let rowShift = 0;
  if (needHorizontal) {
    const rows = needVertical ? rowLast - rowFirst : height;
    const from = needVertical ? rowFirst : 0;
    image = horizontalPass(src, width, channels, from, rows, axisCoefficients(width, outWidth), outWidth);
    rowShift = from;
    if (!needVertical) return image;
  }
  return verticalPass(image, outWidth, channels, vertical, rowShift, outHeight);
}

function checkSize(src: Uint8Array, width: number, height: number, channels: number, outWidth: number, outHeight: number): void {
  for (const [name, v] of [['width', width], ['height', height], ['outWidth', outWidth], ['outHeight', outHeight], ['channels', channels]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`resizeBicubic: ${name} must be a positive integer, got ${v}`);
  }
  if (src.length !== width * height * channels) {
    throw new RangeError(`resizeBicubic: ${src.length} values for a ${width}x${height}x${channels} image`);
  }
}
