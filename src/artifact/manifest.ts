/** The artifact's manifest.json: what was built, from what, and every parameter's provenance. */
import { readFileSync, statSync } from 'node:fs';
import * as nodePath from 'node:path';
import type { BuildPath } from '../bind/plan.ts';

export const MANIFEST_FORMAT = 'vlmc-artifact/1';

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
    path: BuildPath;
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
 * The manifest of an artifact folder, read leniently: undefined when it is missing, not a regular
 * file or not JSON (the checks that need a manifest report that; this only informs choices).
 */
export function peekManifest(dir: string): Partial<Manifest> | undefined {
  const file = nodePath.join(dir, 'manifest.json');
  try {
    if (!statSync(file).isFile()) return undefined;
    const json = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return typeof json === 'object' && json !== null && !Array.isArray(json) ? (json as Partial<Manifest>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether the artifact stores quantised weights (--quant). MatMulNBits repacks its blocks into the
 * kernel's layout at session creation; without that it dequantises on every call (0.94 s instead
 * of 0.03 s a decode step on the 1B shape), so such sessions keep ORT's weight prepacking.
 */
export function hasQuantisedWeights(dir: string): boolean {
  return storesQuantisedWeights(peekManifest(dir));
}

export function storesQuantisedWeights(manifest: Partial<Manifest> | undefined): boolean {
  return manifest?.parameters?.some((p) => p.quant !== undefined) === true;
}
