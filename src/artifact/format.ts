/**
 * The artifact format, the contract between the writers (src/artifact/write.ts, the split and
 * training builds) and every reader (run, generate, train, inputs, diff, the output-path rules):
 * the file names, the manifest.json schema, and the one reader of a manifest.
 *
 * This module sits at the bottom of the layers (docs/architecture.md, Layers): it imports only
 * the error and file-system helpers, so any layer may read an artifact.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import * as nodePath from 'node:path';
import { UserError } from '../errors.ts';
import { refuseNonRegularFile } from '../fs/errors.ts';

export const MODEL_FILE = 'model.onnx';
export const DATA_FILE = 'model.onnx.data';
export const MANIFEST_FILE = 'manifest.json';
/** The one data file every graph of a split artifact (vlmc build --split) points into. */
export const SPLIT_DATA_FILE = 'weights.onnx.data';
/** A split artifact's description of its pipeline (src/generate/pipeline.ts). */
export const PIPELINE_FILE = 'pipeline.json';

/** The files an artifact folder consists of; a folder holding anything else is not only an artifact. */
export const ARTIFACT_FILES: readonly string[] = [
  MANIFEST_FILE,
  MODEL_FILE,
  DATA_FILE,
  // vlmc build --train (src/train/artifact.ts): the training graphs, the config and tokenizer files they train with.
  'train.onnx',
  'optimizer.onnx',
  'config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
  'generation_config.json',
  // vlmc build --split (src/generate/split-build.ts): the three graphs over one data file, and the pipeline.
  'vision.onnx',
  'embedding.onnx',
  'decoder.onnx',
  SPLIT_DATA_FILE,
  PIPELINE_FILE,
];

export const MANIFEST_FORMAT = 'vlmc-artifact/1';

/**
 * Where the weights came from (src/bind/plan.ts's BuildPath): the original InternVL checkpoint,
 * its parts, or none. Spelled out here because it is what the file holds.
 */
export type ManifestBuildPath = 'A' | 'B' | 'none';

export interface ManifestParameter {
  /** Initializer name in model.onnx. */
  name: string;
  /**
   * The checkpoint's own key: the unified key for the original InternVL layout; for another layout
   * (Hugging Face-native) the key it was read from, or the keys concatenated into it.
   */
  key: string | string[];
  shape: number[];
  dtype: 'float32' | 'float16' | 'bfloat16';
  trainable: boolean;
  /** Where the bytes came from: a checkpoint file and key, or the declared init. */
  source: ManifestCheckpointSource | { init: string; seed: number };
  /** sha256 of the bytes written to model.onnx.data; absent in a structure-only artifact. */
  sha256?: string;
  offset: number;
  length: number;
  /** Stored quantised (--quant): scheme, block size, packed dtype and the companion tensors. */
  quant?: Record<string, unknown>;
}

export interface ManifestCheckpointSource {
  role: string;
  /** A list where the parts of a concatenation live in several shards. */
  file: string | string[];
  key: string | string[];
  dtype: string | string[];
  /** The checkpoint layout when it is not the original InternVL one (`hf:transformers-4`, ...). */
  layout?: string;
  /** Set when several tensors were joined into this parameter: `concat(axis=0)`. */
  transform?: string;
  /** Set when a LoRA was merged into this weight while binding: where lora_A and lora_B came from, and the scaling. */
  lora?: { role: string; file: string; key: string[]; scaling: number; transform: string };
}

export interface ManifestSource {
  role: string;
  config_sha256: string;
  files: string[];
}

export interface ManifestIO {
  name: string;
  dtype: string;
  shape: (number | string)[];
}

/** The training graphs of an artifact built with --train (docs/training.md). */
export interface ManifestTrain {
  /** train.onnx: forward + loss + pruned backward. */
  graph: string;
  /** optimizer.onnx: one AdamW step over the trainable parameters. */
  optimizer: string;
  /** Freeze rules in effect, in order (the graph's own, then the CLI's). */
  rules: { action: 'freeze' | 'unfreeze'; pattern: string }[];
  /** Graph inputs that are data (pixel_values, input_ids, image_flags, labels). */
  data_inputs: string[];
  /** LoRA dropout per part: the scalar input of train.onnx and the declared ratio `vlmc train` feeds (0 gives the eval gradients). */
  lora_dropout?: { input: string; ratio: number }[];
  /** Trainable parameters: graph inputs of train.onnx, with their gradient output's name. */
  trainable: { name: string; key: string; grad: string }[];
  /** Frozen parameters stay initializers. */
  frozen: string[];
  outputs: ManifestIO[];
  pruning: { backward_nodes: number; backward_nodes_unpruned: number; backward_flops: number; backward_flops_unpruned: number; sizes: Record<string, number> };
}

export interface Manifest {
  format: string;
  model: string;
  vlmc_version: string;
  build: {
    path: ManifestBuildPath;
    seed: number;
    dtype: string;
    opset: number;
    sources: ManifestSource[];
    /** True when built without weights and without `--init random`: the data file holds no values (all zero, sparse), so the artifact cannot be run. */
    structure_only?: boolean;
  };
  inputs: ManifestIO[];
  outputs: ManifestIO[];
  metadata: Record<string, string>;
  counts: { total: number; trainable: number };
  parameters: ManifestParameter[];
  /** Present when built with --train. */
  train?: ManifestTrain;
}

export function manifestJson(m: Manifest): string {
  return `${JSON.stringify(m, null, 2)}\n`;
}

/**
 * The one reader of a manifest.json: a regular file holding a JSON object, or a UserError naming
 * the file. The functions below add what their callers need on top.
 */
export function readManifestObject(file: string): Record<string, unknown> {
  refuseNonRegularFile(file, 'the artifact manifest');
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new UserError(`${file}: not a vlmc manifest (must hold a JSON object; got ${json === null ? 'null' : Array.isArray(json) ? 'an array' : typeof json})`);
  }
  return json as Record<string, unknown>;
}

/** The manifest of an artifact folder that is about to be used: a UserError unless it is one. */
export function readManifest(artifactDir: string): Manifest {
  const file = nodePath.join(artifactDir, MANIFEST_FILE);
  if (!existsSync(file)) throw new UserError(`${artifactDir}: not a vlmc artifact (no ${MANIFEST_FILE})`);
  const m = readManifestObject(file) as Partial<Manifest>;
  if (!Array.isArray(m.inputs) || !Array.isArray(m.outputs) || typeof m.metadata !== 'object' || m.metadata === null) {
    throw new UserError(`${file}: not a vlmc manifest (inputs, outputs and metadata are missing)`);
  }
  return m as Manifest;
}

/**
 * The manifest of an artifact folder, read leniently: undefined when it is missing, not a regular
 * file or not JSON (the checks that need a manifest report that; this only informs choices).
 */
export function peekManifest(dir: string): Partial<Manifest> | undefined {
  const file = nodePath.join(dir, MANIFEST_FILE);
  try {
    return readManifestObject(file) as Partial<Manifest>;
  } catch {
    return undefined;
  }
}

/** Whether `file` is a manifest vlmc wrote (of this format). */
export function isVlmcManifest(file: string): boolean {
  try {
    return readManifestObject(file).format === MANIFEST_FORMAT;
  } catch {
    return false;
  }
}

/** Whether `dir` is a folder that vlmc wrote as an artifact (manifest of vlmc's format). */
export function isArtifactFolder(dir: string): boolean {
  return statOrUndefined(dir)?.isDirectory() === true && isVlmcManifest(nodePath.join(dir, MANIFEST_FILE));
}

/** Whether `dir` holds a split artifact (vlmc build --split). */
export function isSplitArtifact(dir: string): boolean {
  return existsSync(nodePath.join(dir, PIPELINE_FILE));
}

/** Whether the artifact stores quantised weights (--quant); their sessions keep ORT's weight prepacking (src/runtime/session.ts). */
export function hasQuantisedWeights(dir: string): boolean {
  return storesQuantisedWeights(peekManifest(dir));
}

export function storesQuantisedWeights(manifest: Partial<Manifest> | undefined): boolean {
  return manifest?.parameters?.some((p) => p.quant !== undefined) === true;
}

function statOrUndefined(p: string) {
  try {
    return statSync(p);
  } catch {
    return undefined;
  }
}
