/** The artifact's manifest.json: what was built, from what, and every parameter's provenance. */
import type { BuildPath } from '../bind/plan.ts';

export const MANIFEST_FORMAT = 'vlmc-artifact/1';

export interface ManifestParameter {
  /** Initializer name in model.onnx. */
  name: string;
  /** Key in the unified checkpoint layout. */
  key: string;
  shape: number[];
  dtype: 'float32' | 'float16' | 'bfloat16';
  trainable: boolean;
  /** Where the bytes came from: a checkpoint file and key, or the declared init. */
  source: { role: string; file: string; key: string; dtype: string } | { init: string; seed: number };
  /** sha256 of the bytes written to model.onnx.data. */
  sha256: string;
  offset: number;
  length: number;
  /** Stored quantised (--quant): scheme, block size, packed dtype and the companion tensors. */
  quant?: Record<string, unknown>;
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
  build: { path: BuildPath; seed: number; dtype: string; opset: number; sources: ManifestSource[] };
  inputs: ManifestIO[];
  outputs: ManifestIO[];
  metadata: Record<string, string>;
  counts: { total: number; trainable: number };
  parameters: ManifestParameter[];
}

export function manifestJson(m: Manifest): string {
  return `${JSON.stringify(m, null, 2)}\n`;
}
