/**
 * The one GIF detail libvips and Pillow disagree on: for the first frame, Pillow fills the canvas
 * with the transparent palette index and `convert('RGB')` shows that index's palette colour, where
 * libvips leaves those pixels blank (alpha 0). This reads that colour from the file's blocks
 * (GIF89a: header, logical screen, global colour table, extensions, first image descriptor).
 */

/** RGB of the first frame's transparent index, or undefined when it has none. */
export function gifTransparentColour(bytes: Uint8Array): [number, number, number] | undefined {
  const ascii = (from: number, to: number) => String.fromCharCode(...bytes.subarray(from, to));
  if (bytes.length < 13 || !/^GIF8[79]a$/.test(ascii(0, 6))) return undefined;
  const globalTable = colourTable(bytes, 13, bytes[10]!);
  let p = globalTable.end;
  let transparent: number | undefined;
  while (p < bytes.length) {
    const introducer = bytes[p]!;
    if (introducer === 0x21) {
      const label = bytes[p + 1];
      // Graphic control extension: size 4, packed flags (bit 0: transparency), delay, index.
      if (label === 0xf9 && bytes[p + 2] === 4 && p + 6 < bytes.length) transparent = bytes[p + 3]! & 1 ? bytes[p + 6] : undefined;
      p = skipSubBlocks(bytes, p + 2);
    } else if (introducer === 0x2c) {
      if (transparent === undefined || p + 10 > bytes.length) return undefined;
      const localTable = colourTable(bytes, p + 10, bytes[p + 9]!);
      const table = localTable.colours ?? globalTable.colours;
      if (!table || transparent * 3 + 2 >= table.length) return undefined;
      return [table[transparent * 3]!, table[transparent * 3 + 1]!, table[transparent * 3 + 2]!];
    } else {
      return undefined; // trailer or garbage before any image
    }
  }
  return undefined;
}

/** A colour table announced by `packed` (bit 7: present, bits 0-2: size) starting at `at`. */
function colourTable(bytes: Uint8Array, at: number, packed: number): { colours?: Uint8Array; end: number } {
  if (!(packed & 0x80)) return { end: at };
  const length = 3 * (2 << (packed & 7));
  return { colours: bytes.subarray(at, Math.min(at + length, bytes.length)), end: at + length };
}

/** Skips a chain of data sub-blocks (length byte, data, ..., 0) starting at `at`. */
function skipSubBlocks(bytes: Uint8Array, at: number): number {
  let p = at;
  while (p < bytes.length && bytes[p] !== 0) p += bytes[p]! + 1;
  return p + 1;
}
