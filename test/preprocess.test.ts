/**
 * InternVL image preprocessing against ../shared/fixtures/preprocess (made by the official code
 * with Pillow 9.4 and torchvision): decode, grid choice, Pillow's bicubic resize, crops, thumbnail,
 * ToTensor + Normalize. Everything is held to exact equality.
 */
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { readFileSync, existsSync, writeFileSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { SafetensorsFile } from '../src/checkpoint/safetensors.ts';
import { UserError } from '../src/errors.ts';
import {
  chooseGrid,
  decodeRgb,
  planTiles,
  preprocessImage,
  preprocessRgb,
  resizeBicubic,
  normalizeTiles,
  NORMALIZE_LUT,
} from '../src/preprocess/index.ts';
import { FIXTURES, tempDir, removeDir } from './helpers.ts';

const DIR = path.join(FIXTURES, 'preprocess');
const HAVE = existsSync(path.join(DIR, 'index.json'));

interface Setting { id: string; image_size: number; max_num: number; min_num: number; use_thumbnail: boolean; pixel_values_stored: boolean }
interface ImageEntry { name: string; file: string; size: [number, number]; decoded_rgb: string }
interface CaseEntry { image: string; setting: string; file: string; grid: [number, number]; num_tiles: number; thumbnail_appended: boolean; resized_to: [number, number]; crop_boxes: number[][] }
interface Index { settings: Setting[]; images: ImageEntry[]; cases: CaseEntry[]; normalize_lut: { values: number[][] } }
interface GridRow { width: number; height: number; image_size: number; max_num: number; min_num: number; use_thumbnail: boolean; grid: [number, number]; resized_to: [number, number]; thumbnail_appended: boolean; num_tiles: number; crop_boxes: number[][] }

const index: Index = HAVE ? JSON.parse(readFileSync(path.join(DIR, 'index.json'), 'utf8')) : { settings: [], images: [], cases: [], normalize_lut: { values: [] } };
const settingOf = (id: string) => index.settings.find((s) => s.id === id)!;
const imageOf = (name: string) => index.images.find((i) => i.name === name)!;

async function readTensors(file: string): Promise<Record<string, { dtype: string; shape: number[]; bytes: Uint8Array }>> {
  const st = await SafetensorsFile.open(file);
  try {
    const out: Record<string, { dtype: string; shape: number[]; bytes: Uint8Array }> = {};
    for (const key of st.keys()) {
      const e = st.entry(key);
      out[key] = { dtype: e.dtype, shape: [...e.shape], bytes: await st.readAll(e) };
    }
    return out;
  } finally {
    await st.close();
  }
}

const f32 = (b: Uint8Array) => new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
const i32 = (b: Uint8Array) => Array.from(new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4));

function maxDiffU8(a: Uint8Array, b: Uint8Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Count of float32 values whose bits differ. */
function bitDiffs(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let n = 0;
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) n++;
  return n;
}

describe.skipIf(!HAVE)('preprocess fixtures', () => {
  it('the normalisation table equals index.json normalize_lut', () => {
    const want = Float32Array.from(index.normalize_lut.values.flat());
    expect(want.length).toBe(3 * 256);
    expect(bitDiffs(NORMALIZE_LUT, want)).toBe(0);
  });

  describe('decode', () => {
    for (const image of index.images) {
      it(`${image.name}: bytes identical to Image.open().convert('RGB')`, async () => {
        const got = await decodeRgb(path.join(DIR, image.file));
        const want = (await readTensors(path.join(DIR, image.decoded_rgb))).rgb_u8!;
        expect([got.width, got.height]).toEqual(image.size);
        expect(want.shape).toEqual([image.size[1], image.size[0], 3]);
        expect(maxDiffU8(got.rgb, want.bytes)).toBe(0);
      });
    }
  });

  describe('cases', () => {
    for (const c of index.cases) {
      it(`${c.image} / ${c.setting}: tiles_u8, grid, num_tiles and pixel_values exact`, async () => {
        const s = settingOf(c.setting);
        const want = await readTensors(path.join(DIR, c.file));
        const got = await preprocessImage(path.join(DIR, imageOf(c.image).file), {
          imageSize: s.image_size,
          minNum: s.min_num,
          maxNum: s.max_num,
          useThumbnail: s.use_thumbnail,
          keepU8: true,
        });
        expect(got.grid).toEqual(i32(want.grid!.bytes));
        expect(got.tiles).toBe(i32(want.num_tiles!.bytes)[0]);
        expect(want.tiles_u8!.shape).toEqual([got.tiles, s.image_size, s.image_size, 3]);
        expect(maxDiffU8(got.tilesU8!, want.tiles_u8!.bytes)).toBe(0);
        // pixel_values: stored for small settings; for 448 the reference is normalize(tiles_u8).
        const reference = want.pixel_values ? f32(want.pixel_values.bytes) : normalizeTiles(want.tiles_u8!.bytes, got.tiles, s.image_size);
        expect(got.pixelValues.length).toBe(got.tiles * 3 * s.image_size * s.image_size);
        expect(bitDiffs(got.pixelValues, reference)).toBe(0);
        if (want.pixel_values) expect(want.pixel_values.shape).toEqual([got.tiles, 3, s.image_size, s.image_size]);
      });
    }
  });

  it('grid_cases.json: grid, resize target, thumbnail, tile count and crop boxes for every size and setting', () => {
    const rows: GridRow[] = JSON.parse(readFileSync(path.join(DIR, 'grid_cases.json'), 'utf8')).rows;
    expect(rows.length).toBe(253 * 9);
    const wrong: string[] = [];
    for (const r of rows) {
      const options = { imageSize: r.image_size, minNum: r.min_num, maxNum: r.max_num, useThumbnail: r.use_thumbnail };
      const plan = planTiles(r.width, r.height, options);
      const got = { grid: plan.grid, resized_to: plan.resizedTo, thumbnail_appended: plan.thumbnail, num_tiles: plan.tiles, crop_boxes: plan.cropBoxes };
      const want = { grid: r.grid, resized_to: r.resized_to, thumbnail_appended: r.thumbnail_appended, num_tiles: r.num_tiles, crop_boxes: r.crop_boxes };
      if (JSON.stringify(got) !== JSON.stringify(want) || JSON.stringify(chooseGrid(r.width, r.height, options)) !== JSON.stringify(r.grid)) {
        wrong.push(`${r.width}x${r.height} S=${r.image_size} max=${r.max_num}: ${JSON.stringify(got.grid)} vs ${JSON.stringify(r.grid)}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('the tie rule: a square 500x500 stays 1x1 at S=448 but takes the biggest square grid at S=56', () => {
    expect(planTiles(500, 500, { imageSize: 448 })).toMatchObject({ grid: [1, 1], tiles: 1, thumbnail: false });
    expect(planTiles(500, 500, { imageSize: 56, maxNum: 6 })).toMatchObject({ grid: [2, 2], tiles: 5, thumbnail: true });
    expect(planTiles(500, 500, { imageSize: 56, maxNum: 12 })).toMatchObject({ grid: [3, 3], tiles: 10, thumbnail: true });
    // 633x633 vs 634x634 at S=448 (4x4 allowed): 633^2 < 0.5 * 448^2 * 4 < 634^2.
    expect(chooseGrid(633, 633, { imageSize: 448 })).toEqual([1, 1]);
    expect(chooseGrid(634, 634, { imageSize: 448 })).toEqual([2, 2]);
  });
});

describe('resizeBicubic', () => {
  it('a same-size resize is a copy, and one unchanged axis is not resampled', () => {
    const img = Uint8Array.from({ length: 5 * 4 * 3 }, (_, i) => (i * 37) % 256);
    expect(resizeBicubic(img, 5, 4, 5, 4)).toEqual(img);
    // Width unchanged: only the vertical pass runs; a column of constant value stays constant.
    const flat = new Uint8Array(5 * 4 * 3).fill(200);
    expect(resizeBicubic(flat, 5, 4, 5, 9).every((v) => v === 200)).toBe(true);
  });

  it('clips overshoot at sharp edges to 0..255 (as Pillow does between passes)', () => {
    // 0/255 stripes upscaled: bicubic overshoots; every value must stay a byte and both extremes appear.
    const w = 8, h = 2;
    const img = Uint8Array.from({ length: w * h * 3 }, (_, i) => (Math.floor(i / 3) % 2 ? 255 : 0));
    const out = resizeBicubic(img, w, h, 29, 3);
    expect(Math.max(...out)).toBe(255);
    expect(Math.min(...out)).toBe(0);
  });

  it('any channel count resamples each channel as the RGB path does', () => {
    const grey = Uint8Array.from({ length: 13 * 7 }, (_, i) => (i * 97) % 256);
    const rgb = Uint8Array.from({ length: 13 * 7 * 3 }, (_, i) => grey[Math.floor(i / 3)]!);
    for (const [w, h] of [[31, 5], [4, 19], [13, 2], [2, 7]] as const) {
      const one = resizeBicubic(grey, 13, 7, w, h, 1);
      const three = resizeBicubic(rgb, 13, 7, w, h, 3);
      expect(Array.from(one)).toEqual(Array.from(three).filter((_, i) => i % 3 === 0));
      const two = resizeBicubic(Uint8Array.from(rgb.subarray(0, 13 * 7 * 2)), 13, 7, w, h, 2);
      expect(two.length).toBe(w * h * 2);
    }
  });

  it('resizes 800x600 -> 1792x1344 well under a second', () => {
    const img = Uint8Array.from({ length: 800 * 600 * 3 }, (_, i) => (i * 2654435761) >>> 24);
    resizeBicubic(img, 800, 600, 448, 448); // warm up the JIT
    const t0 = performance.now();
    const out = resizeBicubic(img, 800, 600, 1792, 1344);
    const ms = performance.now() - t0;
    expect(out.length).toBe(1792 * 1344 * 3);
    expect(ms).toBeLessThan(1000);
  });
});

describe('options and bad input', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir('vlmc-preprocess-');
  });
  afterAll(() => removeDir(dir));

  it('bad files are a UserError naming the file', async () => {
    const notImage = path.join(dir, 'notes.png');
    writeFileSync(notImage, 'this is not an image');
    const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 10, g: 20, b: 30 } } }).png().toBuffer();
    const truncated = path.join(dir, 'truncated.png');
    writeFileSync(truncated, png.subarray(0, Math.floor(png.length / 2)));
    const jpeg = readFileSync(path.join(DIR, 'images/jpeg420_q90_800x600.jpg'));
    const truncatedJpeg = path.join(dir, 'truncated.jpg');
    writeFileSync(truncatedJpeg, jpeg.subarray(0, Math.floor(jpeg.length / 2)));
    const folder = path.join(dir, 'folder.png');
    mkdirSync(folder);
    const empty = path.join(dir, 'empty.jpg');
    writeFileSync(empty, '');
    for (const file of [path.join(dir, 'missing.png'), notImage, truncated, truncatedJpeg, folder, empty]) {
      const err = await decodeRgb(file).then(() => undefined, (e: unknown) => e);
      expect(err, file).toBeInstanceOf(UserError);
      expect((err as Error).message).toContain(file);
    }
  });

  it('bad options are a UserError before anything is decoded', async () => {
    for (const o of [{ imageSize: 0 }, { imageSize: 448, maxNum: 0 }, { imageSize: 448, minNum: 3, maxNum: 2 }, { imageSize: 44.5 }]) {
      await expect(preprocessImage(path.join(dir, 'missing.png'), o)).rejects.toThrow(/preprocess: /);
    }
  });

  it('preprocessRgb is pure and matches preprocessImage', async () => {
    const file = path.join(DIR, 'images/png_rgb_47x31.png');
    if (!existsSync(file)) return;
    const { rgb, width, height } = await decodeRgb(file);
    const a = preprocessRgb(rgb, width, height, { imageSize: 56, maxNum: 6 });
    const b = await preprocessImage(file, { imageSize: 56, maxNum: 6 });
    expect(a.file).toBe('');
    expect(b.file).toBe(file);
    expect(a.tilesU8).toBeUndefined();
    expect(bitDiffs(a.pixelValues, b.pixelValues)).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// convert('RGB') semantics on PNG layouts the fixture images do not cover, written by hand here
// (a PNG is a few chunks) so each colour type and bit depth is exactly what the test says.

function pngChunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), 8 + data.length);
  return out;
}

function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c >>> 0;
}

/** A PNG with the given IHDR depth/colour type and already-packed rows. */
function makePng(width: number, height: number, depth: number, colourType: number, rows: Uint8Array[], extra: Buffer[] = []): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = depth;
  ihdr[9] = colourType;
  const raw = Buffer.concat(rows.map((r) => Buffer.concat([Buffer.of(0), r])));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', ihdr), ...extra, pngChunk('IDAT', deflateSync(raw)), pngChunk('IEND', new Uint8Array(0))]);
}

const be16 = (values: number[]) => {
  const b = Buffer.alloc(values.length * 2);
  values.forEach((v, i) => b.writeUInt16BE(v, i * 2));
  return b;
};

describe('convert(RGB) semantics', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir('vlmc-decode-');
  });
  afterAll(() => removeDir(dir));

  async function decodePng(name: string, png: Buffer): Promise<number[]> {
    const file = path.join(dir, name);
    writeFileSync(file, png);
    return Array.from((await decodeRgb(file)).rgb);
  }

  it('grey (1/2/4/8-bit) is scaled to 8 bits and replicated; a tRNS chunk is ignored', async () => {
    expect(await decodePng('g1.png', makePng(4, 1, 1, 0, [Uint8Array.of(0b1010_0000)]))).toEqual([255, 255, 255, 0, 0, 0, 255, 255, 255, 0, 0, 0]);
    expect(await decodePng('g2.png', makePng(4, 1, 2, 0, [Uint8Array.of(0b00_01_10_11)]))).toEqual([0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255]);
    expect(await decodePng('g4.png', makePng(2, 1, 4, 0, [Uint8Array.of(0x3c)]))).toEqual([51, 51, 51, 204, 204, 204]);
    const trns = pngChunk('tRNS', be16([7]));
    expect(await decodePng('g8t.png', makePng(3, 1, 8, 0, [Uint8Array.of(7, 8, 250)], [trns]))).toEqual([7, 7, 7, 8, 8, 8, 250, 250, 250]);
  });

  it('16-bit grey is clipped to 255 (Pillow mode I), with or without tRNS; 16-bit grey + alpha keeps the high byte', async () => {
    const values = [0, 200, 255, 256, 65535];
    expect(await decodePng('g16.png', makePng(5, 1, 16, 0, [be16(values)]))).toEqual([0, 200, 255, 255, 255].flatMap((v) => [v, v, v]));
    const trns = pngChunk('tRNS', be16([200]));
    expect(await decodePng('g16t.png', makePng(5, 1, 16, 0, [be16(values)], [trns]))).toEqual([0, 200, 255, 255, 255].flatMap((v) => [v, v, v]));
    const la = be16([0x1234, 0, 0xff00, 0xffff, 0x00ff, 0x8000]);
    expect(await decodePng('la16.png', makePng(3, 1, 16, 4, [la]))).toEqual([0x12, 0x12, 0x12, 0xff, 0xff, 0xff, 0, 0, 0]);
  });

  it('16-bit RGB and RGBA keep the high byte; alpha is dropped without compositing', async () => {
    expect(await decodePng('rgb16.png', makePng(1, 1, 16, 2, [be16([0x1280, 0xabff, 0x00ff])]))).toEqual([0x12, 0xab, 0x00]);
    expect(await decodePng('rgba16.png', makePng(1, 1, 16, 6, [be16([0x1280, 0xabff, 0x00ff, 0])]))).toEqual([0x12, 0xab, 0x00]);
    expect(await decodePng('rgba8.png', makePng(2, 1, 8, 6, [Uint8Array.of(9, 99, 199, 0, 50, 60, 70, 128)]))).toEqual([9, 99, 199, 50, 60, 70]);
    expect(await decodePng('la8.png', makePng(2, 1, 8, 4, [Uint8Array.of(77, 0, 130, 255)]))).toEqual([77, 77, 77, 130, 130, 130]);
  });

  it('a palette is looked up, its tRNS ignored (colour under alpha 0 kept)', async () => {
    const plte = pngChunk('PLTE', Uint8Array.of(10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120));
    const trns = pngChunk('tRNS', Uint8Array.of(0, 0, 128));
    // 2-bit indices 3, 0, 2, 1
    expect(await decodePng('p2.png', makePng(4, 1, 2, 3, [Uint8Array.of(0b11_00_10_01)], [plte, trns]))).toEqual([100, 110, 120, 10, 20, 30, 70, 80, 90, 40, 50, 60]);
  });

  it('EXIF orientation is not applied', async () => {
    const src = Uint8Array.from({ length: 6 * 4 * 3 }, (_, i) => (i * 11) % 256);
    const file = path.join(dir, 'rotated.png');
    await sharp(src, { raw: { width: 6, height: 4, channels: 3 } }).withMetadata({ orientation: 6 }).png().toFile(file);
    expect((await sharp(file).metadata()).orientation).toBe(6);
    const got = await decodeRgb(file);
    expect([got.width, got.height]).toEqual([6, 4]);
    expect(Array.from(got.rgb)).toEqual(Array.from(src));
  });

  it('an embedded ICC profile is not applied (Pillow ignores it)', async () => {
    // A real non-sRGB profile (Display P3, shipped with sharp) in an iCCP chunk over known pixels.
    const probe = await sharp({ create: { width: 1, height: 1, channels: 3, background: '#000' } }).withIccProfile('p3').png().toBuffer();
    const icc = (await sharp(probe).metadata()).icc!;
    const iccp = pngChunk('iCCP', Buffer.concat([Buffer.from('P3\0\0', 'latin1'), deflateSync(icc)]));
    const pixels = [250, 10, 10, 10, 250, 10, 128, 64, 32];
    const file = path.join(dir, 'p3.png');
    writeFileSync(file, makePng(3, 1, 8, 2, [Uint8Array.from(pixels)], [iccp]));
    expect((await sharp(file).metadata()).hasProfile).toBe(true);
    expect(Array.from((await decodeRgb(file)).rgb)).toEqual(pixels);
  });

  it('CMYK JPEG uses Pillow\'s cmyk2rgb, not an ICC conversion', async () => {
    // A flat CMYK image: JPEG keeps flat blocks exact, so the decoded CMYK is the one written.
    const file = path.join(dir, 'cmyk.jpg');
    await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 200, g: 100, b: 50 } } }).toColourspace('cmyk').jpeg({ quality: 100 }).toFile(file);
    const cmyk = (await sharp(file, { ignoreIcc: true }).pipelineColourspace('cmyk').toColourspace('cmyk').raw().toBuffer()).subarray(0, 4);
    const nk = 255 - cmyk[3]!;
    const expected = [0, 1, 2].map((c) => {
      const t = cmyk[c]! * nk + 128;
      return nk - (((t >> 8) + t) >> 8);
    });
    expect(Array.from((await decodeRgb(file)).rgb.subarray(0, 3))).toEqual(expected);
  });
});
