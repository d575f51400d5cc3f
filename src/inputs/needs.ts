/**
 * What `vlmc generate` and `vlmc train` will need from the files a split or training artifact
 * carries, checked when it is built: a tokenizer.json, a known conversation template, and an
 * `<IMG_CONTEXT>` id that agrees with the tokenizer. What can never work (an unknown template, a
 * graph that splices another id than the tokenizer writes) is refused; what is missing (no
 * tokenizer, no template: ids can still be fed directly) is a warning saying what will not work.
 */
import { existsSync } from 'node:fs';
import * as nodePath from 'node:path';
import { UserError } from '../errors.ts';
import { IMG_CONTEXT_TOKEN, findSpecialTokenId } from '../checkpoint/tokens.ts';
import { TEMPLATE_NAMES } from '../prompt/templates.ts';
import { TOKENIZER_FILE, loadTokenizer } from '../tokenizer/index.ts';

export interface RequestFiles {
  /** `--split` (for vlmc generate) or `--train` (for vlmc train). */
  purpose: '--split' | '--train';
  /** Where the tokenizer files come from (the unified checkpoint, or Path B's LLM folder). */
  tokenizerDir?: string;
  /** The template the artifact's config.json will name, and where that comes from; undefined name: none. */
  template: { name: unknown; where: string };
  /** The `<IMG_CONTEXT>` id the graph splices, and who set it. */
  imgContextTokenId?: number;
  imgContextSource?: string;
}

export function checkRequestFiles(r: RequestFiles, warn: (message: string) => void = () => {}): void {
  // Warnings are told only once nothing is refused: a refusal is one message.
  const warnings: string[] = [];
  requestFileProblems(r, (m) => warnings.push(m));
  for (const w of warnings) warn(w);
}

function requestFileProblems(r: RequestFiles, warn: (message: string) => void): void {
  const uses = r.purpose === '--split' ? 'vlmc generate --prompt (and vlmc inputs on the artifact)' : 'vlmc train';
  const { name, where } = r.template;
  if (name !== undefined && (typeof name !== 'string' || !TEMPLATE_NAMES.includes(name))) {
    throw new UserError(`${where}: template ${JSON.stringify(name)} is not a conversation template vlmc knows (${TEMPLATE_NAMES.join(', ')}), so ${uses} could never build a prompt; set "template" to one of them`);
  }
  if (name === undefined) warn(`${where} names no conversation template: ${uses} will need ${r.purpose === '--split' ? '--template <name>' : 'a "template" in the artifact\'s config.json'} (${TEMPLATE_NAMES.join(', ')})`);
  const dir = r.tokenizerDir;
  if (!dir || !existsSync(nodePath.join(dir, TOKENIZER_FILE))) {
    const what = r.purpose === '--split' ? 'vlmc generate will print token ids, and requests from --prompt / --image cannot be built' : 'vlmc train cannot tokenize its data (vlmc run --graph train still runs the artifact)';
    warn(`${dir ?? 'the build'} has no ${TOKENIZER_FILE}: ${what}; put the checkpoint's tokenizer.json there`);
    const filesId = dir ? findSpecialTokenId(dir) : undefined;
    if (filesId !== undefined) checkSameContextId(r, filesId, `${dir} (added_tokens.json / tokenizer_config.json)`);
    return;
  }
  const file = nodePath.join(dir, TOKENIZER_FILE);
  const tokenizerId = loadTokenizer(dir).tokenId(IMG_CONTEXT_TOKEN);
  if (tokenizerId === undefined) {
    warn(`${file} has no ${IMG_CONTEXT_TOKEN} token: requests with images cannot be built from it (text-only ones can)`);
    return;
  }
  checkSameContextId(r, tokenizerId, file);
}

/** The graph splices at one id; a tokenizer that writes another would never place an image. */
function checkSameContextId(r: RequestFiles, tokenizerId: number, file: string): void {
  if (r.imgContextTokenId === undefined || r.imgContextTokenId === tokenizerId) return;
  throw new UserError(`${r.imgContextSource ?? 'the graph'}: <IMG_CONTEXT> id ${r.imgContextTokenId}, but ${file} has ${IMG_CONTEXT_TOKEN} as ${tokenizerId}; prompts would carry ${tokenizerId} where the graph splices ${r.imgContextTokenId}, so no image would ever reach the model. Drop the flag or fix the tokenizer files`);
}
