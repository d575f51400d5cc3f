/**
 * Streaming detokenization: for any id sequence the pieces concatenate to the full decode, and
 * each piece only ever extends what was emitted (property tests with fast-check).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { FIXTURES } from './helpers.ts';
import { TextTokenizer } from '../src/index.ts';

const QWEN = path.join(FIXTURES, 'prompts', 'tokenizers', 'internvl2_5-qwen2_5');
const qwenJson = JSON.parse(readFileSync(path.join(QWEN, 'tokenizer.json'), 'utf8'));
const qwenConfig = JSON.parse(readFileSync(path.join(QWEN, 'tokenizer_config.json'), 'utf8'));

function streamed(tok: TextTokenizer, ids: number[], skipSpecialTokens: boolean): string[] {
  const s = tok.stream({ skipSpecialTokens });
  const pieces = ids.map((id) => s.push(id));
  pieces.push(s.flush());
  return pieces;
}

function checkStreaming(tok: TextTokenizer, idArb: fc.Arbitrary<number>, runs = 300): void {
  fc.assert(
    fc.property(fc.array(idArb, { maxLength: 40 }), fc.boolean(), (ids, skip) => {
      const pieces = streamed(tok, ids, skip);
      expect(pieces.join('')).toBe(tok.decode(ids, { skipSpecialTokens: skip }));
      // Pieces are only appended, so equality means no emitted text (a U+FFFD standing for a cut
      // character included) was ever rewritten; and no piece holds half a surrogate pair.
      for (const p of pieces) expect(p).toBe(Buffer.from(p, 'utf8').toString('utf8'));
    }),
    { numRuns: Number(process.env.STREAM_RUNS ?? runs), seed: Number(process.env.STREAM_SEED ?? 7) },
  );
}

/** Byte tokens cutting UTF-8 characters, ordinary tokens, specials (special and not), and clean-up patterns. */
const qwenIds = fc.oneof(
  fc.integer({ min: 0, max: 255 }),
  fc.integer({ min: 0, max: 151642 }),
  fc.integer({ min: 151643, max: 151673 }),
  fc.constantFrom(13, 11, 30, 0, 220, 364, 82, 308, 944, 5394, 145080, 172, 253, 247, 224),
);

describe('StreamingDetokenizer', () => {
  it('byte-level BPE (Qwen2.5): streaming == full decode, with and without special tokens', () => {
    checkStreaming(new TextTokenizer(QWEN, qwenJson, qwenConfig), qwenIds);
  });

  it('with clean_up_tokenization_spaces: a space a later token rewrites is held back', () => {
    const tok = new TextTokenizer(QWEN, qwenJson, { ...qwenConfig, clean_up_tokenization_spaces: true });
    checkStreaming(tok, qwenIds);
    // "Yes" " ," -> "Yes,": the space is not emitted before the comma arrives.
    const ids = tok.encodeRaw("Yes , it 's");
    const pieces = streamed(tok, ids, true);
    expect(pieces.join('')).toBe("Yes, it's");
  });

  it('SentencePiece-style decoders (Replace, ByteFallback, Fuse, Strip): the first token\'s stripped space stays consistent', () => {
    const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2, '▁a': 3, b: 4, '▁': 5, '<0xF0>': 6, '<0x9F>': 7, '<0x99>': 8, '<0x82>': 9, '▁c': 10, '<0xE5>': 11 };
    const json = {
      version: '1.0',
      added_tokens: [1, 2].map((id) => ({ id, content: id === 1 ? '<s>' : '</s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: {
        type: 'Sequence',
        decoders: [
          { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
          { type: 'ByteFallback' },
          { type: 'Fuse' },
          { type: 'Strip', content: ' ', start: 1, stop: 0 },
        ],
      },
      model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, vocab, merges: [] },
    };
    const tok = new TextTokenizer('sp', json, { tokenizer_class: 'LlamaTokenizer', bos_token: '<s>', eos_token: '</s>' });
    expect(tok.decode([3, 4, 10])).toBe('ab c');
    expect(tok.decode([6, 7, 8, 9])).toBe('🙂');
    checkStreaming(tok, fc.integer({ min: 0, max: 11 }), 500);
    expect(streamed(tok, [2, 10, 3], true).join('')).toBe(tok.decode([2, 10, 3], { skipSpecialTokens: true }));
  });
});
