/**
 * What building a request needs from a model folder: the InternVLChatConfig fields of config.json
 * that chat() and load_image() read. The folder may be a checkpoint, an artifact that carries
 * config.json (or a split artifact's pipeline.json, which records the same facts), or a folder
 * holding just config.json and the tokenizer files.
 */
import { readJsonObject } from '../checkpoint/json-file.ts';
import { existsSync } from 'node:fs';
import * as nodePath from 'node:path';
import { UserError } from '../errors.ts';
import { MAX_TILES } from '../preprocess/tiling.ts';
import { getTemplate, type ConversationTemplate } from '../prompt/templates.ts';
import { MANIFEST_FILE, PIPELINE_FILE, readManifestObject } from '../artifact/format.ts';
import { isHFInternVLConfig } from '../models/from-hf-config.ts';

export interface RequestConfig {
  /** The config.json read. */
  file: string;
  template: ConversationTemplate;
  /** `config.system_message` when set, else the template's default. */
  systemMessage: string;
  /** Tile side: `force_image_size`, else `vision_config.image_size`. */
  imageSize: number;
  /** `vision_config.patch_size` (0 when read from a split artifact's pipeline.json, which records tokens per tile instead). */
  patchSize: number;
  downsampleRatio: number;
  /** `<IMG_CONTEXT>` tokens per tile: int((image_size // patch_size)^2 * downsample_ratio^2). */
  tokensPerTile: number;
  minDynamicPatch: number;
  /** `max_dynamic_patch`; 1 when `dynamic_image_size` is false (one tile resized to S x S). */
  maxDynamicPatch: number;
  useThumbnail: boolean;
  /** `llm_config.vocab_size`, when given: every input id must be below it. */
  vocabSize?: number;
  /** `llm_config.pad_token_id`, when given. */
  padTokenId?: number;
  /** What an artifact's manifest records (`vlmc.tokens_per_tile`, `vlmc.img_context_token_id`), to cross-check. */
  artifact?: { tokensPerTile?: number; imgContextTokenId?: number };
}

export function readRequestConfig(dir: string, o: { template?: string } = {}): RequestConfig {
  const file = nodePath.join(dir, 'config.json');
  if (existsSync(file)) return fromInternVLConfig(dir, file, o);
  const pipeline = nodePath.join(dir, PIPELINE_FILE);
  if (existsSync(pipeline)) return fromPipeline(dir, pipeline, o);
  const artifact = existsSync(nodePath.join(dir, MANIFEST_FILE)) ? ' (this artifact carries neither config.json nor pipeline.json: pass the checkpoint folder it was built from)' : '';
  throw new UserError(`${dir}: no config.json${artifact}`);
}

function fromInternVLConfig(dir: string, file: string, o: { template?: string }): RequestConfig {
  const cfg = readJsonObject(file);
  const vision = objectField(cfg, 'vision_config', file);
  // transformers' InternVLConfig names the LLM's config text_config and may give sizes as [h, w].
  const hf = isHFInternVLConfig(cfg);
  const llm = objectField(cfg, hf ? 'text_config' : 'llm_config', file);
  const imageSize = positiveInt(square(cfg['force_image_size'] ?? vision?.['image_size']), 'force_image_size (or vision_config.image_size)', file);
  const patchSize = positiveInt(square(vision?.['patch_size']), 'vision_config.patch_size', file);
  const downsampleRatio = positive(cfg['downsample_ratio'] ?? 0.5, 'downsample_ratio', file);
  const template = templateOf(cfg, file, o);
  const dynamic = optionalBool(cfg, 'dynamic_image_size', true, file);
  return {
    file,
    template,
    systemMessage: systemMessageOf(cfg, file) ?? template.systemMessage,
    imageSize,
    patchSize,
    downsampleRatio,
    tokensPerTile: Math.trunc(Math.floor(imageSize / patchSize) ** 2 * downsampleRatio ** 2),
    ...dynamicPatches(cfg['min_dynamic_patch'] ?? 1, dynamic ? (cfg['max_dynamic_patch'] ?? 6) : 1, '', file),
    useThumbnail: dynamic && optionalBool(cfg, 'use_thumbnail', false, file),
    vocabSize: llm && typeof llm['vocab_size'] === 'number' ? llm['vocab_size'] : undefined,
    padTokenId: llm && typeof llm['pad_token_id'] === 'number' ? llm['pad_token_id'] : undefined,
    artifact: artifactRecord(dir),
  };
}

/** A split artifact without config.json: its pipeline.json records the same facts (InternVLChatConfig's defaults where it is silent). */
function fromPipeline(dir: string, file: string, o: { template?: string }): RequestConfig {
  const p = readJsonObject(file);
  const image = objectField(p, 'image', file) ?? {};
  const llm = objectField(p, 'llm', file) ?? {};
  const template = templateOf(p, file, o);
  const tokensPerTile = positiveInt(image['tokens_per_tile'], 'image.tokens_per_tile', file);
  return {
    file,
    template,
    systemMessage: systemMessageOf(p, file) ?? template.systemMessage,
    imageSize: positiveInt(image['size'], 'image.size', file),
    patchSize: 0,
    downsampleRatio: positive(image['downsample_ratio'] ?? 0.5, 'image.downsample_ratio', file),
    tokensPerTile,
    ...dynamicPatches(image['min_dynamic_patch'] ?? 1, image['max_dynamic_patch'] ?? 6, 'image.', file),
    useThumbnail: image['use_thumbnail'] === true,
    vocabSize: typeof llm['vocab_size'] === 'number' ? llm['vocab_size'] : undefined,
    padTokenId: typeof p['pad_token_id'] === 'number' ? p['pad_token_id'] : undefined,
    artifact: { tokensPerTile, imgContextTokenId: typeof image['img_context_token_id'] === 'number' ? image['img_context_token_id'] : undefined },
  };
}

/** A size given as [n, n] (transformers' configs) is n; anything else is returned for the caller's check. */
function square(v: unknown): unknown {
  return Array.isArray(v) && v.length === 2 && v[0] === v[1] ? v[0] : v;
}

function templateOf(cfg: Record<string, unknown>, file: string, o: { template?: string }): ConversationTemplate {
  const name = o.template ?? cfg['template'];
  if (typeof name !== 'string') throw new UserError(`${file}: no 'template' (the conversation template, e.g. "internvl2_5"); pass --template`);
  return getTemplate(name, o.template !== undefined ? '--template' : file);
}

function systemMessageOf(cfg: Record<string, unknown>, file: string): string | undefined {
  const v = cfg['system_message'];
  if (v !== undefined && typeof v !== 'string') throw new UserError(`${file}: 'system_message' must be a string`);
  return v;
}

function artifactRecord(dir: string): RequestConfig['artifact'] {
  const file = nodePath.join(dir, MANIFEST_FILE);
  if (!existsSync(file)) return undefined;
  const meta = objectField(readManifestObject(file), 'metadata', file) ?? {};
  const int = (k: string) => (typeof meta[k] === 'string' && /^\d+$/.test(meta[k] as string) ? Number(meta[k]) : undefined);
  return { tokensPerTile: int('vlmc.tokens_per_tile'), imgContextTokenId: int('vlmc.img_context_token_id') };
}

function objectField(cfg: Record<string, unknown>, key: string, file: string): Record<string, unknown> | undefined {
  const v = cfg[key];
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw new UserError(`${file}: '${key}' must be an object`);
  return v;
}

function positive(v: unknown, what: string, file: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new UserError(`${file}: '${what}' must be a positive number (got ${JSON.stringify(v)})`);
  return v;
}

/** A true/false field; any other value ("yes", 1) would silently change the tiling. */
function optionalBool(cfg: Record<string, unknown>, key: string, fallback: boolean, file: string): boolean {
  const v = cfg[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw new UserError(`${file}: '${key}' must be true or false (got ${JSON.stringify(v)})`);
  return v;
}

/** `min_dynamic_patch` / `max_dynamic_patch`: whole numbers, min <= max <= MAX_TILES. */
function dynamicPatches(min: unknown, max: unknown, prefix: string, file: string): { minDynamicPatch: number; maxDynamicPatch: number } {
  const minDynamicPatch = positiveInt(min, `${prefix}min_dynamic_patch`, file);
  const maxDynamicPatch = positiveInt(max, `${prefix}max_dynamic_patch`, file);
  if (maxDynamicPatch > MAX_TILES) throw new UserError(`${file}: '${prefix}max_dynamic_patch' must be at most ${MAX_TILES} (got ${maxDynamicPatch})`);
  if (minDynamicPatch > maxDynamicPatch) throw new UserError(`${file}: '${prefix}min_dynamic_patch' (${minDynamicPatch}) is greater than '${prefix}max_dynamic_patch' (${maxDynamicPatch})`);
  return { minDynamicPatch, maxDynamicPatch };
}

function positiveInt(v: unknown, what: string, file: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new UserError(`${file}: '${what}' must be a positive integer (got ${JSON.stringify(v)})`);
  return v;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
