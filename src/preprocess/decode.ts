/**
 * Image files -> 8-bit RGB, as `PIL.Image.open(file).convert('RGB')` gives them.
 *
 * Decoding is sharp's (libvips: libspng/libpng, mozjpeg, libwebp, libtiff, ...; its JPEG decode is
 * bit-identical to Pillow's libjpeg-turbo here), then Pillow's `convert('RGB')` rules are applied
 * to the decoded bands rather than libvips' own colour handling:
 *
 * - no EXIF auto-rotation, no ICC / gamma transform (Pillow applies neither);
 * - alpha is dropped without compositing: the colour stored under alpha 0 is kept;
 * - grey (and grey + alpha) is replicated to three channels; a palette is looked up, a tRNS chunk
 *   ignored (libvips turns it into alpha, which is dropped);
 * - 16-bit: RGB / RGBA / grey + alpha keep the high byte (Pillow's `;16B` unpackers), but 16-bit
 *   grey without an alpha channel opens as mode I / I;16 and `convert` clips it: min(v, 255);
 * - CMYK (JPEG) uses Pillow's naive `cmyk2rgb`, not an ICC conversion.
 *
 * - GIF: the first frame; where libvips leaves the transparent index blank, Pillow shows that
 *   index's palette colour, so that colour is put back (gif.ts).
 *
 * Known differences: float / multiband TIFFs, which Pillow converts its own way; BMP and other
 * formats sharp cannot read are an error.
 */
import { readFile } from 'node:fs/promises';
import type { Sharp, SharpOptions } from 'sharp';
import { UserError } from '../errors.ts';
import { refuseNonRegularFile } from '../fs/errors.ts';
import { gifTransparentColour } from './gif.ts';

export interface RgbImage {
  width: number;
  height: number;
  /** [height, width, 3] uint8, row-major. */
  rgb: Uint8Array;
}

/** Decodes an image file to RGB with `convert('RGB')` semantics; a bad file is a UserError naming it. */
export async function decodeRgb(file: string): Promise<RgbImage> {
  const bytes = await readImageFile(file);
  const sharp = await loadSharp(); // outside the try: a missing sharp is a bug, not a bad file
  try {
    return await decodeBytes(sharp, bytes);
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`${file}: not a readable image (${errorMessage(err)})`);
  }
}

async function readImageFile(file: string): Promise<Buffer> {
  refuseNonRegularFile(file, 'an image file (PNG, JPEG, WebP or GIF)');
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`${file}: no such image file`);
    if (code === 'EISDIR') throw new UserError(`${file}: is a directory, not an image file`);
    throw new UserError(`${file}: cannot read image (${errorMessage(err)})`);
  }
}

type SharpFactory = (input: Buffer, options: SharpOptions) => Sharp;
let sharpModule: Promise<SharpFactory> | undefined;

/** sharp's native module takes ~0.2 s to load, so only commands that decode images pay for it. */
function loadSharp(): Promise<SharpFactory> {
  sharpModule ??= import('sharp').then((m) => m.default as SharpFactory);
  return sharpModule;
}

async function decodeBytes(sharp: SharpFactory, bytes: Buffer): Promise<RgbImage> {
  // failOn 'warning' (sharp's default, kept explicit): a truncated or corrupt file is an error,
  // as it is for Pillow, rather than a partly grey image.
  const input = () => sharp(bytes, { failOn: 'warning', ignoreIcc: true, autoOrient: false });
  const meta = await input().metadata();
  if (meta.space === 'cmyk') return cmykToRgb(await rawBands(input().pipelineColourspace('cmyk').toColourspace('cmyk')));
  if (meta.depth === 'ushort' && meta.space === 'grey16' && !hasAlphaBand(bytes, meta.channels)) {
    return clippedGrey16(await rawBands(input().toColourspace('grey16'), 'ushort'));
  }
  const bands = await rawBands(input());
  const blank = meta.format === 'gif' && bands.channels === 4 ? gifTransparentColour(bytes) : undefined;
  return bandsToRgb(bands, blank);
}

interface RawBands {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array | Uint16Array;
}

async function rawBands(pipeline: Sharp, depth?: 'ushort'): Promise<RawBands> {
  const { data, info } = await pipeline.raw(depth ? { depth } : {}).toBuffer({ resolveWithObject: true });
  const values = depth === 'ushort' ? asUint16(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return { width: info.width, height: info.height, channels: info.channels, data: values };
}

/** Host-endian 16-bit values (sharp's raw ushort layout), copied only if the bytes are misaligned. */
function asUint16(data: Buffer): Uint16Array {
  const bytes = data.byteOffset % 2 === 0 ? data : new Uint8Array(data);
  return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
}

/**
 * Whether a 16-bit grey image has a real alpha channel. libvips reports a PNG's tRNS chunk as a
 * second band too, but Pillow opens such a PNG as plain mode I, so for PNG the IHDR colour type
 * decides (4 = grey + alpha, 0 = grey).
 */
function hasAlphaBand(bytes: Buffer, channels: number): boolean {
  if (isPng(bytes)) return bytes[25] === 4;
  return channels === 2;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function isPng(bytes: Buffer): boolean {
  // The signature, then IHDR first: 4-byte length, "IHDR", width, height, bit depth, colour type.
  return bytes.length >= 26 && PNG_SIGNATURE.every((b, i) => bytes[i] === b) && bytes.toString('latin1', 12, 16) === 'IHDR';
}

/**
 * 1-4 decoded bands (grey, grey + alpha, RGB, RGBA) -> RGB, alpha dropped as is. `transparentRgb`
 * replaces the colour of fully transparent RGBA pixels (a GIF's transparent index, see gif.ts).
 */
function bandsToRgb({ width, height, channels, data }: RawBands, transparentRgb?: readonly number[]): RgbImage {
  const n = width * height;
  const rgb = new Uint8Array(n * 3);
  if (channels >= 3) {
    for (let i = 0, p = 0; i < n; i++, p += channels) {
      const colour = transparentRgb && data[p + 3] === 0 ? transparentRgb : undefined;
      rgb[i * 3] = colour ? colour[0]! : data[p]!;
      rgb[i * 3 + 1] = colour ? colour[1]! : data[p + 1]!;
      rgb[i * 3 + 2] = colour ? colour[2]! : data[p + 2]!;
    }
  } else {
    for (let i = 0, p = 0; i < n; i++, p += channels) rgb.fill(data[p]!, i * 3, i * 3 + 3);
  }
  return { width, height, rgb };
}

/** Pillow's I / I;16 -> RGB: each value clipped to 255 and replicated. */
function clippedGrey16({ width, height, channels, data }: RawBands): RgbImage {
  const n = width * height;
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) rgb.fill(Math.min(data[i * channels]!, 255), i * 3, i * 3 + 3);
  return { width, height, rgb };
}

/** Pillow's `cmyk2rgb`: channel = clip(nk - nk * c / 255) with nk = 255 - k, in its integer form. */
function cmykToRgb({ width, height, channels, data }: RawBands): RgbImage {
  if (channels !== 4) throw new Error(`a CMYK image decoded to ${channels} bands, expected 4`);
  const n = width * height;
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const nk = 255 - data[i * 4 + 3]!;
    for (let c = 0; c < 3; c++) {
      const t = data[i * 4 + c]! * nk + 128; // MULDIV255(c, nk): a rounded c * nk / 255
      rgb[i * 3 + c] = nk - (((t >> 8) + t) >> 8);
    }
  }
  return { width, height, rgb };
}

/** The first line only: libvips repeats its complaint once per decode attempt. */
function errorMessage(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!.trim();
}
