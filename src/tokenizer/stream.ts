/**
 * Incremental detokenization for generation: tokens arrive one at a time and text is emitted as
 * soon as no later token can change it, so the concatenated pieces equal the full decode.
 *
 * Text that may still change:
 * - a trailing U+FFFD: the byte-level decoders write one for a UTF-8 character whose remaining
 *   bytes are still to come (a character is never split);
 * - with `clean_up_tokenization_spaces`, the start of a pattern the clean-up rewrites (" ." " n't"
 *   " 's" ...), whose space a following token would remove.
 *
 * Without clean-up only a short window is decoded per token (as the Rust tokenizers'
 * DecodeStream does): the tokens since the last emission plus the chunk before them, whose text is
 * subtracted again. The chunk in front absorbs what decoders do to a first token (Strip and
 * Metaspace drop its leading space). With clean-up, whose patterns span tokens, the whole sequence
 * is decoded each time.
 */
const CLEANUP_PATTERNS = [' .', ' ?', ' !', ' ,', " ' ", " n't", " 'm", " 's", " 've", " 're"];

export class StreamingDetokenizer {
  private readonly ids: number[] = [];
  private emitted = '';
  /** Window start: ids[prefixStart, readIndex) is the chunk whose text `prefixText` is. */
  private prefixStart = 0;
  private readIndex = 0;
  private prefixText = '';
  private readonly decode: (ids: readonly number[]) => string;
  private readonly cleanUpSpaces: boolean;

  constructor(decode: (ids: readonly number[]) => string, o: { cleanUpSpaces?: boolean } = {}) {
    this.decode = decode;
    this.cleanUpSpaces = o.cleanUpSpaces ?? false;
  }

  /** Add one token; returns the text that became final ('' while it is still open). */
  push(id: number | bigint): string {
    this.ids.push(Number(id));
    return this.cleanUpSpaces ? this.pushFull() : this.pushWindowed();
  }

  /** No more tokens: returns the rest, after which `text` equals the full decode. */
  flush(): string {
    const full = this.decode(this.ids);
    this.readIndex = this.prefixStart = this.ids.length;
    this.prefixText = '';
    return this.append(full.startsWith(this.emitted) ? full.slice(this.emitted.length) : '');
  }

  /** Everything emitted so far. */
  get text(): string {
    return this.emitted;
  }

  /** The tokens pushed so far. */
  get tokens(): readonly number[] {
    return this.ids;
  }

  private pushWindowed(): string {
    const window = this.decode(this.ids.slice(this.prefixStart));
    if (window.length <= this.prefixText.length || !window.startsWith(this.prefixText) || window.endsWith('\ufffd')) return '';
    const piece = window.slice(this.prefixText.length);
    const chunk = this.ids.slice(this.readIndex);
    const chunkText = this.decode(chunk);
    // A chunk with no text of its own (skipped special tokens) cannot stand in front of the next one.
    if (chunkText !== '') {
      this.prefixStart = this.readIndex;
      this.prefixText = chunkText;
    } else this.prefixText = window;
    this.readIndex = this.ids.length;
    return this.append(piece);
  }

  private pushFull(): string {
    const full = this.decode(this.ids);
    const end = full.length - this.cleanupHoldback(full);
    if (end <= this.emitted.length || !full.startsWith(this.emitted)) return '';
    return this.append(full.slice(this.emitted.length, end));
  }

  private append(piece: string): string {
    this.emitted += piece;
    return piece;
  }

  private cleanupHoldback(text: string): number {
    let n = 0;
    while (n < text.length && text.charCodeAt(text.length - 1 - n) === 0xfffd) n++;
    if (n > 0) return n;
    let longest = 0;
    for (const p of CLEANUP_PATTERNS) {
      for (let k = p.length - 1; k > longest; k--) if (text.endsWith(p.slice(0, k))) longest = k;
    }
    return longest;
  }
}
