/**
 * Reading the fields of a config.json (Hugging Face's, InternVL's): the config type, bounds that
 * keep a typo from becoming a hang, and one reader per kind of field, each naming the field in its
 * message. Shared by the LLM, RoPE, vision and composite config readers and the DSL option checks.
 */
import { UserError } from '../errors.ts';

export type HFConfig = Record<string, unknown>;

/**
 * Cheap upper bounds, checked before anything is built: far above every released model, low
 * enough that a typo (1e9 layers, a hidden size of 1e9) is a message instead of a hang or V8
 * running out of memory.
 */
export const LIMITS = {
  layers: 1024,
  hidden: 65536,
  heads: 1024,
  intermediate: 1 << 20,
  vocab: 1 << 22,
  headDim: 4096,
  positions: 1 << 24,
  imageSize: 8192,
  experts: 4096,
} as const;

/** A field that must be present and numeric. */
export function num(cfg: HFConfig, key: string, where: string): number {
  const v = cfg[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new UserError(`${where}: field '${key}' must be a number (got ${JSON.stringify(v)})`);
  return v;
}

export function optNum(cfg: HFConfig, key: string, fallback: number, where: string): number {
  return cfg[key] === undefined || cfg[key] === null ? fallback : num(cfg, key, where);
}

/** A field that must be a whole number in [min, max] (a count or a size): never truncated. */
export function int(cfg: HFConfig, key: string, where: string, max: number, min = 1): number {
  const v = num(cfg, key, where);
  if (!Number.isInteger(v)) throw new UserError(`${where}: field '${key}' must be a whole number (got ${v})`);
  if (v < min || v > max) throw new UserError(`${where}: field '${key}' must be between ${min} and ${max} (got ${v})`);
  return v;
}

export function optInt(cfg: HFConfig, key: string, fallback: number, where: string, max: number, min = 1): number {
  return cfg[key] === undefined || cfg[key] === null ? fallback : int(cfg, key, where, max, min);
}

/** A positive finite number (eps, theta, factors). */
export function positive(cfg: HFConfig, key: string, fallback: number, where: string): number {
  const v = optNum(cfg, key, fallback, where);
  if (!(v > 0)) throw new UserError(`${where}: field '${key}' must be greater than 0 (got ${v})`);
  return v;
}

export function optBool(cfg: HFConfig, key: string, fallback: boolean, where?: string): boolean {
  const v = cfg[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v === 'boolean') return v;
  if (where !== undefined) throw new UserError(`${where}: field '${key}' must be true or false (got ${JSON.stringify(v)})`);
  return fallback;
}
