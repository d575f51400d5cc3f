import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Checkpoint } from '../src/checkpoint/checkpoint.ts';
import { SafetensorsFile } from '../src/checkpoint/safetensors.ts';
import { writeSafetensors } from '../src/checkpoint/safetensors-write.ts';
import { findSpecialTokenId } from '../src/checkpoint/tokens.ts';
import {
  alignChunkBytes,
  bf16ToF32,
  convertChunk,
  elementView,
  f16ToF32,
  f32Bits,
  f32BitsToBf16Bits,
  f32BitsToF16Bits,
  f32FromBits,
  f32ToBf16,
  f32ToF16,
} from '../src/tensor/convert.ts';
import { CheckpointError } from '../src/errors.ts';

const FIXTURES = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '../../shared/fixtures');
const UNIFIED = path.join(FIXTURES, 'qwen2-tiny/unified');

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'vlmc-safetensors-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const half = (f: number) => f32BitsToF16Bits(f32Bits(f));
const halfToNumber = (h: number) => f16ToF32(Uint16Array.of(h))[0]!;

describe('float16 conversion', () => {
  it('encodes known values with round-to-nearest-even', () => {
    expect(half(1)).toBe(0x3c00);
    expect(half(-2)).toBe(0xc000);
    expect(half(65504)).toBe(0x7bff); // largest finite half
    expect(half(65519)).toBe(0x7bff);
    expect(half(65520)).toBe(0x7c00); // tie with odd 0x7bff rounds up to inf
    expect(half(1e6)).toBe(0x7c00);
    expect(half(1 + 2 ** -11)).toBe(0x3c00); // tie, 0x3c00 is even
    expect(half(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie, 0x3c01 is odd
    expect(half(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // just above the tie
    expect(half(2 ** -14)).toBe(0x0400); // smallest normal
    expect(half(2 ** -14 - 2 ** -25)).toBe(0x0400); // tie between 0x03ff (odd) and 0x0400
    expect(half(1023 * 2 ** -24)).toBe(0x03ff); // largest subnormal
    expect(half(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(half(2 ** -25)).toBe(0x0000); // tie rounds to even zero
    expect(half(1.5 * 2 ** -25)).toBe(0x0001);
    expect(half(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 goes to 2
    expect(half(2 ** -30)).toBe(0x0000);
    expect(half(-(2 ** -30))).toBe(0x8000);
    expect(half(-0)).toBe(0x8000);
    expect(half(Infinity)).toBe(0x7c00);
    expect(half(-Infinity)).toBe(0xfc00);
  });

  it('keeps NaN a NaN, even when the payload sits in the dropped bits', () => {
    for (const bits of [0x7fc00000, 0x7f800001, 0xff800001, 0x7fffffff]) {
      const h = f32BitsToF16Bits(bits);
      expect(h & 0x7c00).toBe(0x7c00);
      expect(h & 0x03ff).not.toBe(0);
      expect(h & 0x8000).toBe((bits >>> 16) & 0x8000);
    }
  });

  it('decodes known bit patterns exactly', () => {
    expect(halfToNumber(0x3c00)).toBe(1);
    expect(halfToNumber(0x7bff)).toBe(65504);
    expect(halfToNumber(0x0001)).toBe(2 ** -24);
    expect(halfToNumber(0x03ff)).toBe(1023 * 2 ** -24);
    expect(halfToNumber(0x0400)).toBe(2 ** -14);
    expect(halfToNumber(0x3555)).toBe(0.333251953125);
    expect(halfToNumber(0xfc00)).toBe(-Infinity);
    expect(Object.is(halfToNumber(0x8000), -0)).toBe(true);
    expect(halfToNumber(0x7e00)).toBeNaN();
    expect(halfToNumber(0x7c01)).toBeNaN();
  });

  it('round-trips all 65536 half bit patterns', () => {
    const all = new Uint16Array(0x10000).map((_, i) => i);
    const back = f32ToF16(f16ToF32(all));
    for (let h = 0; h < 0x10000; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN) expect(back[h]! & 0x7c00).toBe(0x7c00);
      else if (back[h] !== h) expect.fail(`0x${h.toString(16)} came back as 0x${back[h]!.toString(16)}`);
    }
  });

  it('matches a brute-force nearest-even reference on random floats', () => {
    // Reference: nearest finite half by binary search over all positive half values.
    const positives = f16ToF32(new Uint16Array(0x7c00).map((_, i) => i));
    const reference = (x: number): number => {
      const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
      const a = Math.abs(x);
      if (a >= 65520) return sign | 0x7c00;
      let lo = 0;
      let hi = positives.length - 1;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (positives[mid]! <= a) lo = mid;
        else hi = mid;
      }
      const dLo = a - positives[lo]!;
      const dHi = positives[hi]! - a;
      const pick = dLo < dHi ? lo : dHi < dLo ? hi : lo % 2 === 0 ? lo : hi;
      return sign | pick;
    };
    let seed = 12345;
    const random32 = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0);
    for (let i = 0; i < 20000; i++) {
      // Bias exponents into the half range so subnormals, normals and overflow are all exercised.
      const bits = ((random32() & 0x807fffff) | ((96 + (random32() % 52)) << 23)) >>> 0;
      const x = f32FromBits(bits);
      const got = f32BitsToF16Bits(bits);
      if (got !== reference(x)) expect.fail(`${x} (0x${bits.toString(16)}): got 0x${got.toString(16)}, want 0x${reference(x).toString(16)}`);
    }
  });
});

describe('bfloat16 conversion', () => {
  it('encodes with round-to-nearest-even', () => {
    expect(f32BitsToBf16Bits(f32Bits(1))).toBe(0x3f80);
    expect(f32BitsToBf16Bits(0x3f808000)).toBe(0x3f80); // tie, even kept
    expect(f32BitsToBf16Bits(0x3f818000)).toBe(0x3f82); // tie, odd rounds up
    expect(f32BitsToBf16Bits(0x3f808001)).toBe(0x3f81);
    expect(f32BitsToBf16Bits(0x3f807fff)).toBe(0x3f80);
    expect(f32BitsToBf16Bits(0x7f7fffff)).toBe(0x7f80); // max float rounds to inf
    expect(f32BitsToBf16Bits(0xff800000)).toBe(0xff80);
    expect(f32BitsToBf16Bits(0x00018000)).toBe(0x0002); // subnormal tie, odd rounds up
    expect(f32BitsToBf16Bits(0x80008000)).toBe(0x8000);
  });

  it('keeps NaN a NaN', () => {
    expect(f32BitsToBf16Bits(0x7f800001)).toBe(0x7fc0);
    expect(f32BitsToBf16Bits(0xffc00000)).toBe(0xffc0);
    expect(f32BitsToBf16Bits(0x7fff0000)).toBe(0x7fff);
  });

  it('decodes by widening the bits', () => {
    const out = bf16ToF32(Uint16Array.of(0x3f80, 0xc000, 0x0001, 0xff80, 0x7fc0, 0x8000));
    expect(Array.from(out.subarray(0, 4))).toEqual([1, -2, 2 ** -133, -Infinity]);
    expect(out[4]).toBeNaN();
    expect(Object.is(out[5], -0)).toBe(true);
    expect(Array.from(f32ToBf16(out.subarray(0, 4)))).toEqual([0x3f80, 0xc000, 0x0001, 0xff80]);
  });
});

describe('convertChunk', () => {
  const values = Float32Array.of(1, -2.5, 0.1, 65504, 1e-7, -0, Infinity);

  it('returns the same bytes for identity', () => {
    const bytes = bytesOf(values);
    expect(convertChunk(bytes, 'F32', 'F32')).toBe(bytes);
  });

  it('converts F32 -> F16 -> F32 and F32 -> BF16 -> F32', () => {
    const viaF16 = new Float32Array(convertChunk(convertChunk(bytesOf(values), 'F32', 'F16'), 'F16', 'F32').buffer);
    expect(Array.from(viaF16)).toEqual([1, -2.5, 0.0999755859375, 65504, 1.1920928955078125e-7, -0, Infinity]);
    const viaBf16 = new Float32Array(convertChunk(convertChunk(bytesOf(values), 'F32', 'BF16'), 'BF16', 'F32').buffer);
    expect(Array.from(viaBf16)).toEqual([1, -2.5, 0.10009765625, 65536, 1.0011717677116394e-7, -0, Infinity]);
  });

  it('converts F16 <-> BF16 with a single rounding', () => {
    const f16 = Uint16Array.of(0x3c00, 0x3555, 0x7bff, 0x0001);
    const bf16 = new Uint16Array(convertChunk(bytesOf(f16), 'F16', 'BF16').slice().buffer);
    expect(Array.from(bf16)).toEqual([0x3f80, 0x3eab, 0x4780, 0x3380]);
    expect(Array.from(new Uint16Array(convertChunk(bytesOf(bf16), 'BF16', 'F16').slice().buffer))).toEqual([0x3c00, 0x3558, 0x7c00, 0x0001]);
  });

  it('accepts chunks at odd byte offsets and rejects partial elements', () => {
    const backing = new Uint8Array(1 + 8);
    backing.set(bytesOf(Float32Array.of(1, -2)), 1);
    const out = convertChunk(backing.subarray(1), 'F32', 'BF16');
    expect(Array.from(new Uint16Array(out.buffer, out.byteOffset, 2))).toEqual([0x3f80, 0xc000]);
    expect(() => convertChunk(new Uint8Array(6), 'F32', 'F16')).toThrow(/not a whole number of F32 elements/);
  });

  it('aligns chunk sizes to whole elements', () => {
    expect(alignChunkBytes(7, 'F32')).toBe(4);
    expect(alignChunkBytes(7, 'BF16')).toBe(6);
    expect(alignChunkBytes(1, 'F64')).toBe(8);
  });
});

describe('writeSafetensors / SafetensorsFile', () => {
  const f32 = Float32Array.of(1, -0.5, 3.25, 2 ** -20, -Infinity, 123456.78125);
  const f16 = Uint16Array.of(0x3c00, 0xb800, 0x0001, 0x7bff, 0xfc00, 0x3555);
  const bf16 = Uint16Array.of(0x3f80, 0xbf00, 0x0001, 0x7f7f, 0xff80, 0x3eab);
  const i64 = BigInt64Array.of(1n, -2n, 151n, 2n ** 62n);
  const tensors = [
    { name: 'z.f32', dtype: 'F32' as const, shape: [2, 3], data: bytesOf(f32) },
    { name: 'a.f16', dtype: 'F16' as const, shape: [6], data: bytesOf(f16) },
    { name: 'm.bf16', dtype: 'BF16' as const, shape: [3, 1, 2], data: bytesOf(bf16) },
    { name: 'ids', dtype: 'I64' as const, shape: [1, 4], data: bytesOf(i64) },
    { name: 'empty', dtype: 'F32' as const, shape: [0, 4], data: new Uint8Array(0) },
  ];

  it('round-trips F32/F16/BF16/I64 exactly, with metadata', async () => {
    const file = path.join(tmp, 'roundtrip.safetensors');
    await writeSafetensors(file, tensors, { format: 'pt', note: 'test' });
    const st = await SafetensorsFile.open(file);
    try {
      expect(st.keys()).toEqual(['a.f16', 'empty', 'ids', 'm.bf16', 'z.f32']);
      expect(st.metadata).toEqual({ format: 'pt', note: 'test' });
      expect(st.entry('m.bf16')).toMatchObject({ dtype: 'BF16', shape: [3, 1, 2], byteLength: 12, file });
      expect(Array.from(await st.readAsFloat32(st.entry('z.f32')))).toEqual(Array.from(f32));
      expect(Array.from(await st.readAsFloat32(st.entry('a.f16')))).toEqual([1, -0.5, 2 ** -24, 65504, -Infinity, 0.333251953125]);
      expect(Array.from(await st.readAsFloat32(st.entry('m.bf16')))).toEqual([1, -0.5, 2 ** -133, 3.3895313892515355e38, -Infinity, 0.333984375]);
      expect(Array.from(elementView(await st.readAll(st.entry('ids')), 'I64'))).toEqual([1n, -2n, 151n, 2n ** 62n]);
      expect((await st.readAll(st.entry('empty'))).byteLength).toBe(0);
      await expect(st.readAsFloat32(st.entry('ids'))).rejects.toThrow(/tensor "ids" is I64; only F32, F16 and BF16/);
    } finally {
      await st.close();
    }
  });

  it('writes deterministic, 8-byte aligned, key-sorted headers with absolute offsets', async () => {
    const a = path.join(tmp, 'det-a.safetensors');
    const b = path.join(tmp, 'det-b.safetensors');
    await writeSafetensors(a, tensors);
    await writeSafetensors(b, [...tensors].reverse());
    const bytes = await readFile(a);
    expect(bytes.equals(await readFile(b))).toBe(true);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    expect((8 + headerLength) % 8).toBe(0);
    const header = bytes.subarray(8, 8 + headerLength).toString('utf8');
    expect(header.startsWith('{"a.f16"')).toBe(true);
    expect(header.trimEnd().endsWith('}')).toBe(true); // padding is trailing spaces only
    expect(Object.keys(JSON.parse(header))).toEqual(['a.f16', 'empty', 'ids', 'm.bf16', 'z.f32']);
    const st = await SafetensorsFile.open(a);
    const entry = st.entry('z.f32');
    // Buffer#slice is a view, so copy through Uint8Array to get an aligned, private buffer.
    expect(new Float32Array(new Uint8Array(bytes.subarray(entry.offset, entry.offset + entry.byteLength)).buffer)).toEqual(f32);
    await st.close();
  });

  it('keeps integer-like names in sorted order too', async () => {
    const file = path.join(tmp, 'numeric.safetensors');
    const one = bytesOf(Float32Array.of(1));
    await writeSafetensors(file, ['b', '10', '9'].map((name) => ({ name, dtype: 'F32' as const, shape: [1], data: one })));
    const bytes = await readFile(file);
    const header = bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString('utf8');
    expect(header.indexOf('"10"')).toBeLessThan(header.indexOf('"9"'));
    expect(header.indexOf('"9"')).toBeLessThan(header.indexOf('"b"'));
  });

  it('streams element-aligned chunks that reassemble the tensor', async () => {
    const file = path.join(tmp, 'chunks.safetensors');
    const data = new Uint16Array(1001).map((_, i) => (i * 37) & 0xffff);
    await writeSafetensors(file, [{ name: 't', dtype: 'BF16', shape: [7, 11, 13], data: bytesOf(data) }]);
    const st = await SafetensorsFile.open(file);
    const entry = st.entry('t');
    const fresh: Uint8Array[] = [];
    for await (const chunk of st.chunks(entry, 7)) fresh.push(chunk);
    expect(fresh.every((c) => c.byteLength === 6 || c === fresh.at(-1))).toBe(true);
    expect(fresh.at(-1)!.byteLength).toBe(2002 % 6);
    expect(Buffer.concat(fresh).equals(Buffer.from(bytesOf(data)))).toBe(true);

    const reused: Uint8Array[] = [];
    const buffers = new Set<ArrayBufferLike>();
    for await (const chunk of st.chunks(entry, 100, { reuseBuffer: true })) {
      reused.push(chunk.slice());
      buffers.add(chunk.buffer);
    }
    expect(buffers.size).toBe(1);
    expect(Buffer.concat(reused).equals(Buffer.from(bytesOf(data)))).toBe(true);
    await st.close();
  });

  it('replaces files atomically and leaves no temp files behind', async () => {
    const dir = path.join(tmp, 'atomic');
    await mkdir(dir);
    const file = path.join(dir, 'x.safetensors');
    await writeFile(file, 'old');
    await writeSafetensors(file, [{ name: 'x', dtype: 'U8', shape: [2], data: Uint8Array.of(7, 8) }]);
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(dir)).toEqual(['x.safetensors']);
    await expect(
      writeSafetensors(file, [{ name: 'bad', dtype: 'F32', shape: [3], data: new Uint8Array(8) }]),
    ).rejects.toThrow(/tensor "bad": 8 bytes given but shape \[3\] x F32 needs 12/);
    expect(await readdir(dir)).toEqual(['x.safetensors']);
  });
});

describe('qwen2-tiny fixture', () => {
  it('reads the unified model.safetensors', async () => {
    const st = await SafetensorsFile.open(path.join(UNIFIED, 'model.safetensors'));
    try {
      expect(st.entries.size).toBe(64);
      expect(st.metadata).toEqual({ format: 'pt' });
      expect(st.entry('mlp1.0.weight')).toMatchObject({ dtype: 'F32', shape: [128], byteLength: 512 });
      expect(st.entry('mlp1.1.weight').shape).toEqual([48, 128]);
      const w = await st.readAsFloat32(st.entry('mlp1.0.weight'));
      expect(w.length).toBe(128);
      expect(Array.from(w.subarray(0, 4))).toEqual(
        [1.0417473316192627, 1.1525709629058838, 1.1562755107879639, 0.983415961265564].map(Math.fround),
      );
    } finally {
      await st.close();
    }
  });

  it('opens the unified folder as a checkpoint', async () => {
    const ckpt = await Checkpoint.open(UNIFIED);
    try {
      expect(ckpt.keys()).toContain('mlp1.0.weight');
      expect(ckpt.keys()).toEqual([...ckpt.keys()].sort());
      expect(ckpt.has('mlp1.3.weight')).toBe(true);
      expect(ckpt.has('nope')).toBe(false);
      expect(ckpt.files).toHaveLength(1);
      expect(ckpt.config['model_type']).toBe('internvl_chat');
      const configBytes = await readFile(path.join(UNIFIED, 'config.json'));
      expect(ckpt.configHash).toBe(createHash('sha256').update(configBytes).digest('hex'));
      expect((await ckpt.readAsFloat32('mlp1.3.weight')).length).toBe(48 * 48);
      let total = 0;
      for await (const chunk of ckpt.chunks('mlp1.1.weight', 1000)) total += chunk.byteLength;
      expect(total).toBe(48 * 128 * 4);
      expect(() => ckpt.entry('nope')).toThrow(CheckpointError);
    } finally {
      await ckpt.close();
    }
  });

  it('finds the <IMG_CONTEXT> token id', () => {
    expect(findSpecialTokenId(UNIFIED)).toBe(153);
    expect(findSpecialTokenId(UNIFIED, '</img>')).toBe(152);
    expect(findSpecialTokenId(UNIFIED, '<absent>')).toBeUndefined();
  });
});

describe('findSpecialTokenId', () => {
  it('falls back to tokenizer_config.json and tolerates absent files', async () => {
    const dir = await mkdtemp(path.join(tmp, 'tok-'));
    expect(findSpecialTokenId(dir)).toBeUndefined();
    await writeFile(
      path.join(dir, 'tokenizer_config.json'),
      JSON.stringify({ added_tokens_decoder: { '7': { content: '<img>' }, '92546': { content: '<IMG_CONTEXT>' } } }),
    );
    expect(findSpecialTokenId(dir)).toBe(92546);
    await writeFile(path.join(dir, 'added_tokens.json'), JSON.stringify({ '<IMG_CONTEXT>': 5 }));
    expect(findSpecialTokenId(dir)).toBe(5);
  });

  it('reports malformed files by name', async () => {
    const dir = await mkdtemp(path.join(tmp, 'tok-'));
    await writeFile(path.join(dir, 'added_tokens.json'), '{"<IMG_CONTEXT>": ');
    expect(() => findSpecialTokenId(dir)).toThrow(CheckpointError);
    expect(() => findSpecialTokenId(dir)).toThrow(/added_tokens\.json: not valid JSON/);
    await writeFile(path.join(dir, 'added_tokens.json'), '{"<IMG_CONTEXT>": "12"}');
    expect(() => findSpecialTokenId(dir)).toThrow(/added_tokens\.json: id of "<IMG_CONTEXT>" must be a non-negative integer/);
    await writeFile(path.join(dir, 'added_tokens.json'), '{}');
    await writeFile(path.join(dir, 'tokenizer_config.json'), '[1]');
    expect(() => findSpecialTokenId(dir)).toThrow(/tokenizer_config\.json: must contain a JSON object/);
  });
});
