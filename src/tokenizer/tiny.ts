/**
 * A tiny, deterministic tokenizer for the random demo checkpoint (`vlmc demo`), made by code: one
 * token per printable ASCII character and newline (a BPE without merges, so @huggingface/tokenizers
 * loads it like any tokenizer.json), plus the special tokens InternVL's chat template and image
 * splice use: `<|im_start|>`, `<|im_end|>` (Hermes-2 / internvl2_5), `<|endoftext|>` (padding),
 * `<img>`, `</img>` and `<IMG_CONTEXT>`. Any other character is `<unk>`.
 */
import { UserError } from '../errors.ts';

/** Ids 1..95: ' '..'~'; 96: newline. */
const CHARACTERS = [...Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i)), '\n'];

/** The special tokens, in id order around <IMG_CONTEXT> (three before it, two after), as InternVL2 tokenizers order them. */
const SPECIALS_BEFORE = ['<|endoftext|>', '<img>', '</img>'] as const;
const SPECIALS_AFTER = ['<|im_start|>', '<|im_end|>'] as const;

export interface TinyTokenizerFiles {
  'tokenizer.json': string;
  'tokenizer_config.json': string;
}

/** tokenizer.json and tokenizer_config.json for a model with `vocab` ids whose `<IMG_CONTEXT>` is `imgContextTokenId`. */
export function tinyTokenizerFiles(vocab: number, imgContextTokenId: number): TinyTokenizerFiles {
  const first = imgContextTokenId - SPECIALS_BEFORE.length;
  if (first <= CHARACTERS.length || imgContextTokenId + SPECIALS_AFTER.length >= vocab) {
    throw new UserError(`the demo tokenizer needs <IMG_CONTEXT> between ${CHARACTERS.length + SPECIALS_BEFORE.length + 1} and ${vocab - SPECIALS_AFTER.length - 1} (vocab ${vocab}); the graph has ${imgContextTokenId}`);
  }
  const model: Record<string, number> = { '<unk>': 0 };
  CHARACTERS.forEach((c, i) => (model[c] = i + 1));
  const specials = [...SPECIALS_BEFORE, '<IMG_CONTEXT>', ...SPECIALS_AFTER].map((content, i) => ({ id: first + i, content }));
  for (const t of specials) model[t.content] = t.id;
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((t) => ({ ...t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: 'Fuse' },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: model, merges: [] },
  };
  const config = { tokenizer_class: 'PreTrainedTokenizerFast', bos_token: null, eos_token: '<|im_end|>', pad_token: '<|endoftext|>', unk_token: '<unk>', add_bos_token: false, clean_up_tokenization_spaces: false };
  return { 'tokenizer.json': `${JSON.stringify(tokenizer, null, 2)}\n`, 'tokenizer_config.json': `${JSON.stringify(config, null, 2)}\n` };
}
