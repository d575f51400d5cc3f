/**
 * InternVL's image preprocessing, exact: an image file -> `pixel_values` [tiles, 3, S, S] as the
 * model cards' `load_image` makes them (`Image.open(f).convert('RGB')`, `dynamic_preprocess`,
 * `build_transform`), bit-identical for PNG and libjpeg-turbo-compatible JPEG decodes.
 */
import { decodeRgb } from './decode.ts';
import { normalizeTiles } from './normalize.ts';
import { resizeBicubic } from './resample.ts';
import { planTiles, resolveTiling, type CropBox } from './tiling.ts';

export interface PreprocessOptions {
  /** Tile side S (`force_image_size` / the vision config's `image_size`). */
  imageSize: number;
  /** Fewest grid tiles (`min_dynamic_patch`, default 1). */
  minNum?: number;
  /** Most grid tiles (`max_dynamic_patch`, default 12). */
  maxNum?: number;
  /** Append a whole-image thumbnail to a grid of more than one tile (`use_thumbnail`, default true). */
  useThumbnail?: boolean;
}

export interface PreprocessedImage {
  file: string;
  /** The decoded image's size. */
  width: number;
  height: number;
  grid: [cols: number, rows: number];
  /** cols * rows, plus one with the thumbnail. */
  tiles: number;
  /** [tiles, 3, S, S] float32, ImageNet-normalised; grid tiles row-major, thumbnail last. */
  pixelValues: Float32Array;
  /** [tiles, S, S, 3] uint8, the tiles before ToTensor; only with `keepU8`. */
  tilesU8?: Uint8Array;
}

export interface PreprocessCallOptions extends PreprocessOptions {
  /** Also return the uint8 tiles (`tilesU8`). */
  keepU8?: boolean;
}

/** Decodes `file` and preprocesses it; a bad file or bad options are a UserError. */
export async function preprocessImage(file: string, options: PreprocessCallOptions): Promise<PreprocessedImage> {
  resolveTiling(options); // bad options fail before any decoding work
  const { rgb, width, height } = await decodeRgb(file);
  return { ...preprocessRgb(rgb, width, height, options), file };
}

/** Preprocesses decoded RGB ([height, width, 3] uint8); pure. `file` in the result is ''. */
export function preprocessRgb(rgb: Uint8Array, width: number, height: number, options: PreprocessCallOptions): PreprocessedImage {
  const { imageSize: s } = resolveTiling(options);
  const plan = planTiles(width, height, options);
  if (rgb.length !== width * height * 3) throw new RangeError(`preprocessRgb: ${rgb.length} bytes for a ${width}x${height} RGB image`);
  const tileBytes = s * s * 3;
  const tilesU8 = new Uint8Array(plan.tiles * tileBytes);
  const [resizedWidth, resizedHeight] = plan.resizedTo;
  const resized = resizeBicubic(rgb, width, height, resizedWidth, resizedHeight);
  plan.cropBoxes.forEach((box, i) => cropInto(resized, resizedWidth, box, tilesU8.subarray(i * tileBytes, (i + 1) * tileBytes)));
  if (plan.thumbnail) tilesU8.set(resizeBicubic(rgb, width, height, s, s), plan.cropBoxes.length * tileBytes);
  const result: PreprocessedImage = { file: '', width, height, grid: plan.grid, tiles: plan.tiles, pixelValues: normalizeTiles(tilesU8, plan.tiles, s) };
  if (options.keepU8) result.tilesU8 = tilesU8;
  return result;
}

/** Copies `box` of an RGB image `width` wide into `out` (box-sized, RGB). */
function cropInto(image: Uint8Array, width: number, [left, top, right, bottom]: CropBox, out: Uint8Array): void {
  const rowBytes = (right - left) * 3;
  for (let y = top; y < bottom; y++) {
    const from = (y * width + left) * 3;
    out.set(image.subarray(from, from + rowBytes), (y - top) * rowBytes);
  }
}

export { decodeRgb, type RgbImage } from './decode.ts';
export { chooseGrid, planTiles, candidateGrids, closestGrid, type TilingOptions, type TilePlan, type CropBox } from './tiling.ts';
export { resizeBicubic, axisCoefficients } from './resample.ts';
export { normalizeTiles, normalizeValue, NORMALIZE_LUT, IMAGENET_MEAN, IMAGENET_STD } from './normalize.ts';
