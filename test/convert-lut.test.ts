/**
 * F16 <-> BF16 conversion goes through lookup tables; these must give exactly the bits of the
 * scalar path through float32 (one rounding, ties to even, NaN kept NaN and quiet, overflow to
 * inf, subnormals) for every one of the 65536 inputs, whatever the alignment of the chunk.
 */
import { describe, it, expect } from 'vitest';
import { convertChunk, f16BitsToF32Bits, f32BitsToBf16Bits, f32BitsToF16Bits } from '../src/tensor/convert.ts';

/** The reference: widen exactly to float32 bits, then round once. */
const viaF32 = {
  F16: (h: number) => f32BitsToBf16Bits(f16BitsToF32Bits(h)),
  BF16: (h: number) => f32BitsToF16Bits((h << 16) >>> 0),
};

const ALL = Uint16Array.from({ length: 0x10000 }, (_, h) => h);

function bytesOf(u16: Uint16Array): Uint8Array {
  return new Uint8Array(u16.buffer, u16.byteOffset, u16.byteLength);
}

function halves(bytes: Uint8Array): Uint16Array {
  const copy = bytes.slice();
  return new Uint16Array(copy.buffer, 0, copy.byteLength / 2);
}

/** Indices where `got` differs from the reference, as hex input -> got / expected (first few). */
function mismatches(src: Uint16Array, got: Uint16Array, ref: (h: number) => number): string[] {
  const out: string[] = [];
  for (let i = 0; i < src.length && out.length < 5; i++) {
    const want = ref(src[i]!);
    if (got[i] !== want) out.push(`0x${src[i]!.toString(16)} -> 0x${got[i]!.toString(16)}, want 0x${want.toString(16)}`);
  }
  return out;
}

describe.each(['F16', 'BF16'] as const)('%s -> the other half format, all 65536 inputs', (from) => {
  const to = from === 'F16' ? 'BF16' : 'F16';
  const ref = viaF32[from];

  it('matches the float32 path bit for bit', () => {
    const got = halves(convertChunk(bytesOf(ALL), from, to));
    expect(got.length).toBe(0x10000);
    expect(mismatches(ALL, got, ref)).toEqual([]);
  });

  it('matches into a reused destination and from odd-length, 2-mod-4 and odd-byte offsets', () => {
    const dst = new Uint8Array(2 * 0x10000 + 8);
    // Whole, odd length (a last element without a partner), word-misaligned start, one element.
    const slices: [number, number][] = [[0, 0x10000], [0, 0xffff], [1, 0x10000], [0xffff, 0x10000]];
    for (const [begin, end] of slices) {
      const src = ALL.subarray(begin, end);
      const got = halves(convertChunk(bytesOf(src), from, to, dst));
      expect(got.length).toBe(src.length);
      expect(mismatches(src, got, ref)).toEqual([]);
    }
    // Element-aligned but not word-aligned: the source starts 2 bytes into its buffer.
    const shifted = new Uint16Array(0x10001);
    shifted.set(ALL, 1);
    const at2 = shifted.subarray(1);
    expect(mismatches(at2, halves(convertChunk(bytesOf(at2), from, to)), ref)).toEqual([]);
    // Not even element-aligned: an odd byte offset.
    const raw = new Uint8Array(2 * 0x10000 + 1);
    raw.set(bytesOf(ALL), 1);
    expect(mismatches(ALL, halves(convertChunk(raw.subarray(1), from, to)), ref)).toEqual([]);
  });

  it('writes into the destination it was given', () => {
    const dst = new Uint8Array(8);
    const out = convertChunk(bytesOf(Uint16Array.of(0x3c00, 0x3f80)), from, to, dst);
    expect(out.buffer).toBe(dst.buffer);
    expect(Array.from(new Uint16Array(dst.buffer, 0, 2))).toEqual([ref(0x3c00), ref(0x3f80)]);
  });
});

describe('half-to-half spot values', () => {
  const bf16ToF16 = (h: number) => new Uint16Array(convertChunk(bytesOf(Uint16Array.of(h)), 'BF16', 'F16').slice().buffer)[0];
  const f16ToBf16 = (h: number) => new Uint16Array(convertChunk(bytesOf(Uint16Array.of(h)), 'F16', 'BF16').slice().buffer)[0];

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
