/**
 * A checkpoint folder as a review operand: the graph its `config.json` describes, derived as `vlmc
 * build --weights <dir>` derives it when no graph file is given (either layout: the original
 * InternVL one or transformers' native one), compiled without weights. The safetensors headers are
 * read, not the tensors: the binding plan names the checkpoint key(s) of every parameter and
 * checks the checkpoint fits the graph, with the same report as a build.
 */
import { withPackedLayout } from '../bind/packed.ts';
import * as nodePath from 'node:path';
import { Checkpoint } from '../checkpoint/checkpoint.ts';
import { compile } from '../compile.ts';
import { planBinding, type BoundParam } from '../bind/plan.ts';
import { withLoraLayout } from '../bind/lora-sources.ts';
import { internvlFromConfig } from '../models/from-config.ts';
import { HF_LM_HEAD_KEYS, hfDefaultImageTokenId, internvlFromHFConfig, isHFInternVLConfig } from '../models/from-hf-config.ts';
import { findSpecialTokenId } from '../checkpoint/tokens.ts';
import { hfLayout } from '../models/internvl.hf.names.ts';
import { INTERNVL_BINDING, originalLayout } from '../models/internvl.names.ts';
import { checkpointName } from '../init/name.ts';
import { summaryFromGraph } from './summary.ts';
import type { GraphSummary } from './types.ts';

export async function summaryFromCheckpoint(dir: string): Promise<{ summary: GraphSummary; keys: Map<string, string[]> }> {
  const checkpoint = await Checkpoint.open(dir);
  try {
    const config = { ...checkpoint.config };
    const where = nodePath.join(dir, 'config.json');
    const hfNative = isHFInternVLConfig(config);
    const named = { name: checkpointName(dir, checkpoint.config) };
    const model = hfNative ? internvlFromHFConfig(config, where, named, { hasLmHead: HF_LM_HEAD_KEYS.some((k) => checkpoint.has(k)) }) : internvlFromConfig(config, where, named);
    // As the build finds it: the config (HF-native), the tokenizer files, transformers' default.
    const imgContextTokenId = model.options.imgContextTokenId ?? findSpecialTokenId(dir) ?? (hfNative ? hfDefaultImageTokenId(model) : undefined);
    const graph = compile(model, { structureOnly: true, facts: { imgContextTokenId } });
    // A checkpoint saved with LoRA unmerged reads as the model its merged weights make.
    const source = withPackedLayout(withLoraLayout({ role: 'unified' as const, checkpoint, layout: hfNative ? hfLayout(checkpoint.keys()) : originalLayout('unified') }));
    const plan = planBinding(graph.params, 'A', [source], { ...INTERNVL_BINDING, graphFrom: where });
    return { summary: summaryFromGraph(graph), keys: new Map(plan.params.map((b) => [b.param.name, keysOf(b)])) };
  } finally {
    await checkpoint.close();
  }
}

function keysOf(b: BoundParam): string[] {
  switch (b.origin.kind) {
    case 'checkpoint':
      return [b.origin.key];
    case 'concat':
      return b.origin.keys;
    case 'packed':
      return [b.origin.packed.blocks, b.origin.packed.scales];
    case 'lora-merge': {
      const base = b.origin.base;
      return [...(base.kind === 'concat' ? base.keys : [base.key]), b.origin.a.key, b.origin.b.key];
    }
    case 'init':
      return [];
  }
}
