/**
 * Element conversions between the float formats checkpoints are stored in (F32, F16, BF16), plus
 * the table of safetensors dtypes. Loops work on typed-array views over whole chunks and use bit
 * arithmetic only, so converting a multi-GB tensor allocates nothing per element.
 *
 * `convertChunk` has two engines that give the same bits: WebAssembly SIMD kernels
 * (codegen/wasm/convert.wat; BF16 -> F16 about 10x faster) where the runtime supports them, and
 * plain loops (lookup tables for the half formats, the scalar functions below for float32), which
 * are also the reference the kernels are tested against. `ConvertArena` converts in place, in
 * buffers allocated in the kernels' memory.
 *
 * Byte order: safetensors is little-endian and typed arrays use the host's order; every platform
 * Node supports in practice is little-endian, and `assertLittleEndian` guards the rest.
 */
import { endianness } from 'node:os';
import type { DType } from '../ir/dtype.ts';
import { CONVERT_WASM_BASE64 } from './convert-wasm.generated.ts';

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
 * How `convertChunk` converts: 'wasm' with the SIMD kernels, 'js' with plain loops. Both give the
 * same bits for every input.
 */
export type ConvertEngine = 'wasm' | 'js';

/** 'wasm' where WebAssembly SIMD is available, else 'js': what `convertChunk` uses by default. */
export function defaultConvertEngine(): ConvertEngine {
  return simdKernels() ? 'wasm' : 'js';
}

/**
 * Converts a chunk of raw little-endian elements between F32, F16 and BF16. The chunk must hold
 * whole elements. Identity returns `src` itself; otherwise a new buffer is returned, or `dst`'s
 * bytes when a large enough `dst` is given (to reuse one buffer across chunks). `engine` picks the
 * implementation (tests compare them); 'wasm' throws where WebAssembly SIMD is unavailable.
 */
export function convertChunk(
  src: Uint8Array,
  srcDtype: FloatStDType,
  dstDtype: FloatStDType,
  dst?: Uint8Array,
  engine: ConvertEngine = defaultConvertEngine(),
): Uint8Array {
  if (srcDtype === dstDtype) return src;
  assertLittleEndian();
  const srcSize = stDTypeSize(srcDtype);
  if (src.byteLength % srcSize !== 0) {
    throw new RangeError(`chunk of ${src.byteLength} bytes is not a whole number of ${srcDtype} elements`);
  }
  const count = src.byteLength / srcSize;
  const dstSize = stDTypeSize(dstDtype);
  const outBytes = count * dstSize;
  const out = dst && dst.byteLength >= outBytes && dst.byteOffset % 4 === 0 ? dst.subarray(0, outBytes) : new Uint8Array(outBytes);
  if (engine === 'js') {
    convertWithLoops(src, srcDtype, dstDtype, out);
    return out;
  }
  const kernels = simdKernels();
  if (!kernels) throw new Error('WebAssembly SIMD is not available in this runtime');
  // The kernels take multiples of KERNEL_STEP elements; plain loops convert the few left over.
  const whole = count - (count % KERNEL_STEP);
  kernels.convert(kernelName(srcDtype, dstDtype), src.subarray(0, whole * srcSize), srcSize, out, dstSize, whole);
  if (whole < count) convertWithLoops(src.subarray(whole * srcSize), srcDtype, dstDtype, out.subarray(whole * dstSize));
  return out;
}

/** The plain-loop engine: converts `src` into `out`, which holds exactly the converted bytes and is 4-byte aligned. */
function convertWithLoops(src: Uint8Array, srcDtype: FloatStDType, dstDtype: FloatStDType, out: Uint8Array): void {
  const srcSize = stDTypeSize(srcDtype);
  const count = src.byteLength / srcSize;
  const input = alignedCopyIfNeeded(src, srcSize);
  if (srcDtype === 'F32') {
    const f32 = new Float32Array(input.buffer, input.byteOffset, count);
    const u16 = new Uint16Array(out.buffer, out.byteOffset, count);
    if (dstDtype === 'F16') f32ToF16(f32, u16);
    else f32ToBf16(f32, u16);
    return;
  }
  const u16 = new Uint16Array(input.buffer, input.byteOffset, count);
  if (dstDtype === 'F32') {
    const f32 = new Float32Array(out.buffer, out.byteOffset, count);
    if (srcDtype === 'F16') f16ToF32(u16, f32);
    else bf16ToF32(u16, f32);
    return;
  }
  mapHalves(u16, new Uint16Array(out.buffer, out.byteOffset, count), halfToHalfTable(srcDtype));
}

// ---------------------------------------------------------------------------------------------
// The WebAssembly SIMD engine

/** Element counts the kernels take must be multiples of this (they convert 16 per iteration). */
const KERNEL_STEP = 16;

const WASM_PAGE = 64 * 1024;

/**
 * Elements per kernel call when `convertChunk` copies a piece into the kernels' memory, converts
 * it there and copies it out (other buffers cannot be addressed by wasm code). At most 256 KiB
 * each way, so a piece stays in the core's L2 cache from copy-in to copy-out.
 */
const PIECE_ELEMENTS = 64 * 1024;
const IN_AT = 0;
const OUT_AT = PIECE_ELEMENTS * 4;

/** The most an arena's memory may grow to: 1 GiB (the module allows 4). */
const ARENA_MAX_PAGES = 16 * 1024;

type KernelName = 'f32_to_f16' | 'f32_to_bf16' | 'f16_to_f32' | 'bf16_to_f32' | 'f16_to_bf16' | 'bf16_to_f16';
type Kernel = (src: number, dst: number, n: number) => void;

/** The kernel converting `src` to `dst` (two different dtypes): its export in convert.wat. */
function kernelName(src: FloatStDType, dst: FloatStDType): KernelName {
  return `${src.toLowerCase()}_to_${dst.toLowerCase()}` as KernelName;
}

let compiled: WebAssembly.Module | null | undefined;

/**
 * The kernels' module, compiled on first use (synchronously: it is 2 KB); null where the runtime
 * lacks WebAssembly, its SIMD or shared memory (e.g. --jitless), and the plain loops do the work.
 */
function kernelModule(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  compiled = null;
  try {
    const bytes = Buffer.from(CONVERT_WASM_BASE64, 'base64');
    if (typeof WebAssembly === 'object' && WebAssembly.validate(bytes)) {
      const module = new WebAssembly.Module(bytes);
      new KernelInstance(module, 1, 1); // shared memory works too
      compiled = module;
    }
  } catch {
    compiled = null;
  }
  return compiled;
}

/** One instance of the kernels, over a shared memory of its own. */
class KernelInstance {
  readonly memory: WebAssembly.Memory;
  private readonly kernels: Record<KernelName, Kernel>;

  constructor(module: WebAssembly.Module, pages: number, maximumPages: number) {
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: maximumPages, shared: true });
    const { exports } = new WebAssembly.Instance(module, { env: { memory: this.memory } });
    this.kernels = exports as unknown as Record<KernelName, Kernel>;
  }

  /** Converts `n` elements (a multiple of KERNEL_STEP) from byte address `src` to byte address `dst`. */
  run(name: KernelName, src: number, dst: number, n: number): void {
    this.kernels[name](src, dst, n);
  }
}

/** The instance `convertChunk` copies pieces through: room for one piece in and one out. */
class PieceKernels {
  private readonly instance: KernelInstance;
  private readonly heap: Uint8Array;

  constructor(module: WebAssembly.Module) {
    const pages = (OUT_AT + PIECE_ELEMENTS * 4) / WASM_PAGE;
    this.instance = new KernelInstance(module, pages, pages);
    this.heap = new Uint8Array(this.instance.memory.buffer);
  }

  /** Converts `n` elements (a multiple of KERNEL_STEP) from `src` into `out`, piece by piece. */
  convert(name: KernelName, src: Uint8Array, srcSize: number, out: Uint8Array, dstSize: number, n: number): void {
    const heap = this.heap;
    for (let done = 0; done < n; done += PIECE_ELEMENTS) {
      const m = Math.min(PIECE_ELEMENTS, n - done);
      heap.set(src.subarray(done * srcSize, (done + m) * srcSize), IN_AT);
      this.instance.run(name, IN_AT, OUT_AT, m);
      out.set(heap.subarray(OUT_AT, OUT_AT + m * dstSize), done * dstSize);
    }
  }
}

let pieces: PieceKernels | null | undefined;

/** The kernels `convertChunk` uses, made on first use; null where WebAssembly SIMD is unavailable. */
function simdKernels(): PieceKernels | null {
  if (pieces !== undefined) return pieces;
  const module = kernelModule();
  return (pieces = module ? new PieceKernels(module) : null);
}

/**
 * Buffers in the SIMD kernels' own memory, which `convert` converts between in place: without the
 * copy in and out that `convertChunk` makes for other buffers (about as much work again as the
 * conversion itself). The memory is shared, so like a SharedArrayBuffer a buffer can be handed to
 * a worker thread without copying. It grows as buffers are allocated; nothing is freed one by one,
 * but `reset` makes all of it available again. Keep arenas for reuse rather than dropping many: in
 * Node 20, garbage collection left a thousand dropped arenas' memory resident (2 GB in a test), as
 * it does not count wasm memory as pressure. Where WebAssembly SIMD is unavailable, or with engine 'js', buffers
 * are SharedArrayBuffers and `convert` is `convertChunk`.
 */
export class ConvertArena {
  private readonly instance: KernelInstance | undefined;
  /** Every `memory.buffer` object seen: growing a shared memory gives a new one, the old ones stay valid. */
  private readonly views = new Set<ArrayBufferLike>();
  private top = 0;

  constructor(readonly engine: ConvertEngine = defaultConvertEngine()) {
    if (engine === 'js') return;
    const module = kernelModule();
    if (!module) throw new Error('WebAssembly SIMD is not available in this runtime');
    this.instance = new KernelInstance(module, 1, ARENA_MAX_PAGES);
  }

  /**
   * A buffer of `bytes` bytes, 64-byte aligned, shareable with worker threads: zeroed when new,
   * holding old contents when the arena was `reset`.
   */
  alloc(bytes: number): Uint8Array {
    const memory = this.instance?.memory;
    if (!memory) return new Uint8Array(new SharedArrayBuffer(bytes));
    const at = Math.ceil(this.top / 64) * 64;
    const short = at + bytes - memory.buffer.byteLength;
    if (short > 0) {
      const size = memory.buffer.byteLength / WASM_PAGE;
      const pages = Math.max(Math.ceil(short / WASM_PAGE), Math.ceil(size / 2)); // grow by half at least
      try {
        memory.grow(Math.min(pages, ARENA_MAX_PAGES - size));
      } catch {
        return new Uint8Array(new SharedArrayBuffer(bytes)); // no room left: an ordinary buffer
      }
      if (at + bytes > memory.buffer.byteLength) return new Uint8Array(new SharedArrayBuffer(bytes));
    }
    const buffer = memory.buffer;
    this.views.add(buffer);
    this.top = at + bytes;
    return new Uint8Array(buffer, at, bytes);
  }

  /** Makes all the memory available again: buffers allocated so far must not be used any more. */
  reset(): void {
    this.top = 0;
  }

  /**
   * `convertChunk(src, srcDtype, dstDtype, dst)`, with the same result, converted in place when
   * both `src` and `dst` were allocated here (and do not overlap) and `dst` is large enough.
   */
  convert(src: Uint8Array, srcDtype: FloatStDType, dstDtype: FloatStDType, dst: Uint8Array): Uint8Array {
    const instance = this.instance;
    if (!instance || srcDtype === dstDtype || !this.views.has(src.buffer) || !this.views.has(dst.buffer) || dst.byteOffset % 4 !== 0) {
      return convertChunk(src, srcDtype, dstDtype, dst, this.engine);
    }
    assertLittleEndian(); // the kernels read and write little-endian, like the files; the remainder loops use host order
    const srcSize = stDTypeSize(srcDtype);
    const dstSize = stDTypeSize(dstDtype);
    const count = src.byteLength / srcSize;
    if (!Number.isInteger(count) || dst.byteLength < count * dstSize) return convertChunk(src, srcDtype, dstDtype, dst, this.engine);
    const out = dst.subarray(0, count * dstSize);
    const whole = count - (count % KERNEL_STEP);
    instance.run(kernelName(srcDtype, dstDtype), src.byteOffset, out.byteOffset, whole);
    if (whole < count) convertWithLoops(src.subarray(whole * srcSize), srcDtype, dstDtype, out.subarray(whole * dstSize));
    return out;
  }
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
