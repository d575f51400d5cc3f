/**
 * The split artifact's machine-readable pipeline (`pipeline.json`): which graph does what, their
 * I/O names and dims, and the facts a runtime needs around them (image size, tokens per tile,
 * cache layout, eos / pad ids, template, tokenizer files). Written by `vlmc build --split`, read
 * by `vlmc run` and `vlmc generate`.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as nodePath from 'node:path';
import { UserError } from '../errors.ts';
import { refuseNonRegularFile } from '../fs/errors.ts';
import type { Graph } from '../ir/graph.ts';
import type { InternVLChatModel } from '../models/internvl.ts';
import { headDimOf } from '../models/llm/decoder.ts';
import type { RopeScaling } from '../nn/rotary.ts';
import { PIPELINE_FILE, type ManifestIO } from '../artifact/format.ts';

export const PIPELINE_FORMAT = 'vlmc-pipeline/1';

/** The three graphs, in the order a forward runs them. */
export const SPLIT_ENTRIES = ['vision', 'embedding', 'decoder'] as const;
export type SplitEntry = (typeof SPLIT_ENTRIES)[number];

export interface PipelineGraph {
  file: string;
  inputs: ManifestIO[];
  outputs: ManifestIO[];
}

export interface Pipeline {
  format: string;
  model: string;
  /** The external-data file every graph's weights live in (stored once). */
  data_file: string;
  graphs: Record<SplitEntry, PipelineGraph>;
  image: {
    size: number;
    tokens_per_tile: number;
    img_context_token_id: number;
    downsample_ratio: number;
    max_dynamic_patch?: number;
    min_dynamic_patch?: number;
    use_thumbnail?: boolean;
  };
  llm: {
    architecture: string;
    hidden_size: number;
    vocab_size: number;
    num_layers: number;
    num_kv_heads: number;
    head_dim: number;
    max_position_embeddings: number;
    /**
     * Rotary scaling that depends on the sequence length, if any. With `longrope`, a generator
     * recomputes the cache once, when the length first exceeds `original_max_position_embeddings`
     * (as transformers' Phi-3 generation does), so every key is rotated with the long factors.
     */
    rope_scaling?: { type: 'dynamic' | 'longrope'; original_max_position_embeddings: number };
    /**
     * Sliding-window attention, applied inside the decoder (its mask, or GroupQueryAttention's
     * local_window_size): a query on a sliding layer sees this many keys, itself included. A
     * runtime may drop older cached keys of those layers; vlmc generate keeps them.
     */
    sliding_window?: number;
    /** Which layers slide (absent with a window: every layer). */
    layer_types?: string[];
    /** Cache tensors are [batch, num_kv_heads, past, head_dim], rotary applied. */
    past_key_values: { key: string; value: string };
    present: { key: string; value: string };
  };
  /** Conversation template (config.json `template`), if the checkpoint names one. */
  template?: string;
  /** Generation stops at any of these (the template's end-of-turn token and the LLM's eos). */
  eos_token_id: number[];
  pad_token_id?: number;
  /** Tokenizer files copied from the checkpoint. */
  tokenizer: string[];
}

export interface PipelineFacts {
  dataFile: string;
  /** The checkpoint's config.json (Path A: the InternVLChatConfig; Path B: the LLM's), if any. */
  config?: Readonly<Record<string, unknown>>;
  llmConfig?: Readonly<Record<string, unknown>>;
  tokenizerFiles: string[];
  /** Id of the template's end-of-turn token, when a tokenizer could name it. */
  templateEosId?: number;
}

const io = (g: Graph, which: 'inputs' | 'outputs'): ManifestIO[] => g[which].map((v) => ({ name: v.name!, dtype: v.dtype, shape: [...v.shape] }));

export function pipelineConfig(model: InternVLChatModel, graphs: Record<SplitEntry, Graph>, facts: PipelineFacts): Pipeline {
  const c = model.language_model.config;
  const cfg = facts.config ?? {};
  const llm = facts.llmConfig ?? {};
  const graphEntry = (e: SplitEntry): PipelineGraph => ({ file: `${e}.onnx`, inputs: io(graphs[e], 'inputs'), outputs: io(graphs[e], 'outputs') });
  const eos = new Set<number>();
  if (facts.templateEosId !== undefined) eos.add(facts.templateEosId);
  for (const id of ids(llm['eos_token_id'])) eos.add(id);
  const pad = ids(llm['pad_token_id'])[0] ?? c.padTokenId;
  return {
    format: PIPELINE_FORMAT,
    model: graphs.embedding.metadata['vlmc.model'] ?? model.options.name,
    data_file: facts.dataFile,
    graphs: { vision: graphEntry('vision'), embedding: graphEntry('embedding'), decoder: graphEntry('decoder') },
    image: {
      size: model.options.imageSize,
      tokens_per_tile: model.tokensPerTile,
      // As the embedding graph splices it (the model's own id, or the one the build found).
      img_context_token_id: Number(graphs.embedding.metadata['vlmc.img_context_token_id']),
      downsample_ratio: model.options.downsampleRatio,
      ...optional('max_dynamic_patch', cfg['max_dynamic_patch'], 'number'),
      ...optional('min_dynamic_patch', cfg['min_dynamic_patch'], 'number'),
      ...optional('use_thumbnail', cfg['use_thumbnail'], 'boolean'),
    },
    llm: {
      architecture: model.language_model.architecture,
      hidden_size: c.hidden,
      vocab_size: c.vocab,
      num_layers: c.layers,
      num_kv_heads: c.kvHeads,
      head_dim: headDimOf(c),
      max_position_embeddings: c.maxPositions,
      ...lengthDependentRope(c.ropeScaling, c.maxPositions),
      ...(c.slidingWindow !== undefined ? { sliding_window: c.slidingWindow } : {}),
      ...(c.slidingWindow !== undefined && c.layerTypes ? { layer_types: [...c.layerTypes] } : {}),
      past_key_values: { key: 'past_key_values.%d.key', value: 'past_key_values.%d.value' },
      present: { key: 'present.%d.key', value: 'present.%d.value' },
    },
    ...optional('template', cfg['template'], 'string'),
    eos_token_id: [...eos],
    ...(pad === undefined ? {} : { pad_token_id: pad }),
    tokenizer: facts.tokenizerFiles,
  };
}

function lengthDependentRope(s: RopeScaling | undefined, maxPositions: number): { rope_scaling?: Pipeline['llm']['rope_scaling'] } {
  if (s?.type === 'longrope') return { rope_scaling: { type: 'longrope', original_max_position_embeddings: s.originalMaxPositions } };
  if (s?.type === 'dynamic') return { rope_scaling: { type: 'dynamic', original_max_position_embeddings: maxPositions } };
  return {};
}

function ids(v: unknown): number[] {
  if (typeof v === 'number' && Number.isInteger(v)) return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number' && Number.isInteger(x));
  return [];
}

function optional<K extends string>(key: K, v: unknown, type: 'number' | 'boolean' | 'string'): Partial<Record<K, never>> {
  return (typeof v === type ? { [key]: v } : {}) as Partial<Record<K, never>>;
}

export function pipelineJson(p: Pipeline): string {
  return `${JSON.stringify(p, null, 2)}\n`;
}

export function readPipeline(dir: string): Pipeline {
  const file = nodePath.join(dir, PIPELINE_FILE);
  if (!existsSync(file)) throw new UserError(`${dir}: not a split artifact (no ${PIPELINE_FILE}; build it with vlmc build --split)`);
  refuseNonRegularFile(file, "the split artifact's pipeline.json");
  let p: Pipeline;
  try {
    p = JSON.parse(readFileSync(file, 'utf8')) as Pipeline;
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (p?.format !== PIPELINE_FORMAT) throw new UserError(`${file}: format '${String(p?.format)}' is not ${PIPELINE_FORMAT}`);
  checkPipelineFields(file, p);
  return p;
}

/** The fields generate and run read, with the types they need: a damaged pipeline.json is one message naming the field. */
function checkPipelineFields(file: string, p: Pipeline): void {
  const fail = (field: string, want: string, got: unknown): never => {
    throw new UserError(`${file}: '${field}' must be ${want} (got ${JSON.stringify(got) ?? 'nothing'}); the split artifact is damaged, rebuild it`);
  };
  const object = (v: unknown, field: string): Record<string, unknown> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : fail(field, 'an object', v));
  const fileName = (v: unknown, field: string) => (typeof v === 'string' && /^[^/\\]+$/.test(v) && v !== '.' && v !== '..' ? v : fail(field, 'a file name in the artifact folder', v));
  const count = (v: unknown, field: string, min = 1) => (typeof v === 'number' && Number.isSafeInteger(v) && v >= min ? v : fail(field, min === 0 ? 'a whole number >= 0' : 'a positive whole number', v));
  const graphs = object(p.graphs, 'graphs');
  for (const e of SPLIT_ENTRIES) {
    const g = object(graphs[e], `graphs.${e}`);
    fileName(g['file'], `graphs.${e}.file`);
    for (const side of ['inputs', 'outputs']) if (!Array.isArray(g[side])) fail(`graphs.${e}.${side}`, 'a list', g[side]);
  }
  fileName(p.data_file, 'data_file');
  const image = object(p.image, 'image');
  for (const k of ['size', 'tokens_per_tile']) count(image[k], `image.${k}`);
  count(image['img_context_token_id'], 'image.img_context_token_id', 0);
  const llm = object(p.llm, 'llm');
  for (const k of ['hidden_size', 'vocab_size', 'num_layers', 'num_kv_heads', 'head_dim', 'max_position_embeddings']) count(llm[k], `llm.${k}`);
  if (!Array.isArray(p.eos_token_id)) fail('eos_token_id', 'a list of token ids', p.eos_token_id);
  p.eos_token_id.forEach((id, i) => count(id, `eos_token_id[${i}]`, 0));
  if (p.pad_token_id !== undefined) count(p.pad_token_id, 'pad_token_id', 0);
  if (!Array.isArray(p.tokenizer) || !p.tokenizer.every((f) => typeof f === 'string')) fail('tokenizer', 'a list of file names', p.tokenizer);
  checkFactsAgainstGraphs(file, p);
}

/** The facts generate feeds the graphs by (cache layout, sizes) must be the graphs' own, as recorded beside them. */
function checkFactsAgainstGraphs(file: string, p: Pipeline): void {
  const shapeOf = (entry: SplitEntry, side: 'inputs' | 'outputs', name: string) => p.graphs[entry][side].find((v) => v?.name === name)?.shape;
  const expect = (field: string, value: number, entry: SplitEntry, side: 'inputs' | 'outputs', name: string, axis: number) => {
    const shape = shapeOf(entry, side, name);
    if (!Array.isArray(shape)) throw new UserError(`${file}: graphs.${entry}.${side} has no '${name}'; the split artifact is damaged, rebuild it`);
    const dim = shape.at(axis);
    if (typeof dim === 'number' && dim !== value) throw new UserError(`${file}: '${field}' is ${value} but ${p.graphs[entry].file}'s '${name}' has ${dim} there; the split artifact is damaged, rebuild it`);
  };
  const { llm, image } = p;
  for (let i = 0; i < llm.num_layers; i++) {
    for (const kind of ['key', 'value']) {
      expect('llm.num_kv_heads', llm.num_kv_heads, 'decoder', 'inputs', `past_key_values.${i}.${kind}`, 1);
      expect('llm.head_dim', llm.head_dim, 'decoder', 'inputs', `past_key_values.${i}.${kind}`, 3);
    }
  }
  const layers = p.graphs.decoder.inputs.filter((v) => /^past_key_values\.\d+\.key$/.test(String(v?.name))).length;
  if (layers !== llm.num_layers) throw new UserError(`${file}: 'llm.num_layers' is ${llm.num_layers} but the decoder takes a cache for ${layers} layers; the split artifact is damaged, rebuild it`);
  expect('llm.vocab_size', llm.vocab_size, 'decoder', 'outputs', 'logits', -1);
  expect('llm.hidden_size', llm.hidden_size, 'vision', 'outputs', 'image_features', 2);
  expect('image.tokens_per_tile', image.tokens_per_tile, 'vision', 'outputs', 'image_features', 1);
  expect('image.size', image.size, 'vision', 'inputs', 'pixel_values', 2);
}
