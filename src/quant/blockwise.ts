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

/** Quantises one row of K values; writes its packed bytes, scales and (asymmetric) zero points. */
export function quantizeRow(row: Float32Array, s: QuantScheme, packed: Uint8Array, scales: Float32Array, zeroPoints: Uint8Array | undefined): void {
  const k = row.length;
  const blocks = Math.ceil(k / s.blockSize);
  const maxQ = (1 << s.bits) - 1;
  const q = new Uint8Array(s.blockSize);
  for (let b = 0; b < blocks; b++) {
    const start = b * s.blockSize;
    const end = Math.min(start + s.blockSize, k);
    let zp: number;
    let scale: number;
    if (s.symmetric) {
      let amax = 0;
      for (let i = start; i < end; i++) amax = Math.max(amax, Math.abs(row[i]!));
      zp = 1 << (s.bits - 1);
      scale = amax / (zp - 1);
    } else {
      let lo = 0;
      let hi = 0;
      for (let i = start; i < end; i++) {
        lo = Math.min(lo, row[i]!);
        hi = Math.max(hi, row[i]!);
      }
      scale = (hi - lo) / maxQ;
      zp = scale === 0 ? 0 : Math.min(maxQ, Math.max(0, Math.round(-lo / scale)));
    }
    const inv = scale === 0 ? 0 : 1 / scale;
    q.fill(zp); // the zero-padded tail dequantises to 0
    for (let i = start; i < end; i++) q[i - start] = Math.min(maxQ, Math.max(0, Math.round(row[i]! * inv) + zp));
    scales[b] = scale;
    const out = b * ((s.blockSize * s.bits) / 8);
    if (s.bits === 8) packed.set(q, out);
    else for (let i = 0; i < s.blockSize; i += 2) packed[out + i / 2] = q[i]! | (q[i + 1]! << 4);
    if (zeroPoints) {
      if (s.bits === 8) zeroPoints[b] = zp;
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
    const values = new Float32Array(f32Bytes.buffer.slice(f32Bytes.byteOffset, f32Bytes.byteOffset + f32Bytes.byteLength));
    const rowsDone = Math.floor((this.filled + values.length) / this.k);
    const out = new Uint8Array(rowsDone * this.rowBytes);
    let at = 0;
    let produced = 0;
    while (at < values.length) {
      const take = Math.min(this.k - this.filled, values.length - at);
      this.pending.set(values.subarray(at, at + take), this.filled);
      this.filled += take;
      at += take;
      if (this.filled === this.k) {
        const r = this.row++;
        quantizeRow(
          this.pending,
          this.scheme,
          out.subarray(produced * this.rowBytes, (produced + 1) * this.rowBytes),
          this.scales.subarray(r * this.blocks, (r + 1) * this.blocks),
          this.zeroPoints?.subarray(r * this.zpRow, (r + 1) * this.zpRow),
        );
        produced++;
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
