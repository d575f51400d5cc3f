/**
 * Reading the small JSON files of a checkpoint or artifact (config.json, tokenizer files, ...): a
 * regular file holding one JSON object, or one clear error naming the file.
 */
import { readFileSync } from 'node:fs';
import { UserError } from '../errors.ts';
import { refuseNonRegularFile } from '../fs/errors.ts';

/** The object in `file`; `error` picks the error class (CheckpointError for checkpoint files). */
export function readJsonObject(file: string, error: new (message: string) => UserError = UserError): Record<string, unknown> {
  refuseNonRegularFile(file, 'a JSON file');
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new error(`${file}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new error(`${file}: must contain a JSON object (got ${parsed === null ? 'null' : Array.isArray(parsed) ? 'an array' : typeof parsed})`);
  }
  return parsed as Record<string, unknown>;
}
