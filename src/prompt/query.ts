/**
 * The prompt InternVLChatModel.chat() builds (modeling_internvl_chat.py): the question with its
 * `<image>` placeholder, the conversation template with the history, and one image token block per
 * image replacing the first `<image>` left in the whole query.
 */
import { eosToken, getPrompt, pyStrip, type ConversationTemplate, type Message } from './templates.ts';

export const IMAGE_PLACEHOLDER = '<image>';
export const IMG_START_TOKEN = '<img>';
export const IMG_END_TOKEN = '</img>';
export const IMG_CONTEXT_TOKEN = '<IMG_CONTEXT>';

/** Earlier turns, as chat() takes them: [question, answer] pairs, oldest first. */
export type History = readonly (readonly [question: string, answer: string])[];

export interface QueryOptions {
  template: ConversationTemplate;
  /** The model's system message (`config.system_message`); default: the template's own. */
  systemMessage?: string;
  question: string;
  history?: History | null;
  /**
   * Tiles per image, in the order their blocks are inserted; chat()'s `num_patches_list`.
   * Empty (or omitted) for a text-only question.
   */
  numPatchesList?: readonly number[];
  /** `<IMG_CONTEXT>` tokens per tile (`num_image_token`: (image_size / patch_size)^2 * downsample_ratio^2). */
  numImageToken: number;
}

export interface Query {
  /** The question as chat() stores it in the history (after the `<image>\n` prefix rule). */
  question: string;
  /** `template.get_prompt()`, `<image>` placeholders still in it. */
  prompt: string;
  /** The string passed to the tokenizer. */
  query: string;
  /** How many image blocks replaced a placeholder (fewer than images when placeholders run out). */
  imageBlocks: number;
}

export function buildQuery(o: QueryOptions): Query {
  const patches = o.numPatchesList ?? [];
  const question = prefixImagePlaceholder(o.question, patches.length > 0, o.history ?? null);
  const messages: Message[] = [];
  for (const [q, a] of o.history ?? []) messages.push([o.template.roles[0], q], [o.template.roles[1], a]);
  messages.push([o.template.roles[0], question], [o.template.roles[1], null]);
  const prompt = getPrompt(o.template, o.systemMessage ?? o.template.systemMessage, messages);
  let query = prompt;
  let imageBlocks = 0;
  for (const tiles of patches) {
    const next = replaceFirst(query, IMAGE_PLACEHOLDER, imageBlock(o.numImageToken * tiles));
    if (next !== query) imageBlocks++;
    query = next;
  }
  return { question, prompt, query, imageBlocks };
}

/** `<img>` + `<IMG_CONTEXT>` x count + `</img>`. */
export function imageBlock(contextTokens: number): string {
  return IMG_START_TOKEN + IMG_CONTEXT_TOKEN.repeat(contextTokens) + IMG_END_TOKEN;
}

/** chat() prepends `<image>\n` only to a first question (no history) with images and no placeholder of its own. */
function prefixImagePlaceholder(question: string, hasImages: boolean, history: History | null): string {
  return history === null && hasImages && !question.includes(IMAGE_PLACEHOLDER) ? `${IMAGE_PLACEHOLDER}\n${question}` : question;
}

/** Python's `str.replace(old, new, 1)` (String.replace would read `$` patterns in `replacement`). */
function replaceFirst(text: string, search: string, replacement: string): string {
  const at = text.indexOf(search);
  return at < 0 ? text : text.slice(0, at) + replacement + text.slice(at + search.length);
}

/** What chat() returns for a decoded answer: the text before the first end-of-turn token, stripped. */
export function chatResponse(decoded: string, template: ConversationTemplate): string {
  return pyStrip(decoded.split(eosToken(template))[0]!);
}
