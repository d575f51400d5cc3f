/** The training part of an artifact: file names and the manifest's `train` section. */
import { existsSync, readFileSync } from 'node:fs';
import * as nodePath from 'node:path';
import type { ManifestTrain } from '../artifact/format.ts';
import type { Model } from '../dsl/model.ts';
import { InternVLChatModel } from '../models/internvl.ts';
import { internvlConfigJson } from '../models/to-config.ts';
import type { FreezeRule } from '../dsl/freeze.ts';
import { GRAD_PREFIX, type TrainGraph } from './compile-train.ts';
import type { ResolvedLoraPart } from '../dsl/lora.ts';
import { loraDropoutInput } from '../passes/lora.ts';

export const TRAIN_FILE = 'train.onnx';
export const OPTIMIZER_FILE = 'optimizer.onnx';
export const DATA_INPUTS = ['pixel_values', 'input_ids', 'image_flags', 'labels'];

export function trainManifest(t: TrainGraph, rules: FreezeRule[], lora: readonly ResolvedLoraPart[] = []): ManifestTrain {
  const p = t.pruning;
  const inputs = t.graph.inputs.filter((v) => v.kind === 'input').map((v) => v.name!);
  const dropout = lora.filter((part) => inputs.includes(loraDropoutInput(part.module))).map((part) => ({ input: loraDropoutInput(part.module), ratio: part.dropout }));
  return {
    graph: TRAIN_FILE,
    optimizer: OPTIMIZER_FILE,
    rules: rules.map((r) => ({ action: r.action, pattern: r.pattern })),
    data_inputs: inputs.filter((name) => !dropout.some((d) => d.input === name)),
    ...(dropout.length > 0 ? { lora_dropout: dropout } : {}),
    trainable: t.trainable.map((q) => ({ name: q.name, key: q.name, grad: `${GRAD_PREFIX}${q.name}` })),
    frozen: t.graph.params.filter((q) => !q.trainable).map((q) => q.name),
    outputs: t.graph.outputs.map((v) => ({ name: v.name!, dtype: v.dtype, shape: [...v.shape] })),
    pruning: {
      backward_nodes: p.backwardNodes,
      backward_nodes_unpruned: p.backwardNodesUnpruned,
      backward_flops: p.backwardFlops,
      backward_flops_unpruned: p.backwardFlopsUnpruned,
      sizes: p.sizes,
    },
  };
}

/** The build summary's line about the backward: how much pruning by the freeze rules removed. */
export function pruningLine(t: ManifestTrain): string {
  const p = t.pruning;
  const gflop = (n: number) => (n / 1e9).toFixed(n >= 1e9 ? 1 : 3);
  const at = Object.entries(p.sizes).map(([k, v]) => `${k}=${v}`).join(', ');
  return `train.onnx: ${t.trainable.length} trainable tensors (${t.frozen.length} frozen); backward ${p.backward_nodes} nodes, ${gflop(p.backward_flops)} GFLOP at ${at}; pruning removed ${p.backward_nodes_unpruned - p.backward_nodes} nodes and ${gflop(p.backward_flops_unpruned - p.backward_flops)} GFLOP`;
}

/** Tokenizer files a checkpoint may carry; copied into a training artifact and into every saved checkpoint. */
export const TOKENIZER_FILE_NAMES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json', 'tokenizer.model', 'vocab.json', 'merges.txt', 'generation_config.json'];

/**
 * What `vlmc train` needs besides the graphs, so an artifact trains on its own: the unified
 * config.json (Path A: the checkpoint's own; Path B: written from the model, with the LLM's tokenizer
 * files) and the tokenizer files, which the saved checkpoints carry on.
 */
export function trainingFiles(model: Model, unifiedDir: string | undefined, tokenizerDir: string | undefined): { name: string; bytes: Uint8Array | string }[] {
  const files: { name: string; bytes: Uint8Array | string }[] = [];
  const config = unifiedDir ? nodePath.join(unifiedDir, 'config.json') : undefined;
  if (config && existsSync(config)) files.push({ name: 'config.json', bytes: readFileSync(config) });
  else if (model instanceof InternVLChatModel) files.push({ name: 'config.json', bytes: `${JSON.stringify(internvlConfigJson(model), null, 2)}\n` });
  for (const name of TOKENIZER_FILE_NAMES) {
    const file = tokenizerDir ? nodePath.join(tokenizerDir, name) : undefined;
    if (file && existsSync(file)) files.push({ name, bytes: readFileSync(file) });
  }
  return files;
}
