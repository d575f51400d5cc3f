/**
 * Element conversions between the float formats checkpoints are stored in (F32, F16, BF16), plus
 * the table of safetensors dtypes. Loops work on typed-array views over whole chunks and use bit
 * arithmetic only, so converting a multi-GB tensor allocates nothing per element.
 *
 * Byte order: safetensors is little-endian and typed arrays use the host's order; every platform
 * Node supports in practice is little-endian, and `assertLittleEndian` guards the rest.
 */
import { endianness } from 'node:os';
import type { DType } from '../ir/dtype.ts';

/** Safetensors dtype names with element sizes and the IR dtype each maps to (if any). */
export const ST_DTYPES = {
  F64: { bytes: 8, ir: 'float64' },
  F32: { bytes: 4, ir: 'float32' },
  F16: { bytes: 2, ir: 'float16' },
  BF16: { bytes: 2, ir: 'bfloat16' },
  I64: { bytes: 8, ir: 'int64' },
  I32: { bytes: 4, ir: 'int32' },
  I16: { bytes: 2, ir: 'int16' },
  I8: { bytes: 1, ir: 'int8' },
  U8: { bytes: 1, ir: 'uint8' },
  BOOL: { bytes: 1, ir: 'bool' },
  U16: { bytes: 2, ir: 'uint16' },
  U32: { bytes: 4, ir: 'uint32' },
  U64: { bytes: 8, ir: 'uint64' },
  // Known so headers parse, but nothing here converts them.
  F8_E4M3: { bytes: 1, ir: undefined },
  F8_E5M2: { bytes: 1, ir: undefined },
} as const satisfies Record<string, { bytes: number; ir: DType | undefined }>;

export type StDType = keyof typeof ST_DTYPES;

/** The float dtypes `convertChunk` and `readAsFloat32` handle. */
export type FloatStDType = 'F32' | 'F16' | 'BF16';

export function isStDType(name: string): name is StDType {
  return Object.hasOwn(ST_DTYPES, name);
}

export function isFloatStDType(dtype: StDType): dtype is FloatStDType {
  return dtype === 'F32' || dtype === 'F16' || dtype === 'BF16';
}

export function stDTypeSize(dtype: StDType): number {
  return ST_DTYPES[dtype].bytes;
}

export function assertLittleEndian(): void {
  if (endianness() !== 'LE') throw new Error('vlmc reads little-endian tensor data and needs a little-endian host');
}

// Scratch cell for reinterpreting one float's bits without allocating.
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Bits of `x` rounded to float32. */
export function f32Bits(x: number): number {
  scratchF32[0] = x;
  return scratchU32[0]!;
}

/** The float32 whose bits are `bits`. */
export function f32FromBits(bits: number): number {
  scratchU32[0] = bits >>> 0;
  return scratchF32[0]!;
}

// ---------------------------------------------------------------------------------------------
// Scalar bit conversions

/** Half-precision bits to the exactly equal float32 bits (every f16 value is representable). */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0; // inf / nan, payload kept
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  // Subnormal half: normalise so the leading 1 becomes the implicit bit.
  let e = 113;
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

/** Float32 bits to half bits, rounding to nearest even; overflow gives inf, NaN stays NaN. */
export function f32BitsToF16Bits(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  const mant = f & 0x7fffff;
  if (exp === 0xff) return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13); // quiet NaN
  if (exp >= 143) return sign | 0x7c00; // >= 2^16 overflows even before rounding
  if (exp >= 113) return sign | roundShift(((exp - 112) << 10) | (mant >>> 13), mant & 0x1fff, 13);
  if (exp < 102) return sign; // below 2^-25: rounds to zero
  // Result is a half subnormal: value = sig * 2^(exp-150), in units of 2^-24 that is sig >> (126-exp).
  const sig = mant | 0x800000;
  const shift = 126 - exp;
  return sign | roundShift(sig >>> shift, sig & ((1 << shift) - 1), shift);
}

/** Rounds `kept` up when the `shift` dropped bits in `dropped` exceed half, or tie and `kept` is odd. */
function roundShift(kept: number, dropped: number, shift: number): number {
  const half = 1 << (shift - 1);
  return dropped > half || (dropped === half && (kept & 1) === 1) ? kept + 1 : kept;
}

/** Float32 bits to bfloat16 bits, rounding to nearest even; NaN stays NaN (made quiet). */
export function f32BitsToBf16Bits(f: number): number {
  if ((f & 0x7fffffff) >>> 0 > 0x7f800000) return ((f >>> 16) | 0x40) & 0xffff;
  // Adding 0x7fff plus the lowest kept bit rounds ties to even; a carry may reach inf, as it should.
  return ((f >>> 0) + 0x7fff + ((f >>> 16) & 1)) >>> 16;
}

// ---------------------------------------------------------------------------------------------
// Array conversions. `dst` may be passed to reuse a buffer; it must hold at least src.length.

let f16Table: Uint32Array | undefined;

/**
 * Float32 bits of all 65536 half values, built once: a lookup beats bit twiddling per element.
 * Bits rather than floats, because moving a NaN through a Float32Array may canonicalise it.
 */
function f16ToF32BitsTable(): Uint32Array {
  if (f16Table) return f16Table;
  const table = new Uint32Array(0x10000);
  for (let h = 0; h < 0x10000; h++) table[h] = f16BitsToF32Bits(h);
  return (f16Table = table);
}

export function f16ToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  checkCapacity(src.length, dst.length);
  const table = f16ToF32BitsTable();
  const out = new Uint32Array(dst.buffer, dst.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) out[i] = table[src[i]!]!;
  return dst;
}

export function bf16ToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  checkCapacity(src.length, dst.length);
  const out = new Uint32Array(dst.buffer, dst.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i]! << 16;
  return dst;
}

export function f32ToF16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  checkCapacity(src.length, dst.length);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) dst[i] = f32BitsToF16Bits(bits[i]!);
  return dst;
}

export function f32ToBf16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  checkCapacity(src.length, dst.length);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) dst[i] = f32BitsToBf16Bits(bits[i]!);
  return dst;
}

function checkCapacity(needed: number, available: number): void {
  if (available < needed) throw new RangeError(`destination holds ${available} elements, ${needed} needed`);
}

// ---------------------------------------------------------------------------------------------
// Byte-chunk conversion

/**
 * Converts a chunk of raw little-endian elements between F32, F16 and BF16. The chunk must hold
 * whole elements. Identity returns `src` itself; otherwise a new buffer is returned, or `dst`'s
 * bytes when a large enough `dst` is given (to reuse one buffer across chunks).
 */
export function convertChunk(src: Uint8Array, srcDtype: FloatStDType, dstDtype: FloatStDType, dst?: Uint8Array): Uint8Array {
  if (srcDtype === dstDtype) return src;
  assertLittleEndian();
  const srcSize = stDTypeSize(srcDtype);
  if (src.byteLength % srcSize !== 0) {
    throw new RangeError(`chunk of ${src.byteLength} bytes is not a whole number of ${srcDtype} elements`);
  }
  const count = src.byteLength / srcSize;
  const outBytes = count * stDTypeSize(dstDtype);
  const out = dst && dst.byteLength >= outBytes && dst.byteOffset % 4 === 0 ? dst.subarray(0, outBytes) : new Uint8Array(outBytes);
  const input = alignedCopyIfNeeded(src, srcSize);

  if (srcDtype === 'F32') {
    const f32 = new Float32Array(input.buffer, input.byteOffset, count);
    const u16 = new Uint16Array(out.buffer, out.byteOffset, count);
    if (dstDtype === 'F16') f32ToF16(f32, u16);
    else f32ToBf16(f32, u16);
    return out;
  }
  const u16 = new Uint16Array(input.buffer, input.byteOffset, count);
  if (dstDtype === 'F32') {
    const f32 = new Float32Array(out.buffer, out.byteOffset, count);
    if (srcDtype === 'F16') f16ToF32(u16, f32);
    else bf16ToF32(u16, f32);
    return out;
  }
  mapHalves(u16, new Uint16Array(out.buffer, out.byteOffset, count), halfToHalfTable(srcDtype));
  return out;
}

let f16ToBf16Table: Uint16Array | undefined;
let bf16ToF16Table: Uint16Array | undefined;

/**
 * F16 <-> BF16 results for all 65536 inputs, built once. Each entry goes through float32 bits (the
 * widening is exact, so only one rounding happens), so a lookup gives exactly the scalar path's bits.
 */
function halfToHalfTable(src: 'F16' | 'BF16'): Uint16Array {
  if (src === 'F16') return (f16ToBf16Table ??= tabulate((h) => f32BitsToBf16Bits(f16BitsToF32Bits(h))));
  return (bf16ToF16Table ??= tabulate((h) => f32BitsToF16Bits((h << 16) >>> 0)));
}

function tabulate(f: (h: number) => number): Uint16Array {
  const table = new Uint16Array(0x10000);
  for (let h = 0; h < 0x10000; h++) table[h] = f(h);
  return table;
}

/** dst[i] = table[src[i]], two elements per 32-bit load and store where both are 4-byte aligned. */
function mapHalves(src: Uint16Array, dst: Uint16Array, table: Uint16Array): void {
  const n = src.length;
  if (src.byteOffset % 4 !== 0 || dst.byteOffset % 4 !== 0) {
    for (let i = 0; i < n; i++) dst[i] = table[src[i]!]!;
    return;
  }
  // Little-endian: element 2i is the low half of word i.
  const pairs = n >>> 1;
  const srcWords = new Int32Array(src.buffer, src.byteOffset, pairs);
  const dstWords = new Int32Array(dst.buffer, dst.byteOffset, pairs);
  for (let i = 0; i < pairs; i++) {
    const w = srcWords[i]!;
    dstWords[i] = table[w & 0xffff]! | (table[w >>> 16]! << 16);
  }
  if (n % 2 === 1) dst[n - 1] = table[src[n - 1]!]!;
}

/** Typed arrays need offsets aligned to their element size; chunks sliced from files may not be. */
function alignedCopyIfNeeded(bytes: Uint8Array, elementSize: number): Uint8Array {
  return bytes.byteOffset % elementSize === 0 ? bytes : bytes.slice();
}

/** Largest multiple of the element size not above `chunkBytes` (at least one element). */
export function alignChunkBytes(chunkBytes: number, dtype: StDType): number {
  const size = stDTypeSize(dtype);
  return Math.max(size, Math.floor(chunkBytes / size) * size);
}

/** The native typed array for each dtype; F16/BF16 are viewed as their raw 16-bit patterns. */
const VIEW_TYPES = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
  U16: Uint16Array,
  U32: Uint32Array,
  U64: BigUint64Array,
} as const;

export type ViewableStDType = keyof typeof VIEW_TYPES;
export type ElementView<D extends ViewableStDType> = InstanceType<(typeof VIEW_TYPES)[D]>;

/**
 * A typed view over raw little-endian elements (FP8 has none). Shares memory with `bytes` unless
 * `bytes` is misaligned for the element size, in which case it views a copy.
 */
export function elementView<D extends ViewableStDType>(bytes: Uint8Array, dtype: D): ElementView<D> {
  assertLittleEndian();
  const size = stDTypeSize(dtype);
  if (bytes.byteLength % size !== 0) throw new RangeError(`${bytes.byteLength} bytes is not a whole number of ${dtype} elements`);
  const aligned = alignedCopyIfNeeded(bytes, size);
  // The cast only widens for SharedArrayBuffer-backed input, which views just as well.
  return new VIEW_TYPES[dtype](aligned.buffer as ArrayBuffer, aligned.byteOffset, aligned.byteLength / size) as ElementView<D>;
}
