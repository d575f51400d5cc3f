/** The artifact's manifest.json: what was built, from what, and every parameter's provenance. */
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
}

export function manifestJson(m: Manifest): string {
  return `${JSON.stringify(m, null, 2)}\n`;
}
