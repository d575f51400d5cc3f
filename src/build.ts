/**
 * `vlmc build` as a library call: graph (file or derived from configs) + weights (Path A, Path B or
 * none) -> checked, bound, written artifact.
 */
import * as nodePath from 'node:path';
import { UserError } from './errors.ts';
import type { ParamDType } from './ir/dtype.ts';
import type { Graph } from './ir/graph.ts';
import { Checkpoint } from './checkpoint/checkpoint.ts';
import { findSpecialTokenId } from './checkpoint/tokens.ts';
import { compile } from './compile.ts';
import { loadGraphFile } from './graph-file.ts';
import { InternVLChatModel } from './models/internvl.ts';
import { internvlFromConfig, internvlFromParts, pickProjectorOptions, type ProjectorOptions } from './models/from-config.ts';
import { planBinding, type BuildPath, type WeightSource } from './bind/plan.ts';
import { checkAgainstConfig } from './bind/config-check.ts';
import { writeArtifact } from './artifact/write.ts';
import type { Manifest } from './artifact/manifest.ts';
import type { Model } from './dsl/model.ts';
import type { Target } from './passes/fusion/index.ts';
import type { QuantScheme } from './quant/blockwise.ts';
import { quantTransformFor } from './quant/transform.ts';

export interface BuildOptions extends ProjectorOptions {
  /** Graph file; when omitted the graph is derived from the checkpoint config(s). */
  graph?: string;
  /** Path A: a unified InternVL checkpoint folder. */
  weights?: string;
  /** Path B: a standalone InternViT checkpoint folder and a standalone LLM checkpoint folder. */
  vision?: string;
  llm?: string;
  /** Path B: take the projector from a safetensors file (keys `mlp1.*`) instead of initialising it. */
  projector?: string;
  out: string;
  seed?: number;
  dtype?: ParamDType;
  opset?: number;
  /** `portable` (default) or `gpu` (ONNX Runtime fused ops); see CompileOptions. */
  target?: Target;
  /** `none`, `all` or a comma list of fusion names (src/passes/fusion). */
  fuse?: string;
  /** Weight-only quantisation of the LLM linears (with target gpu). */
  quant?: QuantScheme;
  allowMissing?: string[];
  ignoreUnexpected?: string[];
  onProgress?: (written: number, total: number) => void;
  /** Write the split artifact (vision.onnx, embedding.onnx, decoder.onnx, pipeline.json, tokenizer files). */
  split?: boolean;
}

export interface BuildResult {
  manifest: Manifest;
  graph: Graph;
  model: Model;
}

export async function build(o: BuildOptions): Promise<BuildResult> {
  const path = buildPath(o);
  const sources = await openSources(o, path);
  try {
    const model = await resolveModel(o, path, sources);
    const graph = compile(model, { opset: o.opset, paramDtype: o.dtype ?? 'float32', target: o.target, fuse: o.fuse, quant: o.quant });
    const plan = planBinding(graph.params, path, sources, { seed: o.seed ?? 0, allowMissing: o.allowMissing, ignoreUnexpected: o.ignoreUnexpected });
    const writeOptions = { dtype: o.dtype ?? 'float32', onProgress: o.onProgress, transform: quantTransformFor(graph) } as const;
    if (o.split) {
      const { writeSplit } = await import('./generate/split-build.ts');
      const targetOptions = { target: o.target, fuse: o.fuse, quant: o.quant };
      const manifest = await writeSplit(o.out, model, graph, plan, writeOptions, { opset: o.opset, tokenizerDir: tokenizerDir(path, sources), config: path === 'A' ? sources[0]?.checkpoint.config : undefined, configDir: path === 'A' ? sources[0]?.checkpoint.dir : undefined, llmConfig: llmConfigOf(path, sources), ...targetOptions });
      return { manifest, graph, model };
    }
    const manifest = await writeArtifact(o.out, graph, plan, writeOptions);
    return { manifest, graph, model };
  } finally {
    for (const s of sources) await s.checkpoint.close();
  }
}

function buildPath(o: BuildOptions): BuildPath {
  if (o.weights && (o.vision || o.llm)) throw new UserError('give either --weights (Path A) or --vision and --llm (Path B), not both');
  if (o.projector && !(o.vision || o.llm)) throw new UserError('--projector belongs to Path B (--vision and --llm)');
  if (o.weights) return 'A';
  if (o.vision || o.llm) {
    if (!o.vision || !o.llm) throw new UserError('Path B needs both --vision <dir> and --llm <dir>');
    return 'B';
  }
  if (!o.graph) throw new UserError('nothing to build: give a graph file, --weights <dir>, or --vision <dir> --llm <dir>');
  return 'none';
}

async function openSources(o: BuildOptions, path: BuildPath): Promise<WeightSource[]> {
  if (path === 'A') return [{ role: 'unified', checkpoint: await Checkpoint.open(o.weights!) }];
  if (path === 'B') {
    const vision = await Checkpoint.open(o.vision!);
    const opened: WeightSource[] = [{ role: 'vision', checkpoint: vision }];
    try {
      opened.push({ role: 'llm', checkpoint: await Checkpoint.open(o.llm!) });
      if (o.projector) opened.push({ role: 'projector', checkpoint: await Checkpoint.openFile(o.projector) });
      return opened;
    } catch (e) {
      for (const s of opened) await s.checkpoint.close();
      throw e;
    }
  }
  return [];
}

/** The graph file's model (checked against the configs), or the model the configs describe. */
async function resolveModel(o: BuildOptions, path: BuildPath, sources: WeightSource[]): Promise<Model> {
  const derived = deriveFromConfigs(o, path, sources);
  const model = o.graph ? await loadGraphFile(o.graph) : derived!;
  if (model instanceof InternVLChatModel) {
    if (o.graph && derived) checkAgainstConfig(model, derived, configNames(path, sources));
    model.options.imgContextTokenId ??= o.imgContextTokenId ?? tokenizerContextId(path, sources);
    if (!o.graph) model.options.name = derivedName(o);
  }
  return model;
}

/** A derived graph is named after its checkpoint, so the output does not depend on --out. */
function derivedName(o: BuildOptions): string {
  return nodePath.basename(nodePath.resolve((o.weights ?? o.llm)!));
}

const configFile = (s: WeightSource): string => nodePath.join(s.checkpoint.dir, 'config.json');

function deriveFromConfigs(o: BuildOptions, path: BuildPath, sources: WeightSource[]): InternVLChatModel | undefined {
  if (path === 'A') return internvlFromConfig({ ...sources[0]!.checkpoint.config }, configFile(sources[0]!), pickProjectorOptions(o));
  if (path === 'B') {
    const [vision, llm] = sources as [WeightSource, WeightSource];
    return internvlFromParts({ ...vision.checkpoint.config }, configFile(vision), { ...llm.checkpoint.config }, configFile(llm), pickProjectorOptions(o));
  }
  return undefined;
}

function configNames(path: BuildPath, sources: WeightSource[]): { vision?: string; llm?: string; composite?: string } {
  if (path === 'A') {
    const file = configFile(sources[0]!);
    return { vision: `${file} vision_config`, llm: `${file} llm_config`, composite: file };
  }
  return { vision: configFile(sources[0]!), llm: configFile(sources[1]!) };
}

function tokenizerContextId(path: BuildPath, sources: WeightSource[]): number | undefined {
  const dir = tokenizerDir(path, sources);
  return dir ? findSpecialTokenId(dir) : undefined;
}

/** Where the tokenizer files are: the unified checkpoint (Path A) or the LLM's (Path B). */
function tokenizerDir(path: BuildPath, sources: WeightSource[]): string | undefined {
  return path === 'A' ? sources[0]?.checkpoint.dir : sources.find((s) => s.role === 'llm')?.checkpoint.dir;
}

function llmConfigOf(path: BuildPath, sources: WeightSource[]): Readonly<Record<string, unknown>> | undefined {
  if (path === 'B') return sources.find((s) => s.role === 'llm')?.checkpoint.config;
  const llm = sources[0]?.checkpoint.config['llm_config'];
  return typeof llm === 'object' && llm !== null ? (llm as Record<string, unknown>) : undefined;
}
