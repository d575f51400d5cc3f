/**
 * What binding is made of: the checkpoints a build reads (each through its key layout) and where
 * each parameter's bytes come from. Its own module so that the binder (plan.ts) and the LoRA
 * binding beside it (lora.ts) share the types without importing each other.
 */
import type { GraphParam } from '../ir/graph.ts';
import type { Checkpoint } from '../checkpoint/checkpoint.ts';
import type { KeyLayout, PackedKeys } from '../dsl/layout.ts';
import type { LoraKeys } from '../models/internvl.lora.names.ts';

/** A named checkpoint the build reads from: `unified` (Path A) or `vision` / `llm` (Path B). */
export interface WeightSource {
  /** `projector`: Path B's projector taken from a saved file (unified-layout keys, `mlp1.*`). `adapter`: a PEFT LoRA adapter (--adapter). */
  role: 'unified' | 'vision' | 'llm' | 'projector' | 'adapter';
  checkpoint: Checkpoint;
  /** How graph parameter names become this checkpoint's keys (src/dsl/layout.ts; the family supplies it). */
  layout: KeyLayout;
  /** Set when the source holds LoRA adapters (src/bind/lora.ts): merged into their base weights, or read as the graph's own. */
  lora?: LoraKeys;
}

/** A weight as stored: one checkpoint tensor, or several concatenated along axis 0 (q, k, v -> a fused qkv). */
export type StoredOrigin = { kind: 'checkpoint'; source: WeightSource; key: string } | { kind: 'concat'; source: WeightSource; keys: string[] };

/** A base weight with its LoRA merged in while binding: W + scaling * B @ A. */
export interface LoraMergeOrigin {
  kind: 'lora-merge';
  base: StoredOrigin;
  a: { source: WeightSource; key: string };
  b: { source: WeightSource; key: string };
  scaling: number;
}

/** A weight stored quantised (MXFP4 blocks and scales), dequantised while binding. */
export interface PackedOrigin {
  kind: 'packed';
  source: WeightSource;
  packed: PackedKeys;
}

export type ParamOrigin = StoredOrigin | LoraMergeOrigin | PackedOrigin | { kind: 'init' };

export interface BoundParam {
  param: GraphParam;
  origin: ParamOrigin;
}
