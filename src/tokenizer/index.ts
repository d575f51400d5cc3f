/**
 * A checkpoint's tokenizer: its tokenizer.json through @huggingface/tokenizers (pure JS, the
 * Hugging Face tokenizers' own format), with BOS/EOS the way the checkpoint's tokenizer adds them,
 * decoding with or without special tokens, and the ids of InternVL's image tokens.
 */
import { readJsonObject } from '../checkpoint/json-file.ts';
import { existsSync } from 'node:fs';
import * as nodePath from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { UserError } from '../errors.ts';
import { StreamingDetokenizer } from './stream.ts';
import { eosToken, type ConversationTemplate } from '../prompt/templates.ts';

export { StreamingDetokenizer } from './stream.ts';

export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';
/** Every file a tokenizer folder may hold that belongs with it (copied along with an artifact). */
export const TOKENIZER_FILES = [TOKENIZER_FILE, TOKENIZER_CONFIG_FILE, 'special_tokens_map.json', 'added_tokens.json'] as const;

/**
 * Tokenizer classes whose fast version transformers rebuilds the post-processor for from
 * `add_bos_token` / `add_eos_token` (LlamaTokenizerFast.update_post_processor and its kin): for
 * them the flags decide, whatever tokenizer.json's post-processor says.
 */
const FLAG_DRIVEN_CLASSES = /^(Llama|CodeLlama|Gemma|Cohere|InternLM2)Tokenizer(Fast)?$/;

export interface DecodeOptions {
  /** Drop special tokens (chat() decodes with `skip_special_tokens=True`). Default false. */
  skipSpecialTokens?: boolean;
}

export class TextTokenizer {
  readonly dir: string;
  private readonly tok: Tokenizer;
  private readonly config: Record<string, unknown>;
  private readonly cleanUpSpaces: boolean;

  constructor(dir: string, tokenizerJson: object, config: Record<string, unknown>) {
    this.dir = dir;
    this.config = config;
    // transformers' default since 4.45; tokenizers.js would default to true.
    this.cleanUpSpaces = config['clean_up_tokenization_spaces'] === true;
    try {
      this.tok = new Tokenizer(tokenizerJson, config);
    } catch (e) {
      throw new UserError(`${nodePath.join(dir, TOKENIZER_FILE)}: cannot load this tokenizer (${e instanceof Error ? e.message : String(e)})`);
    }
  }

  /** Token ids of `text` with the checkpoint's BOS/EOS (added tokens are matched in the raw text first). */
  encode(text: string): number[] {
    const flags = this.bosEosFlags();
    if (!flags) return this.tok.encode(text, { add_special_tokens: true }).ids;
    const ids = this.tok.encode(text, { add_special_tokens: false }).ids;
    const bos = flags.bos ? this.namedTokenId('bos_token') : undefined;
    const eos = flags.eos ? this.namedTokenId('eos_token') : undefined;
    return [...(bos === undefined ? [] : [bos]), ...ids, ...(eos === undefined ? [] : [eos])];
  }

  /** Token ids of `text` with no BOS/EOS at all. */
  encodeRaw(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  /** Text of `ids`. Ids outside the vocabulary are skipped, as the Rust tokenizers' decode does. */
  decode(ids: readonly (number | bigint)[], o: DecodeOptions = {}): string {
    const known = ids.map(Number).filter((id) => this.tok.id_to_token(id) !== undefined);
    if (known.length === 0) return '';
    return this.tok.decode(known, { skip_special_tokens: o.skipSpecialTokens ?? false, clean_up_tokenization_spaces: this.cleanUpSpaces });
  }

  /** A streaming decoder for generated ids (see StreamingDetokenizer). */
  stream(o: DecodeOptions = {}): StreamingDetokenizer {
    return new StreamingDetokenizer((ids) => this.decode(ids, o), { cleanUpSpaces: this.cleanUpSpaces });
  }

  /** The id of a token given by its text (`convert_tokens_to_ids`), or undefined. */
  tokenId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  /** The id of `token`, or a UserError naming the tokenizer file and what needed it. */
  requireTokenId(token: string, why: string): number {
    const id = this.tokenId(token);
    if (id === undefined) throw new UserError(`${nodePath.join(this.dir, TOKENIZER_FILE)}: has no token ${JSON.stringify(token)} (${why})`);
    return id;
  }

  /** InternVL's image token ids (`<img>`, `</img>`, `<IMG_CONTEXT>`); a tokenizer without them is a UserError. */
  imageTokenIds(): { start: number; end: number; context: number } {
    const why = 'InternVL checkpoints add it to their tokenizer';
    return { start: this.requireTokenId('<img>', why), end: this.requireTokenId('</img>', why), context: this.requireTokenId('<IMG_CONTEXT>', why) };
  }

  /** The id chat() stops generation at: `convert_tokens_to_ids(template.sep.strip())`. */
  eosIdFor(template: ConversationTemplate): number {
    return this.requireTokenId(eosToken(template), `the end-of-turn token of template ${template.name}`);
  }

  /** Vocabulary size including added tokens (the highest id + 1). */
  get vocabSize(): number {
    let max = -1;
    for (const id of this.tok.get_vocab(true).values()) max = Math.max(max, id);
    return max + 1;
  }

  /** The id of the pad token tokenizer_config.json names, if any. */
  get padTokenId(): number | undefined {
    return this.namedTokenId('pad_token');
  }

  /** The id of the EOS token tokenizer_config.json names, if any (templates stop at their own, see eosToken). */
  get eosTokenId(): number | undefined {
    return this.namedTokenId('eos_token');
  }

  /** A token named in tokenizer_config.json (`bos_token`, `pad_token`...: a string or an AddedToken object). */
  private namedTokenId(key: string): number | undefined {
    const v = this.config[key];
    const content = typeof v === 'string' ? v : isObject(v) && typeof v['content'] === 'string' ? v['content'] : undefined;
    return content === undefined ? undefined : this.tokenId(content);
  }

  /** BOS/EOS from the config flags for flag-driven classes; undefined: tokenizer.json's post-processor decides. */
  private bosEosFlags(): { bos: boolean; eos: boolean } | undefined {
    const cls = this.config['tokenizer_class'];
    const addBos = this.config['add_bos_token'];
    const addEos = this.config['add_eos_token'];
    const flagDriven = typeof cls === 'string' && FLAG_DRIVEN_CLASSES.test(cls);
    if (flagDriven && (typeof addBos === 'boolean' || typeof addEos === 'boolean')) {
      // LlamaTokenizerFast's defaults: BOS on, EOS off.
      return { bos: addBos !== false, eos: addEos === true };
    }
    if (addBos === true && !this.postProcessorAddsBos()) return { bos: true, eos: addEos === true };
    return undefined;
  }

  private postProcessorAddsBos(): boolean {
    const bos = this.namedTokenId('bos_token');
    return bos !== undefined && this.tok.encode('', { add_special_tokens: true }).ids[0] === bos;
  }
}

/**
 * The tokenizer of a checkpoint folder (or any folder holding tokenizer.json, and optionally
 * tokenizer_config.json). A folder without tokenizer.json is a UserError naming it.
 */
export function loadTokenizer(dir: string): TextTokenizer {
  const file = nodePath.join(dir, TOKENIZER_FILE);
  if (!existsSync(file)) {
    const slow = existsSync(nodePath.join(dir, 'tokenizer.model')) ? ' (it has a sentencepiece tokenizer.model: save it as tokenizer.json with transformers, AutoTokenizer.from_pretrained(dir).save_pretrained(dir))' : '';
    throw new UserError(`${dir}: no ${TOKENIZER_FILE}; vlmc reads the checkpoint's tokenizer from it${slow}`);
  }
  const json = readJsonObject(file);
  // The tokenizers library refuses these; filling them in would hide a damaged file.
  if (json['added_tokens'] !== undefined && !Array.isArray(json['added_tokens'])) throw new UserError(`${file}: 'added_tokens' must be a list of token objects (got ${JSON.stringify(json['added_tokens'])?.slice(0, 40)})`);
  if (!isObject(json['model'])) throw new UserError(`${file}: 'model' must be an object (the tokenizer's vocabulary and merges); the file is damaged or not a tokenizer.json`);
  const configFile = nodePath.join(dir, TOKENIZER_CONFIG_FILE);
  const config = existsSync(configFile) ? readJsonObject(configFile) : {};
  const addedFile = nodePath.join(dir, 'added_tokens.json');
  const addedJson = existsSync(addedFile) ? readJsonObject(addedFile) : {};
  return new TextTokenizer(dir, withLoadTimeAddedTokens(json, config, addedJson), config);
}

interface AddedTokenJson { id: number; content: string; single_word: boolean; lstrip: boolean; rstrip: boolean; normalized: boolean; special: boolean }

/**
 * Tokens transformers adds at load time that tokenizer.json may lack: tokenizer_config.json's
 * `added_tokens_decoder` (with its flags) and added_tokens.json (token -> id). A token tokenizer.json
 * already has, by text or by id, keeps tokenizer.json's definition.
 */
function withLoadTimeAddedTokens(json: Record<string, unknown>, config: Record<string, unknown>, addedJson: Record<string, unknown>): Record<string, unknown> {
  const existing = Array.isArray(json['added_tokens']) ? (json['added_tokens'] as AddedTokenJson[]) : [];
  const model = isObject(json['model']) ? json['model'] : {};
  const vocab = isObject(model['vocab']) ? model['vocab'] : {};
  const taken = new Set<string>([...existing.map((t) => t.content), ...Object.keys(vocab)]);
  const takenIds = new Set<number>(existing.map((t) => t.id));
  const extra: AddedTokenJson[] = [];
  const add = (t: AddedTokenJson) => {
    if (taken.has(t.content) || takenIds.has(t.id)) return;
    taken.add(t.content);
    takenIds.add(t.id);
    extra.push(t);
  };
  const decoder = isObject(config['added_tokens_decoder']) ? config['added_tokens_decoder'] : {};
  for (const [idText, info] of Object.entries(decoder)) {
    if (!/^\d+$/.test(idText) || !isObject(info) || typeof info['content'] !== 'string') continue;
    const flag = (k: string, d: boolean) => (typeof info[k] === 'boolean' ? (info[k] as boolean) : d);
    add({ id: Number(idText), content: info['content'], single_word: flag('single_word', false), lstrip: flag('lstrip', false), rstrip: flag('rstrip', false), normalized: flag('normalized', !flag('special', false)), special: flag('special', false) });
  }
  for (const [content, id] of Object.entries(addedJson)) {
    if (typeof id === 'number' && Number.isSafeInteger(id) && id >= 0) add({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: false });
  }
  return extra.length === 0 ? json : { ...json, added_tokens: [...existing, ...extra] };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
