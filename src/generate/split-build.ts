/**
 * `vlmc build --split`: the model's vision, embedding and decoder entry points compiled into
 * three graphs over one weights file, with pipeline.json and the checkpoint's tokenizer files.
 */
import { existsSync } from 'node:fs';
import * as nodePath from 'node:path';
import { UserError } from '../errors.ts';
import { compile, type CompileOptions } from '../compile.ts';
import type { Graph } from '../ir/graph.ts';
import type { Model } from '../dsl/model.ts';
import type { BindPlan } from '../bind/plan.ts';
import { InternVLChatModel } from '../models/internvl.ts';
import { internvlConfigJson } from '../models/to-config.ts';
import { CONFIG_FILE } from '../checkpoint/checkpoint.ts';
import { writeSplitArtifact, type WriteOptions } from '../artifact/write.ts';
import { PIPELINE_FILE, SPLIT_DATA_FILE, type Manifest } from '../artifact/format.ts';
import { SPLIT_ENTRIES, pipelineConfig, pipelineJson, type SplitEntry } from './pipeline.ts';

/** Tokenizer files copied when the checkpoint has them. */
export const COPIED_TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json', 'tokenizer.model', 'vocab.json', 'merges.txt', 'generation_config.json'];

export interface SplitSources {
  /** How every part is compiled: the whole model's options (opset, dtype, target, quantisation, rules, facts). */
  compile: CompileOptions;
  tokenizerDir?: string | undefined;
  config?: Readonly<Record<string, unknown>> | undefined;
  /** Folder of the unified checkpoint's config.json (Path A). */
  configDir?: string | undefined;
  llmConfig?: Readonly<Record<string, unknown>> | undefined;
}

export async function writeSplit(out: string, model: Model, whole: Graph, plan: BindPlan, options: WriteOptions, src: SplitSources): Promise<Manifest> {
  if (!(model instanceof InternVLChatModel)) throw new UserError('--split needs an InternVL model (its graph has vision, embedding and decoder entry points)');
  const graphs = Object.fromEntries(SPLIT_ENTRIES.map((e) => [e, compile(model, { ...src.compile, entry: e })])) as Record<SplitEntry, Graph>;
  const tokenizerFiles = src.tokenizerDir ? COPIED_TOKENIZER_FILES.filter((f) => existsSync(nodePath.join(src.tokenizerDir!, f))) : [];
  const pipeline = pipelineConfig(model, graphs, {
    dataFile: SPLIT_DATA_FILE,
    config: src.config,
    llmConfig: src.llmConfig,
    tokenizerFiles,
    templateEosId: await templateEosId(src),
  });
  const copies: Record<string, string> = Object.fromEntries(tokenizerFiles.map((f) => [f, nodePath.join(src.tokenizerDir!, f)]));
  const parts = SPLIT_ENTRIES.map((e) => ({ file: `${e}.onnx`, graph: graphs[e] }));
  // config.json too, so `vlmc inputs` / `vlmc generate --image` build requests from the artifact
  // alone: the unified checkpoint's own, else one written from the model (no template: unknown).
  const files: Record<string, string> = { [PIPELINE_FILE]: pipelineJson(pipeline) };
  if (src.configDir) copies[CONFIG_FILE] = nodePath.join(src.configDir, CONFIG_FILE);
  else {
    const { template: _unknown, ...config } = internvlConfigJson(model);
    files[CONFIG_FILE] = `${JSON.stringify(config, null, 2)}\n`;
  }
  return writeSplitArtifact(out, whole, parts, plan, options, { files, copies });
}

/** The template's end-of-turn token id, when the checkpoint has both a template and tokenizer.json. */
async function templateEosId(src: SplitSources): Promise<number | undefined> {
  const template = src.config?.['template'];
  if (typeof template !== 'string' || !src.tokenizerDir || !existsSync(nodePath.join(src.tokenizerDir, 'tokenizer.json'))) return undefined;
  const { TEMPLATES, eosToken } = await import('../prompt/templates.ts');
  const t = TEMPLATES[template];
  if (!t) return undefined;
  const { loadTokenizer } = await import('../tokenizer/index.ts');
  return loadTokenizer(src.tokenizerDir).tokenId(eosToken(t));
}
