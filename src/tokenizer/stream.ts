/**
 * Incremental detokenization for generation: tokens arrive one at a time and text is emitted as
 * soon as no later token can change it, so the concatenated pieces equal the full decode.
 *
 * Each step decodes the whole sequence and emits what grew past the text already emitted, minus a
 * suffix that may still change:
 * - trailing U+FFFD: the byte-level decoders write one for a UTF-8 character whose remaining bytes
 *   are still to come (a character is never split);
 * - with `clean_up_tokenization_spaces`, the start of a pattern the clean-up rewrites (" ." " n't"
 *   " 's" ...), whose space a following token would remove.
 */
const CLEANUP_PATTERNS = [' .', ' ?', ' !', ' ,', " ' ", " n't", " 'm", " 's", " 've", " 're"];

export class StreamingDetokenizer {
  private readonly ids: number[] = [];
  private emitted = '';
  private readonly decode: (ids: readonly number[]) => string;
  private readonly cleanUpSpaces: boolean;

  constructor(decode: (ids: readonly number[]) => string, o: { cleanUpSpaces?: boolean } = {}) {
    this.decode = decode;
    this.cleanUpSpaces = o.cleanUpSpaces ?? false;
  }

  /** Add one token; returns the text that became final ('' while it is still open). */
  push(id: number | bigint): string {
    this.ids.push(Number(id));
    const full = this.decode(this.ids);
    const stable = full.length - this.unstableSuffixLength(full);
    return this.advanceTo(full, stable);
  }

  /** No more tokens: returns the rest, after which `text` equals the full decode. */
  flush(): string {
    const full = this.decode(this.ids);
    return this.advanceTo(full, full.length);
  }

  /** Everything emitted so far. */
  get text(): string {
    return this.emitted;
  }

  /** The tokens pushed so far. */
  get tokens(): readonly number[] {
    return this.ids;
  }

  private advanceTo(full: string, end: number): string {
    // Emitted text is never taken back; a decoder that rewrote it is caught by the tests against full decodes.
    if (end <= this.emitted.length || !full.startsWith(this.emitted)) return '';
    const piece = full.slice(this.emitted.length, end);
    this.emitted += piece;
    return piece;
  }

  private unstableSuffixLength(text: string): number {
    let n = 0;
    while (n < text.length && text.charCodeAt(text.length - 1 - n) === 0xfffd) n++;
    if (n > 0 || !this.cleanUpSpaces) return n;
    let longest = 0;
    for (const p of CLEANUP_PATTERNS) {
      for (let k = p.length - 1; k > longest; k--) if (text.endsWith(p.slice(0, k))) longest = k;
    }
    return longest;
  }
}
