/** Helpers for the validation and refusal tests and the fuzz test: edited copies of fixture checkpoints, inputs, error checks. */
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { expect } from 'vitest';
import { UserError } from '../src/errors.ts';
import { writeSafetensors, type TensorToWrite } from '../src/checkpoint/safetensors-write.ts';
import { FIXTURES } from './helpers.ts';

export const QWEN = path.join(FIXTURES, 'qwen2-tiny');

export type Json = Record<string, any>;

/** A copy of a fixture checkpoint folder whose config.json went through `edit` (which may return a replacement). */
export function editedCheckpoint(work: string, name: string, from: string, edit: (cfg: Json) => unknown = () => undefined): string {
  const dir = path.join(work, name);
  mkdirSync(path.dirname(dir), { recursive: true });
  cpSync(from, dir, { recursive: true });
  const cfgFile = path.join(dir, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as Json;
  const replaced = edit(cfg);
  writeFileSync(cfgFile, replaced === undefined ? JSON.stringify(cfg) : typeof replaced === 'string' && replaced.startsWith('RAW:') ? replaced.slice(4) : JSON.stringify(replaced));
  return dir;
}

/** Awaits `p`, expecting a UserError whose message holds every part; returns the message. */
export async function expectUserError(p: Promise<unknown> | (() => unknown), ...parts: string[]): Promise<string> {
  let error: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    error = e;
  }
  expect(error, 'expected a UserError').toBeInstanceOf(UserError);
  const message = (error as Error).message;
  for (const part of parts) expect(message).toContain(part);
  return message;
}

const i64 = (values: number[]) => new Uint8Array(BigInt64Array.from(values, (v) => BigInt(v)).buffer);
const f32 = (values: Float32Array) => new Uint8Array(values.buffer);

/** Deterministic pseudo-random floats in [-1, 1). */
export function noise(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 2 ** 32) * 2 - 1;
  }
  return out;
}

export interface InputSpec {
  tiles: number;
  size: number;
  tokensPerTile: number;
  contextId: number;
  /** Text tokens before the image tokens. */
  prefix?: number[];
  flags?: number[];
  extra?: TensorToWrite[];
  /** Replace any tensor. */
  override?: Partial<Record<'pixel_values' | 'input_ids' | 'image_flags', TensorToWrite>>;
}

/** An InternVL inputs file: tiles x 3 x size x size pixels, ids with the right number of <IMG_CONTEXT> tokens. */
export async function writeInputs(file: string, s: InputSpec): Promise<void> {
  const flags = s.flags ?? Array.from({ length: s.tiles }, () => 1);
  const flagged = flags.filter((f) => f === 1).length;
  const ids = [...(s.prefix ?? [1, 2, 3]), ...Array.from({ length: flagged * s.tokensPerTile }, () => s.contextId), 4, 5];
  const base: Record<string, TensorToWrite> = {
    pixel_values: { name: 'pixel_values', dtype: 'F32', shape: [s.tiles, 3, s.size, s.size], data: f32(noise(s.tiles * 3 * s.size * s.size, 7)) },
    input_ids: { name: 'input_ids', dtype: 'I64', shape: [1, ids.length], data: i64(ids) },
    image_flags: { name: 'image_flags', dtype: 'I64', shape: [flags.length], data: i64(flags) },
  };
  const tensors = { ...base, ...s.override };
  await writeSafetensors(file, [...Object.values(tensors), ...(s.extra ?? [])]);
}

export { i64 as i64Bytes, f32 as f32Bytes };
