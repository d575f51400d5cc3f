/**
 * Block-wise weight-only quantisation for ONNX Runtime's MatMulNBits (com.microsoft), round to
 * nearest. A weight W [N, K] (torch Linear layout: out, in) is cut into blocks of `blockSize`
 * along K (the last block zero-padded); each block gets one fp32 scale and, asymmetric, one
 * zero point:
 *
 * - symmetric:  scale = max|w| / (2^(bits-1) - 1), q = clamp(round(w / scale) + 2^(bits-1)), zero point implied;
 * - asymmetric: range [min(w, 0), max(w, 0)], scale = range / (2^bits - 1), zp = round(-min / scale),
 *   q = clamp(round(w / scale) + zp).
 *
 * Layout (MatMulNBits): B uint8 [N, blocks, blockSize * bits / 8], values in K order, 4-bit pairs
 * low nibble first; scales float [N * blocks]; zero points uint8 [N * ceil(blocks * bits / 8)]
 * (4-bit: two per byte, low nibble first, each row padded to whole bytes).
 */

export interface QuantScheme {
  bits: 4 | 8;
  blockSize: number;
  symmetric: boolean;
}

export const QUANT_BLOCK_SIZES = [16, 32, 64, 128, 256] as const;

/** Shapes of the three MatMulNBits tensors for a [N, K] weight. */
export function quantShapes(n: number, k: number, s: QuantScheme): { blocks: number; b: number[]; scales: number[]; zeroPoints: number[] | undefined } {
  const blocks = Math.ceil(k / s.blockSize);
  const zpPerRow = Math.ceil((blocks * s.bits) / 8);
  return { blocks, b: [n, blocks, (s.blockSize * s.bits) / 8], scales: [n * blocks], zeroPoints: s.symmetric ? undefined : [n * zpPerRow] };
}

/**
 * Quantises one row of K values; writes its packed bytes, scales and (asymmetric) zero points.
 * Written for the build's hot loop (bench/bind --quant): one pass per block that rounds, clamps and
 * packs (no block buffer), the scheme read once.
 */
export function quantizeRow(row: Float32Array, s: QuantScheme, packed: Uint8Array, scales: Float32Array, zeroPoints: Uint8Array | undefined): void {
  const k = row.length;
  const { bits, blockSize, symmetric } = s;
  const blocks = Math.ceil(k / blockSize);
  const maxQ = (1 << bits) - 1;
  const half = 1 << (bits - 1);
  const bytesPerBlock = (blockSize * bits) >> 3;
  for (let b = 0; b < blocks; b++) {
    const start = b * blockSize;
    const end = Math.min(start + blockSize, k);
    let zp: number;
    let scale: number;
    if (symmetric) {
      let amax = 0;
      for (let i = start; i < end; i++) {
        const a = Math.abs(row[i]!);
        if (a > amax) amax = a;
      }
      zp = half;
      scale = amax / (half - 1);
    } else {
      let lo = 0;
      let hi = 0;
      for (let i = start; i < end; i++) {
        const v = row[i]!;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      scale = (hi - lo) / maxQ;
      zp = scale === 0 ? 0 : Math.min(maxQ, Math.max(0, Math.round(-lo / scale)));
    }
    const inv = scale === 0 ? 0 : 1 / scale;
    scales[b] = scale;
    // The zero-padded tail of the last block quantises to the zero point (dequantises to 0).
    const out = b * bytesPerBlock;
    if (bits === 8) {
      for (let i = start; i < start + blockSize; i++) {
        const q = i < end ? Math.round(row[i]! * inv) + zp : zp;
        packed[out + i - start] = q < 0 ? 0 : q > maxQ ? maxQ : q;
      }
    } else {
      for (let i = start, o = out; i < start + blockSize; i += 2, o++) {
        let q0 = i < end ? Math.round(row[i]! * inv) + zp : zp;
        let q1 = i + 1 < end ? Math.round(row[i + 1]! * inv) + zp : zp;
        q0 = q0 < 0 ? 0 : q0 > maxQ ? maxQ : q0;
        q1 = q1 < 0 ? 0 : q1 > maxQ ? maxQ : q1;
        packed[o] = q0 | (q1 << 4);
      }
    }
    if (zeroPoints) {
      if (bits === 8) zeroPoints[b] = zp;
      else zeroPoints[b >> 1] = b & 1 ? zeroPoints[b >> 1]! | (zp << 4) : zp;
    }
  }
}

/** What dequantising gives back (tests, error bounds): W' [N, K]. */
export function dequantize(packed: Uint8Array, scales: Float32Array, zeroPoints: Uint8Array | undefined, n: number, k: number, s: QuantScheme): Float32Array {
  const { blocks } = quantShapes(n, k, s);
  const rowBytes = (blocks * s.blockSize * s.bits) / 8;
  const zpRow = Math.ceil((blocks * s.bits) / 8);
  const out = new Float32Array(n * k);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < k; j++) {
      const b = Math.floor(j / s.blockSize);
      const byte = packed[r * rowBytes + (s.bits === 8 ? j : j >> 1)]!;
      const q = s.bits === 8 ? byte : j & 1 ? byte >> 4 : byte & 15;
      let zp = 1 << (s.bits - 1);
      if (zeroPoints) {
        const z = zeroPoints[r * zpRow + (s.bits === 8 ? b : b >> 1)]!;
        zp = s.bits === 8 ? z : b & 1 ? z >> 4 : z & 15;
      }
      out[r * k + j] = (q - zp) * scales[r * blocks + b]!;
    }
  }
  return out;
}

/**
 * Streams a [N, K] fp32 weight through the quantiser in whatever chunks it arrives: packed rows
 * come out as soon as they are complete; scales and zero points (1/8 of the fp32 size or less)
 * are kept until `finish`.
 */
export class RowQuantizer {
  private readonly pending: Float32Array;
  private filled = 0;
  private row = 0;
  readonly scales: Float32Array;
  readonly zeroPoints: Uint8Array | undefined;
  private readonly rowBytes: number;
  private readonly zpRow: number;
  private readonly blocks: number;

  constructor(
    readonly n: number,
    readonly k: number,
    readonly scheme: QuantScheme,
  ) {
    const shapes = quantShapes(n, k, scheme);
    this.blocks = shapes.blocks;
    this.rowBytes = shapes.b[1]! * shapes.b[2]!;
    this.zpRow = Math.ceil((shapes.blocks * scheme.bits) / 8);
    this.pending = new Float32Array(k);
    this.scales = new Float32Array(shapes.scales[0]!);
    this.zeroPoints = shapes.zeroPoints ? new Uint8Array(shapes.zeroPoints[0]!) : undefined;
  }

  /** Little-endian fp32 bytes in (any length, multiple of 4); packed bytes of the rows completed. */
  push(f32Bytes: Uint8Array): Uint8Array {
    // Read in place where aligned (every value is consumed before push returns), else copied.
    const aligned = f32Bytes.byteOffset % 4 === 0 ? f32Bytes : f32Bytes.slice();
    const values = new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4);
    const rowsDone = Math.floor((this.filled + values.length) / this.k);
    const out = new Uint8Array(rowsDone * this.rowBytes);
    let at = 0;
    let produced = 0;
    const quantize = (row: Float32Array) => {
      const r = this.row++;
      quantizeRow(
        row,
        this.scheme,
        out.subarray(produced * this.rowBytes, (produced + 1) * this.rowBytes),
        this.scales.subarray(r * this.blocks, (r + 1) * this.blocks),
        this.zeroPoints?.subarray(r * this.zpRow, (r + 1) * this.zpRow),
      );
      produced++;
    };
    while (at < values.length) {
      // Whole rows straight from the chunk; a row split across chunks is gathered in `pending`.
      if (this.filled === 0 && values.length - at >= this.k) {
        quantize(values.subarray(at, at + this.k));
        at += this.k;
        continue;
      }
      const take = Math.min(this.k - this.filled, values.length - at);
      this.pending.set(values.subarray(at, at + take), this.filled);
      this.filled += take;
      at += take;
      if (this.filled === this.k) {
        quantize(this.pending);
        this.filled = 0;
      }
    }
    return out;
  }

  /** The scales and zero points as bytes, once every row has been pushed. */
  finish(): { scales: Uint8Array; zeroPoints: Uint8Array | undefined } {
    if (this.row !== this.n || this.filled !== 0) throw new Error(`quantiser got ${this.row} of ${this.n} rows`);
    return { scales: new Uint8Array(this.scales.buffer), zeroPoints: this.zeroPoints };
  }
}
