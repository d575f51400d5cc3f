/**
 * InternVL's dynamic tiling (`dynamic_preprocess` / `find_closest_aspect_ratio` in
 * internvl_chat/internvl/train/dataset.py and the model cards): the image is resized, ignoring its
 * aspect ratio, to a grid of `cols x rows` square tiles of `imageSize`, the grid being the one
 * whose aspect ratio is closest to the image's, and a thumbnail of the whole image may follow.
 */
import { UserError } from '../errors.ts';

export interface TilingOptions {
  imageSize: number;
  /** Fewest tiles in the grid (default 1). */
  minNum?: number;
  /** Most tiles in the grid (default 12, the model cards' `max_num`). */
  maxNum?: number;
  /** Append a thumbnail of the whole image when the grid has more than one tile (default true). */
  useThumbnail?: boolean;
}

/** [left, top, right, bottom] in the resized image, as Pillow's `crop` takes it. */
export type CropBox = [left: number, top: number, right: number, bottom: number];

export interface TilePlan {
  grid: [cols: number, rows: number];
  /** The size the whole image is resized to: (imageSize * cols, imageSize * rows). */
  resizedTo: [width: number, height: number];
  /** One box per grid tile, row-major. */
  cropBoxes: CropBox[];
  /** Whether a thumbnail (the whole image resized to imageSize x imageSize) comes last. */
  thumbnail: boolean;
  /** Grid tiles plus the thumbnail. */
  tiles: number;
}

/**
 * Every (cols, rows) with minNum <= cols * rows <= maxNum, ordered by cols * rows. Within one
 * product the order does not matter (equal products share the tie rule's verdict), so it is simply
 * cols ascending.
 */
export function candidateGrids(minNum: number, maxNum: number): [number, number][] {
  const grids: [number, number][] = [];
  for (let n = minNum; n <= maxNum; n++) {
    for (let cols = 1; cols <= n; cols++) if (n % cols === 0) grids.push([cols, n / cols]);
  }
  return grids;
}

/**
 * `find_closest_aspect_ratio`: the candidate whose cols/rows is nearest to width/height. A later
 * candidate with exactly the same distance replaces the best only when the image has more than
 * half the pixels of that grid (`width * height > 0.5 * S * S * cols * rows`), so big images take
 * the bigger of two equally good grids and small ones keep the smaller.
 */
export function closestGrid(width: number, height: number, imageSize: number, candidates: readonly (readonly [number, number])[]): [number, number] {
  const aspect = width / height;
  const area = width * height;
  let bestDiff = Infinity;
  let best: [number, number] = [1, 1];
  for (const [cols, rows] of candidates) {
    const diff = Math.abs(aspect - cols / rows);
    if (diff < bestDiff) {
      bestDiff = diff;
      best = [cols, rows];
    } else if (diff === bestDiff && area > 0.5 * imageSize * imageSize * cols * rows) {
      best = [cols, rows];
    }
  }
  return best;
}

/** The grid `dynamic_preprocess` picks for a `width` x `height` image. */
export function chooseGrid(width: number, height: number, options: TilingOptions): [cols: number, rows: number] {
  const { imageSize, minNum, maxNum } = resolveTiling(options);
  checkImageSize(width, height);
  return closestGrid(width, height, imageSize, candidateGrids(minNum, maxNum));
}

/** Grid, resize target, crop boxes and thumbnail flag for a `width` x `height` image. */
export function planTiles(width: number, height: number, options: TilingOptions): TilePlan {
  const { imageSize: s, useThumbnail } = resolveTiling(options);
  const [cols, rows] = chooseGrid(width, height, options);
  const cropBoxes: CropBox[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) cropBoxes.push([c * s, r * s, (c + 1) * s, (r + 1) * s]);
  }
  const thumbnail = useThumbnail && cols * rows !== 1;
  return { grid: [cols, rows], resizedTo: [s * cols, s * rows], cropBoxes, thumbnail, tiles: cols * rows + (thumbnail ? 1 : 0) };
}

/** Options with defaults applied, checked (the official code would silently fall back to 1x1). */
/**
 * Most tiles per image: far above released configs (12 to 40), low enough that a typo such as
 * `max_dynamic_patch: 1e9` is a message instead of a grid search that never ends.
 */
export const MAX_TILES = 256;

export function resolveTiling(options: TilingOptions): Required<TilingOptions> {
  const resolved = { imageSize: options.imageSize, minNum: options.minNum ?? 1, maxNum: options.maxNum ?? 12, useThumbnail: options.useThumbnail ?? true };
  for (const key of ['imageSize', 'minNum', 'maxNum'] as const) {
    const v = resolved[key];
    if (!Number.isInteger(v) || v < 1) throw new UserError(`preprocess: ${key} must be a positive integer, got ${v}`);
  }
  if (resolved.maxNum > MAX_TILES) throw new UserError(`preprocess: maxNum must be at most ${MAX_TILES}, got ${resolved.maxNum}`);
  if (resolved.minNum > resolved.maxNum) {
    throw new UserError(`preprocess: minNum (${resolved.minNum}) is greater than maxNum (${resolved.maxNum})`);
  }
  return resolved;
}

function checkImageSize(width: number, height: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new UserError(`preprocess: image size must be positive integers, got ${width}x${height}`);
  }
}
