/** A tokenizer.json for the fixture models, which ship none. */
import { TEMPLATES } from '../src/prompt/templates.ts';

/** qwen2-tiny's special tokens and their ids. */
const QWEN2_TINY: [string, number][] = [['<|im_start|>', 148], ['<|im_end|>', 149], ['<img>', 151], ['</img>', 152], ['<IMG_CONTEXT>', 153]];

/**
 * A WordLevel tokenizer over single characters, with `specials` (token, id) as added tokens:
 * qwen2-tiny's by default; `specialsFor` makes them for another fixture checkpoint.
 */
export function charTokenizer(specials: [string, number][] = QWEN2_TINY): object {
  // ASCII and the characters of the templates' default (Chinese) system message.
  const chars = [...new Set([...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n.,?!:;\'"-()', ...TEMPLATES['Hermes-2']!.systemMessage])];
  if (chars.length + 2 > Math.min(...specials.map(([, id]) => id))) throw new Error('the characters collide with the special token ids');
  const vocab: Record<string, number> = { '[UNK]': 0, '<|endoftext|>': 1 };
  chars.forEach((c, i) => (vocab[c] = 2 + i));
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

/**
 * The specials of a checkpoint of vocabulary `vocab`: its own image tokens (added_tokens.json), and
 * the turn markers its conversation template writes (`<|im_start|>`, `<|end|>`, ...) at the
 * highest ids no image token takes.
 */
export function specialsFor(template: string, imageTokens: Record<string, number>, vocab: number): [string, number][] {
  const t = TEMPLATES[template];
  if (!t) throw new Error(`no template ${template}`);
  const markers = [...new Set(JSON.stringify(t).match(/<\|[^|"]+\|>/g) ?? [])];
  const taken = new Set(Object.values(imageTokens));
  const free: number[] = [];
  for (let id = vocab - 1; free.length < markers.length; id--) if (!taken.has(id)) free.push(id);
  return [...Object.entries(imageTokens), ...markers.map((m, i) => [m, free[i]!] as [string, number])];
}
