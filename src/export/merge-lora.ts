/**
 * `vlmc export --merge-lora`: what InternVL's tools/merge_lora.py should produce. A checkpoint saved
 * with LoRA unmerged (and / or a base checkpoint with --adapter folders) becomes an ordinary
 * unified checkpoint: plain keys, every wrapped weight W + scaling * B @ A (src/bind/lora-merge.ts:
 * float64, rounded once to the weight's own dtype), config `use_backbone_lora` / `use_llm_lora` 0.
 * The mapping is the build's own binding plan, so every key is checked as strictly as a build
 * checks it (nothing missing, nothing left over) before anything is written.
 */
import { copyFile, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import * as nodePath from 'node:path';
import { UserError } from '../errors.ts';
import { Checkpoint } from '../checkpoint/checkpoint.ts';
import { writeSafetensorsStreamed, type StreamedTensor } from '../checkpoint/safetensors-write.ts';
import { withTempSibling } from '../fs/atomic.ts';
import { checkOutputPath, CHECKPOINT_MARK } from '../fs/output-path.ts';
import { assignPaths, collectParams } from '../dsl/module.ts';
import { GraphParam } from '../ir/graph.ts';
import { planBinding, type BoundParam, type WeightSource } from '../bind/plan.ts';
import { checkLoraConfig, openAdapterSources, withLoraLayout } from '../bind/lora-sources.ts';
import { mergedLoraChunks } from '../bind/lora-merge.ts';
import { internvlFromConfig } from '../models/from-config.ts';
import { isHFInternVLConfig } from '../models/from-hf-config.ts';
import { INTERNVL_BINDING, originalLayout } from '../models/internvl.names.ts';
import type { FloatStDType } from '../tensor/convert.ts';
import { TOKENIZER_FILE_NAMES } from '../train/artifact.ts';

export interface MergeLoraOptions {
  /** A unified InternVL checkpoint, with LoRA unmerged or plain (then `adapters` say what to merge). */
  checkpoint: string;
  /** PEFT adapter folders merged as well (one per part). */
  adapters?: string[];
  out: string;
}

export interface MergeLoraResult {
  out: string;
  tensors: number;
  /** How many weights had a LoRA merged into them. */
  merged: number;
}

const CHUNK_BYTES = 1024 * 1024;

export async function exportMergedLora(o: MergeLoraOptions): Promise<MergeLoraResult> {
  checkOutputPath(o.out, { kind: 'checkpoint', flag: '--out', inputs: [o.checkpoint, ...(o.adapters ?? [])] });
  const ckpt = await Checkpoint.open(o.checkpoint);
  const sources: WeightSource[] = [withLoraLayout({ role: 'unified', checkpoint: ckpt, layout: originalLayout('unified') })];
  try {
    const where = nodePath.join(ckpt.dir, 'config.json');
    if (isHFInternVLConfig(ckpt.config)) throw new UserError(`${where}: a Hugging Face-native checkpoint; --merge-lora reads InternVL's own layout (InternVLChatModel)`);
    const model = internvlFromConfig({ ...ckpt.config }, where);
    checkLoraConfig(model, sources[0]);
    sources.push(...(await openAdapterSources(o.adapters ?? [], model, sources)));
    if (!sources.some((s) => s.lora)) throw new UserError(`${ckpt.dir}: has no LoRA to merge (no <part>.base_model.model.* keys, use_llm_lora / use_backbone_lora 0) and no --adapter was given`);
    assignPaths(model);
    const plan = planBinding(collectParams(model).map((p) => new GraphParam(p)), 'A', sources, { ...INTERNVL_BINDING, graphFrom: where });
    const tensors = plan.params.map(plainTensor);
    await withTempSibling(o.out, async (tmp) => {
      await writeFile(nodePath.join(tmp, CHECKPOINT_MARK), 'a checkpoint written by vlmc export --merge-lora\n');
      await writeFile(nodePath.join(tmp, 'config.json'), mergedConfig(where, model.loraParts()));
      await writeSafetensorsStreamed(nodePath.join(tmp, 'model.safetensors'), tensors, { format: 'pt' });
      for (const f of TOKENIZER_FILE_NAMES) if (existsSync(nodePath.join(ckpt.dir, f))) await copyFile(nodePath.join(ckpt.dir, f), nodePath.join(tmp, f));
    });
    return { out: o.out, tensors: tensors.length, merged: plan.params.filter((b) => b.origin.kind === 'lora-merge').length };
  } finally {
    for (const s of sources) await s.checkpoint.close();
  }
}

/** One parameter under its plain unified key, in its checkpoint dtype: the stored bytes, or the merged ones. */
function plainTensor({ param, origin }: BoundParam): StreamedTensor {
  if (origin.kind === 'lora-merge') {
    const base = origin.base;
    const keys = base.kind === 'concat' ? base.keys : [base.key];
    const dtype = base.source.checkpoint.entry(keys[0]!).dtype as FloatStDType;
    const inputs = { base: { checkpoint: base.source.checkpoint, keys }, a: { checkpoint: origin.a.source.checkpoint, key: origin.a.key }, b: { checkpoint: origin.b.source.checkpoint, key: origin.b.key }, scaling: origin.scaling };
    return { name: param.name, dtype, shape: param.shape, chunks: () => mergedLoraChunks(inputs, dtype, CHUNK_BYTES) };
  }
  if (origin.kind !== 'checkpoint') throw new Error(`${param.name}: bound from ${origin.kind}, not from the checkpoint`);
  const ckpt = origin.source.checkpoint;
  return { name: param.name, dtype: ckpt.entry(origin.key).dtype, shape: param.shape, chunks: () => ckpt.chunks(origin.key, CHUNK_BYTES) };
}

/** The checkpoint's config with every LoRA rank set to 0, as merge_lora.py leaves it; other fields as they were. */
function mergedConfig(file: string, parts: Record<string, { configField: string }>): string {
  const config = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  for (const { configField } of Object.values(parts)) config[configField] = 0;
  return `${JSON.stringify(config, null, 2)}\n`;
}
