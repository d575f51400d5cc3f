/**
 * Special-token ids from a checkpoint folder's tokenizer files, without loading a tokenizer:
 * the image-context placeholder id is all the compiled graph needs from them.
 */
import { readJsonObject } from './json-file.ts';
import { existsSync } from 'node:fs';
import * as nodePath from 'node:path';
import { CheckpointError } from '../errors.ts';

export const IMG_CONTEXT_TOKEN = '<IMG_CONTEXT>';

/**
 * The id of `token`, from `added_tokens.json` (token -> id) if it lists it, else from
 * `tokenizer_config.json`'s `added_tokens_decoder` (id -> { content }), else from `tokenizer.json`'s
 * `added_tokens` ([{ id, content }]; transformers 5 saves write only that). Absent files or an absent
 * token give undefined; malformed files are a CheckpointError naming the file.
 */
export function findSpecialTokenId(dir: string, token: string = IMG_CONTEXT_TOKEN): number | undefined {
  return idFromAddedTokens(dir, token) ?? idFromTokenizerConfig(dir, token) ?? idFromTokenizerJson(dir, token);
}

function idFromTokenizerJson(dir: string, token: string): number | undefined {
  const path = nodePath.join(dir, 'tokenizer.json');
  const added = readJsonObjectIfPresent(path)?.['added_tokens'];
  if (added === undefined) return undefined;
  if (!Array.isArray(added)) throw new CheckpointError(`${path}: "added_tokens" must be a list`);
  const entry = added.find((t): t is Record<string, unknown> => isObject(t) && t['content'] === token);
  if (!entry) return undefined;
  if (!isTokenId(entry['id'])) throw new CheckpointError(`${path}: added_tokens id of "${token}" must be a non-negative integer, got ${JSON.stringify(entry['id'])}`);
  return entry['id'];
}

/** An <IMG_CONTEXT> id must be a token of the model, or no image can ever be spliced. */
export function checkContextTokenId(id: number, vocab: number, source: string): void {
  if (!Number.isSafeInteger(id) || id < 0 || id >= vocab) {
    throw new CheckpointError(`${source}: the <IMG_CONTEXT> token id ${id} is not a token of the model (ids are whole numbers from 0 to ${vocab - 1}, vocab_size ${vocab})`);
  }
}

function idFromAddedTokens(dir: string, token: string): number | undefined {
  const path = nodePath.join(dir, 'added_tokens.json');
  const map = readJsonObjectIfPresent(path);
  if (!map || !Object.hasOwn(map, token)) return undefined;
  const id = map[token];
  if (!isTokenId(id)) throw new CheckpointError(`${path}: id of "${token}" must be a non-negative integer, got ${JSON.stringify(id)}`);
  return id;
}

function idFromTokenizerConfig(dir: string, token: string): number | undefined {
  const path = nodePath.join(dir, 'tokenizer_config.json');
  const config = readJsonObjectIfPresent(path);
  const decoder = config?.['added_tokens_decoder'];
  if (decoder === undefined) return undefined;
  if (!isObject(decoder)) throw new CheckpointError(`${path}: "added_tokens_decoder" must be an object`);
  for (const [idText, info] of Object.entries(decoder)) {
    if (!isObject(info) || info['content'] !== token) continue;
    const id = Number(idText);
    if (!/^\d+$/.test(idText) || !isTokenId(id)) {
      throw new CheckpointError(`${path}: added_tokens_decoder key "${idText}" for "${token}" is not a token id`);
    }
    return id;
  }
  return undefined;
}

function readJsonObjectIfPresent(path: string): Record<string, unknown> | undefined {
  return existsSync(path) ? readJsonObject(path, CheckpointError) : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isTokenId(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
