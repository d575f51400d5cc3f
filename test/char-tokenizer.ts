/** A tokenizer.json for the fixture models, which ship none. */
import { TEMPLATES } from '../src/prompt/templates.ts';

/** Where a fixture's special tokens are: its own <img> / </img> / <IMG_CONTEXT> ids, and free ids for the template's turn markers. */
export interface SpecialIds {
  imStart: number;
  imEnd: number;
  img: number;
  imgEnd: number;
  context: number;
}

/** qwen2-tiny's ids. */
const QWEN2_TINY: SpecialIds = { imStart: 148, imEnd: 149, img: 151, imgEnd: 152, context: 153 };

/** A WordLevel tokenizer over single characters; specials at the fixture's ids (qwen2-tiny's by default). */
export function charTokenizer(ids: SpecialIds = QWEN2_TINY): object {
  // ASCII and the characters of the template's default (Chinese) system message.
  const chars = [...new Set([...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n.,?!:;\'"-()', ...TEMPLATES['Hermes-2']!.systemMessage])];
  if (chars.length + 2 > Math.min(...Object.values(ids))) throw new Error('the characters collide with the special token ids');
  const vocab: Record<string, number> = { '[UNK]': 0, '<|endoftext|>': 1 };
  chars.forEach((c, i) => (vocab[c] = 2 + i));
  const specials: [string, number][] = [['<|im_start|>', ids.imStart], ['<|im_end|>', ids.imEnd], ['<img>', ids.img], ['</img>', ids.imgEnd], ['<IMG_CONTEXT>', ids.context]];
  for (const [t, id] of specials) vocab[t] = id;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map(([content, id]) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: { type: 'Split', pattern: { Regex: '.|\\n' }, behavior: 'Isolated', invert: false },
    post_processor: null,
    decoder: null,
    model: { type: 'WordLevel', vocab, unk_token: '[UNK]' },
  };
}
