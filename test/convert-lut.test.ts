/**
 * `convertChunk` has two engines, the WebAssembly SIMD kernels (codegen/wasm/convert.wat) and
 * plain loops (lookup tables for F16 <-> BF16). Both must give exactly the bits of the scalar
 * path through float32 (one rounding, ties to even, NaN kept NaN and quiet, overflow to inf,
 * subnormals) for every one of the 65536 half inputs in each direction, for every float32 high
 * half with the low bits that decide rounding, whatever the alignment and length of the chunk;
 * and `ConvertArena` converting in place must give the same bytes.
 */
import { describe, it, expect } from 'vitest';
import {
  ConvertArena,
  convertChunk,
  defaultConvertEngine,
  f16BitsToF32Bits,
  f32BitsToBf16Bits,
  f32BitsToF16Bits,
  type ConvertEngine,
  type FloatStDType,
} from '../src/tensor/convert.ts';

/** The reference: widen exactly to float32 bits, then round once. */
const viaF32 = {
  F16: (h: number) => f32BitsToBf16Bits(f16BitsToF32Bits(h)),
  BF16: (h: number) => f32BitsToF16Bits((h << 16) >>> 0),
};

/** The scalar reference for every direction, on bit patterns. */
const REFERENCE: Record<string, (x: number) => number> = {
  'F16>BF16': viaF32.F16,
  'BF16>F16': viaF32.BF16,
  'F16>F32': f16BitsToF32Bits,
  'BF16>F32': (h) => (h << 16) >>> 0,
  'F32>F16': f32BitsToF16Bits,
  'F32>BF16': f32BitsToBf16Bits,
};

const ENGINES: ConvertEngine[] = ['js', 'wasm'];

const ALL = Uint16Array.from({ length: 0x10000 }, (_, h) => h);

/**
 * Float32 inputs: every high half, each with low halves around the rounding points of F16 (bit 13
 * is its lowest kept bit) and BF16 (bit 16), plus a few from a fixed pseudo-random stream. 21 per
 * high half, so each low half meets every lane of a 4-lane vector as the high half changes.
 */
const F32_LOWS = [0x0000, 0x0001, 0x0fff, 0x1000, 0x1001, 0x1fff, 0x2000, 0x3000, 0x5000, 0x7fff, 0x8000, 0x8001, 0x9000, 0xb000, 0xe000, 0xefff, 0xf000, 0xffff];
const F32_PATTERNS = (() => {
  const out = new Uint32Array(0x10000 * (F32_LOWS.length + 3));
  let s = 0x2545f491;
  let k = 0;
  for (let h = 0; h < 0x10000; h++) {
    for (const low of F32_LOWS) out[k++] = ((h << 16) | low) >>> 0;
    for (let r = 0; r < 3; r++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      out[k++] = ((h << 16) | (s & 0xffff)) >>> 0;
    }
  }
  return out;
})();

const SIZE: Record<FloatStDType, number> = { F32: 4, F16: 2, BF16: 2 };

function bytesOf(a: Uint16Array | Uint32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function halves(bytes: Uint8Array): Uint16Array {
  const copy = bytes.slice();
  return new Uint16Array(copy.buffer, 0, copy.byteLength / 2);
}

/** Elements of `bytes` as numbers: 16-bit or 32-bit patterns. */
function elements(bytes: Uint8Array, dtype: FloatStDType): Uint16Array | Uint32Array {
  const copy = bytes.slice();
  return dtype === 'F32' ? new Uint32Array(copy.buffer) : new Uint16Array(copy.buffer);
}

/** Indices where `got` differs from the reference, as hex input -> got / expected (first few). */
function mismatches(src: ArrayLike<number>, got: ArrayLike<number>, ref: (h: number) => number): string[] {
  const out: string[] = [];
  if (got.length !== src.length) return [`length ${got.length}, want ${src.length}`];
  for (let i = 0; i < src.length && out.length < 5; i++) {
    const want = ref(src[i]!);
    if (got[i] !== want) out.push(`0x${src[i]!.toString(16)} -> 0x${got[i]!.toString(16)}, want 0x${want.toString(16)}`);
  }
  return out;
}

it('uses the WebAssembly SIMD engine by default in this runtime', () => {
  expect(defaultConvertEngine()).toBe('wasm');
});

describe.each(ENGINES)('engine %s', (engine) => {
  describe.each(['F16', 'BF16'] as const)('%s -> the other half format, all 65536 inputs', (from) => {
    const to = from === 'F16' ? 'BF16' : 'F16';
    const ref = viaF32[from];

    it('matches the float32 path bit for bit', () => {
      const got = halves(convertChunk(bytesOf(ALL), from, to, undefined, engine));
      expect(got.length).toBe(0x10000);
      expect(mismatches(ALL, got, ref)).toEqual([]);
    });

    it('matches in any order: each input among neighbours of every kind', () => {
      // A multiplicative permutation of all inputs, so each SIMD iteration mixes special lanes
      // (zero, subnormal, inf, NaN, out of range) with ordinary ones.
      const shuffled = ALL.map((h) => (h * 40503) & 0xffff);
      expect(mismatches(shuffled, halves(convertChunk(bytesOf(shuffled), from, to, undefined, engine)), ref)).toEqual([]);
    });

    it('matches with each input alone among ordinary values, at each of 16 positions', () => {
      // The SIMD kernels take a fast path when all 16 elements of an iteration are ordinary (1.0
      // here): each input is tried in each lane of such an iteration, 16 elements per block.
      const one = from === 'F16' ? 0x3c00 : 0x3f80;
      const blocks = new Uint16Array(0x10000 * 16 * 16).fill(one);
      for (let h = 0; h < 0x10000; h++) for (let p = 0; p < 16; p++) blocks[(h * 16 + p) * 16 + p] = h;
      const got = halves(convertChunk(bytesOf(blocks), from, to, undefined, engine));
      expect(mismatches(blocks, got, ref)).toEqual([]);
    });

    it('matches into a reused destination and from odd-length, 2-mod-4 and odd-byte offsets', () => {
      const dst = new Uint8Array(2 * 0x10000 + 8);
      // Whole, odd length (a last element without a partner), word-misaligned start, one element.
      const slices: [number, number][] = [[0, 0x10000], [0, 0xffff], [1, 0x10000], [0xffff, 0x10000], [3, 0x10000 - 5]];
      for (const [begin, end] of slices) {
        const src = ALL.subarray(begin, end);
        const got = halves(convertChunk(bytesOf(src), from, to, dst, engine));
        expect(got.length).toBe(src.length);
        expect(mismatches(src, got, ref)).toEqual([]);
      }
      // Element-aligned but not word-aligned: the source starts 2 bytes into its buffer.
      const shifted = new Uint16Array(0x10001);
      shifted.set(ALL, 1);
      const at2 = shifted.subarray(1);
      expect(mismatches(at2, halves(convertChunk(bytesOf(at2), from, to, undefined, engine)), ref)).toEqual([]);
      // Not even element-aligned: an odd byte offset.
      const raw = new Uint8Array(2 * 0x10000 + 1);
      raw.set(bytesOf(ALL), 1);
      expect(mismatches(ALL, halves(convertChunk(raw.subarray(1), from, to, undefined, engine)), ref)).toEqual([]);
    });

    it('writes into the destination it was given', () => {
      const dst = new Uint8Array(8);
      const out = convertChunk(bytesOf(Uint16Array.of(0x3c00, 0x3f80)), from, to, dst, engine);
      expect(out.buffer).toBe(dst.buffer);
      expect(Array.from(new Uint16Array(dst.buffer, 0, 2))).toEqual([ref(0x3c00), ref(0x3f80)]);
    });
  });

  describe.each(['F16', 'BF16'] as const)('%s -> F32, all 65536 inputs', (from) => {
    const ref = REFERENCE[`${from}>F32`]!;

    it('widens exactly, NaN payloads included', () => {
      const got = elements(convertChunk(bytesOf(ALL), from, 'F32', undefined, engine), 'F32');
      expect(mismatches(ALL, got, ref)).toEqual([]);
      const odd = ALL.subarray(7, 0x10000 - 2);
      expect(mismatches(odd, elements(convertChunk(bytesOf(odd), from, 'F32', new Uint8Array(4 * 0x10000), engine), 'F32'), ref)).toEqual([]);
    });
  });

  describe.each(['F16', 'BF16'] as const)('F32 -> %s, every high half with the low halves that decide rounding', (to) => {
    const ref = REFERENCE[`F32>${to}`]!;

    it('rounds once, to nearest even, like the scalar path', () => {
      const got = elements(convertChunk(bytesOf(F32_PATTERNS), 'F32', to, undefined, engine), to);
      expect(mismatches(F32_PATTERNS, got, ref)).toEqual([]);
      const odd = F32_PATTERNS.subarray(5, 100_003);
      expect(mismatches(odd, elements(convertChunk(bytesOf(odd), 'F32', to, undefined, engine), to), ref)).toEqual([]);
    });
  });

  describe('half-to-half spot values', () => {
    const bf16ToF16 = (h: number) => halves(convertChunk(bytesOf(Uint16Array.of(h)), 'BF16', 'F16', undefined, engine))[0];
    const f16ToBf16 = (h: number) => halves(convertChunk(bytesOf(Uint16Array.of(h)), 'F16', 'BF16', undefined, engine))[0];

    it('BF16 -> F16: exact, rounded, subnormal, overflow, inf and NaN', () => {
      expect(bf16ToF16(0x3f80)).toBe(0x3c00); // 1
      expect(bf16ToF16(0xbfc0)).toBe(0xbe00); // -1.5
      expect(bf16ToF16(0x3880)).toBe(0x0400); // 2^-14, smallest normal half
      expect(bf16ToF16(0x3800)).toBe(0x0200); // 2^-15, half subnormal
      expect(bf16ToF16(0x3300)).toBe(0x0000); // 2^-25 ties to even zero
      expect(bf16ToF16(0x3380)).toBe(0x0001); // 2^-24, smallest subnormal half
      expect(bf16ToF16(0x477f)).toBe(0x7bf8); // 65280
      expect(bf16ToF16(0x4780)).toBe(0x7c00); // 65536 overflows to inf
      expect(bf16ToF16(0xff80)).toBe(0xfc00); // -inf
      expect(bf16ToF16(0x7fc1)).toBe(0x7e08); // NaN stays NaN, quiet
      expect(bf16ToF16(0x8000)).toBe(0x8000); // -0
    });

    it('F16 -> BF16: exact, rounded, subnormal, inf and NaN', () => {
      expect(f16ToBf16(0x3c00)).toBe(0x3f80); // 1
      expect(f16ToBf16(0x3555)).toBe(0x3eab); // rounds up
      expect(f16ToBf16(0x0001)).toBe(0x3380); // smallest subnormal half = 2^-24
      expect(f16ToBf16(0x7bff)).toBe(0x4780); // 65504 rounds to 65536
      expect(f16ToBf16(0x7c00)).toBe(0x7f80); // inf
      expect(f16ToBf16(0x7d00)).toBe(0x7fe0); // signalling NaN made quiet
      expect(f16ToBf16(0x8000)).toBe(0x8000); // -0
    });
  });

  describe('ConvertArena', () => {
    const DIRECTIONS: [FloatStDType, FloatStDType][] = [
      ['BF16', 'F16'],
      ['F16', 'BF16'],
      ['F32', 'F16'],
      ['F32', 'BF16'],
      ['F16', 'F32'],
      ['BF16', 'F32'],
    ];

    it.each(DIRECTIONS)('converts %s -> %s in its own memory, to the bytes of convertChunk', (from, to) => {
      const arena = new ConvertArena(engine);
      const input = from === 'F32' ? F32_PATTERNS : ALL;
      // Whole, a length that leaves a remainder for the plain loops, and a short one.
      for (const count of [input.length, input.length - 13, 5]) {
        const src = arena.alloc(count * SIZE[from]);
        src.set(bytesOf(input.subarray(0, count)));
        const dst = arena.alloc(count * SIZE[to] + 64);
        const out = arena.convert(src, from, to, dst);
        expect(out.buffer).toBe(dst.buffer);
        expect(out.byteOffset).toBe(dst.byteOffset);
        expect(out.byteLength).toBe(count * SIZE[to]);
        expect(mismatches(input.subarray(0, count), elements(out, to), REFERENCE[`${from}>${to}`]!)).toEqual([]);
      }
    });

    it('grows, keeps earlier buffers valid, and converts buffers from elsewhere too', () => {
      const arena = new ConvertArena(engine);
      const first = arena.alloc(1000);
      first.set(bytesOf(ALL.subarray(0x3f00, 0x3f00 + 500)));
      const big = arena.alloc(3 * 1024 * 1024); // past the first page: the memory grows
      expect(big.byteLength).toBe(3 * 1024 * 1024);
      expect(big.every((b) => b === 0)).toBe(true);
      expect(mismatches(ALL.subarray(0x3f00, 0x3f00 + 500), halves(first), (h) => h)).toEqual([]);
      expect(big.buffer).toBeInstanceOf(SharedArrayBuffer);
      // `first` was allocated before the growth, `big` after: still converted in place.
      const out = arena.convert(first, 'BF16', 'F16', big);
      expect(out.buffer).toBe(big.buffer);
      expect(mismatches(ALL.subarray(0x3f00, 0x3f00 + 500), halves(out), viaF32.BF16)).toEqual([]);
      // An ordinary buffer on either side: the result is still right.
      const plain = bytesOf(ALL.slice(0, 4096));
      expect(mismatches(ALL.subarray(0, 4096), halves(arena.convert(plain, 'BF16', 'F16', big)), viaF32.BF16)).toEqual([]);
      expect(mismatches(ALL.subarray(0x3f00, 0x3f00 + 500), halves(arena.convert(first, 'BF16', 'F16', new Uint8Array(1000))), viaF32.BF16)).toEqual([]);
      // Identity gives the source back.
      expect(arena.convert(first, 'F16', 'F16', big)).toBe(first);
    });

    it('reuses its memory after reset', () => {
      const arena = new ConvertArena(engine);
      const a = arena.alloc(100_000);
      arena.alloc(5000);
      arena.reset();
      const b = arena.alloc(100_000);
      if (engine === 'wasm') {
        expect(b.buffer).toBe(a.buffer);
        expect(b.byteOffset).toBe(a.byteOffset);
      }
      b.set(bytesOf(ALL.subarray(0, 50_000)));
      const c = arena.alloc(100_000);
      expect(mismatches(ALL.subarray(0, 50_000), halves(arena.convert(b, 'F16', 'BF16', c)), viaF32.F16)).toEqual([]);
    });
  });
});
