/**
 * `vlmc build` as a library call: graph (file or derived from configs) + weights (Path A, Path B or
 * none) -> checked, bound, written artifact.
 */
import * as nodePath from 'node:path';
import { UserError } from './errors.ts';
import { checkpointName } from './init/name.ts';
import type { ParamDType } from './ir/dtype.ts';
import type { Graph } from './ir/graph.ts';
import { Checkpoint } from './checkpoint/checkpoint.ts';
import { checkContextTokenId, findSpecialTokenId } from './checkpoint/tokens.ts';
import { checkCompileOptions, compile, TRAIN_ENTRY, type CompileOptions } from './compile.ts';
import type { TraceFacts } from './ir/builder.ts';
import { loadGraphFile } from './graph-file.ts';
import { InternVLChatModel } from './models/internvl.ts';
import { PROJECTOR_FLAGS, internvlFromConfig, internvlFromParts, pickProjectorOptions, type ProjectorOptions } from './models/from-config.ts';
import { HF_LM_HEAD_KEYS, hfDefaultImageTokenId, internvlFromHFConfig, isHFInternVLConfig, isHFVisionConfig } from './models/from-hf-config.ts';
import { hfLayout, hfVisionLayout } from './models/internvl.hf.names.ts';
import { INTERNVL_BINDING, originalLayout, type SourceRole } from './models/internvl.names.ts';
import { planBinding, type BuildPath, type WeightSource } from './bind/plan.ts';
import { checkAgainstConfig } from './bind/config-check.ts';
import { checkGlobsMatch } from './bind/globs.ts';
import type { RequestFiles } from './inputs/needs.ts';
import { WRITTEN_TEMPLATE } from './models/to-config.ts';
import { writeArtifact, type ExtraGraph } from './artifact/write.ts';
import { checkOutputPath } from './fs/output-path.ts';
import { freeze, preset, unfreeze, type FreezeRule } from './dsl/freeze.ts';
import type { TrainGraph } from './train/compile-train.ts';
import type { Manifest } from './artifact/format.ts';
import type { Model } from './dsl/model.ts';
import type { Target } from './passes/fusion/index.ts';
import type { QuantScheme } from './quant/blockwise.ts';
import { quantTransformFor } from './quant/transform.ts';
import { withPackedLayout } from './bind/packed.ts';
import { checkLoraConfig, loraDeclarationFor, openAdapterSources, withLoraLayout, type LoraBuildOptions } from './bind/lora-sources.ts';
import { loraFreezeRules, loraOf } from './passes/lora.ts';

export interface BuildOptions extends ProjectorOptions, LoraBuildOptions {
  /** Path B (or an override in Path A): tile size fed to the ViT, as InternVL's `--force_image_size`; same as `imageSize`. */
  forceImageSize?: number;
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
  /** Stored parameter dtype: `'fp32' | 'fp16' | 'bf16'` or `'float32' | 'float16' | 'bfloat16'` (default fp32). */
  dtype?: ParamDType | DTypeFlag;
  opset?: number;
  /** `portable` (default) or `gpu` (ONNX Runtime fused ops); see CompileOptions. */
  target?: Target;
  /** `none`, `all` or a comma list of fusion names (src/passes/fusion). */
  fuse?: string;
  /** Weight-only quantisation of the LLM linears (with target gpu). */
  quant?: QuantScheme;
  allowMissing?: string[];
  ignoreUnexpected?: string[];
  /**
   * Without weights: `'random'` gives every parameter its declared init under `seed`; by default
   * the artifact is structure-only (no values; `vlmc run` refuses it).
   */
  init?: 'random';
  onProgress?: (written: number, total: number) => void;
  /** Also write train.onnx and optimizer.onnx (docs/training.md). */
  train?: boolean;
  /** Freeze rules applied after the graph's own: the preset, then `rules` in order (the CLI's --freeze / --unfreeze in argv order), then `freeze`, then `unfreeze`. */
  preset?: string;
  rules?: { action: 'freeze' | 'unfreeze'; pattern: string }[];
  freeze?: string[];
  unfreeze?: string[];
  /** Write the split artifact (vision.onnx, embedding.onnx, decoder.onnx, pipeline.json, tokenizer files). */
  split?: boolean;
  /** Told what a split or training artifact will lack for vlmc generate / vlmc train (src/inputs/needs.ts). */
  onWarning?: (message: string) => void;
}

export interface BuildResult {
  manifest: Manifest;
  graph: Graph;
  model: Model;
  /** The training graph, when built with `train`. */
  train?: TrainGraph;
}

function cliFreezeRules(o: BuildOptions): FreezeRule[] {
  const from = (origin: string, rs: FreezeRule[]) => rs.map((r) => ({ ...r, site: undefined, origin }));
  return [
    ...(o.preset ? from(`--preset ${o.preset}`, preset(o.preset)) : []),
    ...(o.rules ?? []).flatMap((r) => from(`--${r.action} '${r.pattern}'`, (r.action === 'freeze' ? freeze : unfreeze)(r.pattern))),
    ...(o.freeze ?? []).flatMap((g) => from(`--freeze '${g}'`, freeze(g))),
    ...(o.unfreeze ?? []).flatMap((g) => from(`--unfreeze '${g}'`, unfreeze(g))),
  ];
}

/** train.onnx and optimizer.onnx for the model's and the build's freeze rules, and their manifest section. */
async function trainingGraphs(model: Model, compileOptions: CompileOptions, path: BuildPath, sources: WeightSource[]): Promise<{ graphs: ExtraGraph[]; files: { name: string; bytes: Uint8Array | string }[]; manifest: Partial<Manifest>; train: TrainGraph }> {
  const { compileTrain } = await import('./train/compile-train.ts');
  const { compileOptimizer } = await import('./train/optimizer.ts');
  const { trainManifest, trainingFiles, TRAIN_FILE, OPTIMIZER_FILE } = await import('./train/artifact.ts');
  const train = compileTrain(model, compileOptions);
  const optimizer = compileOptimizer(train.trainable, { opset: compileOptions.opset });
  return {
    graphs: [
      { file: TRAIN_FILE, graph: train.graph },
      { file: OPTIMIZER_FILE, graph: optimizer },
    ],
    files: trainingFiles(model, path === 'none' ? undefined : sources[0]!.role === 'unified' ? sources[0]!.checkpoint.dir : undefined, sources.find((s) => s.role === 'llm' || s.role === 'unified')?.checkpoint.dir),
    manifest: { train: trainManifest(train, [...model.train, ...loraFreezeRules(loraOf(model, compileOptions.lora)), ...(compileOptions.rules ?? [])], loraOf(model, compileOptions.lora)) },
    train,
  };
}

/** The short dtype names of `--dtype`. */
export type DTypeFlag = 'fp32' | 'fp16' | 'bf16';
const DTYPE_NAMES: Record<string, ParamDType> = { fp32: 'float32', fp16: 'float16', bf16: 'bfloat16', float32: 'float32', float16: 'float16', bfloat16: 'bfloat16' };

function storedDtype(dtype: string | undefined): ParamDType {
  if (dtype === undefined) return 'float32';
  const known = Object.hasOwn(DTYPE_NAMES, dtype) ? DTYPE_NAMES[dtype] : undefined;
  if (!known) throw new UserError(`dtype '${dtype}' is not one of fp32, fp16, bf16 (or float32, float16, bfloat16)`);
  return known;
}

export async function build(options: BuildOptions): Promise<BuildResult> {
  if (typeof options?.out !== 'string' || options.out === '') throw new UserError('build: `out` (the artifact folder to write) is required');
  const o = { ...normalizeImageSize(options), dtype: storedDtype(options.dtype) };
  const path = buildPath(o);
  checkFlagsAgainstGraph(o);
  // Training graphs belong to the single-graph artifact; a split one would drop them unannounced.
  if (o.train && o.split) throw new UserError('--train and --split: training graphs are written beside model.onnx; build the training artifact and the split artifact separately');
  checkOutputPath(o.out, { kind: 'artifact', flag: '--out', inputs: [o.graph, o.weights, o.vision, o.llm, o.projector] });
  const sources = await openSources(o, path);
  try {
    const { model, facts } = await resolveModel(o, path, sources);
    checkLoraConfig(model, sources[0]);
    sources.push(...(await openAdapterSources(o.adapters ?? [], model, sources)));
    // Loaded only here: it brings in the tokenizer library, which a plain build never needs.
    if (o.split || o.train) (await import('./inputs/needs.ts')).checkRequestFiles(requestFiles(o, path, sources, facts), o.onWarning);
    // Everything decided here travels in the options; the model is never written to.
    const common: CompileOptions = { opset: o.opset, paramDtype: o.dtype, rules: cliFreezeRules(o), facts, lora: loraDeclarationFor(o, model, sources), loraInputs: o.loraInputs };
    const forward: CompileOptions = { ...common, target: o.target, fuse: o.fuse, quant: o.quant, keepParamNames: o.train === true || sources.some((s) => s.lora) };
    // train.onnx is portable; --quant is passed so the training pass can refuse it (it would read packed weights).
    const training: CompileOptions = { ...common, quant: o.quant };
    checkCompileOptions(forward);
    if (o.train) checkCompileOptions({ ...training, entry: TRAIN_ENTRY });
    const graph = compile(model, forward);
    const trained = o.train ? await trainingGraphs(model, training, path, sources) : undefined;
    checkGlobsMatch(graph.params, path, sources, o);
    const plan = planBinding(graph.params, path, sources, { ...INTERNVL_BINDING, seed: o.seed ?? 0, allowMissing: o.allowMissing, ignoreUnexpected: o.ignoreUnexpected, graphFrom: o.graph ?? derivedFrom(o, sources) });
    const structureOnly = path === 'none' && o.init !== 'random';
    const transform = quantTransformFor(graph);
    if (o.split) {
      const { writeSplit } = await import('./generate/split-build.ts');
      const writeOptions = { dtype: o.dtype, structureOnly, onProgress: o.onProgress, transform } as const;
      const manifest = await writeSplit(o.out, model, graph, plan, writeOptions, { compile: forward, tokenizerDir: tokenizerDir(path, sources), config: path === 'A' ? sources[0]?.checkpoint.config : undefined, configDir: path === 'A' ? sources[0]?.checkpoint.dir : undefined, llmConfig: llmConfigOf(path, sources) });
      return { manifest, graph, model };
    }
    const manifest = await writeArtifact(o.out, graph, plan, { dtype: o.dtype, structureOnly, onProgress: o.onProgress, transform, extraGraphs: trained?.graphs, extraFiles: trained?.files, manifestExtras: trained?.manifest });
    return { manifest, graph, model, train: trained?.train };
  } finally {
    for (const s of sources) await s.checkpoint.close();
  }
}

function buildPath(o: BuildOptions): BuildPath {
  if (o.weights && (o.vision || o.llm)) throw new UserError('give either --weights (Path A) or --vision and --llm (Path B), not both');
  if (o.projector && !(o.vision || o.llm)) throw new UserError('--projector belongs to Path B (--vision and --llm)');
  if (o.init !== undefined && (o.weights || o.vision || o.llm)) throw new UserError('--init random builds without weights; drop it, or drop --weights / --vision / --llm');
  if (o.adapters?.length && !(o.weights || o.vision || o.llm)) throw new UserError('--adapter applies a LoRA adapter onto base weights: give --weights <dir> (Path A) or --vision <dir> --llm <dir> (Path B)');
  if (o.weights) return 'A';
  if (o.vision || o.llm) {
    if (!o.vision || !o.llm) throw new UserError('Path B needs both --vision <dir> and --llm <dir>');
    return 'B';
  }
  if (o.init !== undefined && o.init !== 'random') throw new UserError(`--init '${String(o.init)}': the only initialisation is 'random'`);
  if (!o.graph) throw new UserError('nothing to build: give a graph file, --weights <dir>, or --vision <dir> --llm <dir>');
  return 'none';
}

async function openSources(o: BuildOptions, path: BuildPath): Promise<WeightSource[]> {
  if (path === 'A') {
    const checkpoint = await Checkpoint.open(o.weights!);
    try {
      return [withPackedLayout(withLoraLayout(sourceOf('unified', checkpoint)))];
    } catch (e) {
      await checkpoint.close();
      throw e;
    }
  }
  if (path === 'B') {
    const opened: WeightSource[] = [sourceOf('vision', await Checkpoint.open(o.vision!))];
    try {
      opened.push(withPackedLayout(sourceOf('llm', await Checkpoint.open(o.llm!))));
      if (o.projector) opened.push(sourceOf('projector', await Checkpoint.openFile(o.projector)));
      return opened;
    } catch (e) {
      for (const s of opened) await s.checkpoint.close();
      throw e;
    }
  }
  return [];
}

/** `forceImageSize` and `imageSize` are one option; giving both with different values is ambiguous. */
function normalizeImageSize(o: BuildOptions): BuildOptions {
  if (o.forceImageSize === undefined) return o;
  if (o.imageSize !== undefined && o.imageSize !== o.forceImageSize) {
    throw new UserError(`forceImageSize (${o.forceImageSize}) and imageSize (${o.imageSize}) disagree; give one`);
  }
  return { ...o, imageSize: o.forceImageSize };
}

/**
 * The projector flags shape derived graphs only; a graph file sets those values itself, so a flag
 * beside one would be silently ignored (or blamed on config.json). Refused, naming both.
 */
function checkFlagsAgainstGraph(o: BuildOptions): void {
  if (!o.graph) return;
  const given = (Object.keys(PROJECTOR_FLAGS) as (keyof typeof PROJECTOR_FLAGS)[]).filter((k) => o[k] !== undefined);
  if (given.length === 0) return;
  const flags = given.map((k) => PROJECTOR_FLAGS[k]).join(', ');
  throw new UserError(`${flags} ${given.length === 1 ? 'applies' : 'apply'} to derived graphs only; ${o.graph} sets ${given.join(', ')} itself: drop the flag or change the graph file`);
}

/** A checkpoint read through its layout: the Hugging Face-native name map where its config.json says so, else the original one. */
function sourceOf(role: SourceRole, checkpoint: Checkpoint): WeightSource {
  const cfg = checkpoint.config;
  if (role === 'unified' && isHFInternVLConfig(cfg)) return { role, checkpoint, layout: hfLayout(checkpoint.keys()) };
  if (role === 'vision' && isHFVisionConfig(cfg)) return { role, checkpoint, layout: hfVisionLayout() };
  return { role, checkpoint, layout: originalLayout(role) };
}

/**
 * The graph file's model (checked against the configs), or the model the configs describe, and the
 * facts the build decides for it (the <IMG_CONTEXT> id). Neither model is changed afterwards.
 */
async function resolveModel(o: BuildOptions, path: BuildPath, sources: WeightSource[]): Promise<{ model: Model; facts: TraceFacts }> {
  const derived = deriveFromConfigs(o, path, sources);
  const model = o.graph ? await loadGraphFile(o.graph) : derived!;
  if (!(model instanceof InternVLChatModel)) return { model, facts: {} };
  if (o.graph && derived) checkAgainstConfig(model, derived, configNames(path, sources));
  return { model, facts: { imgContextTokenId: contextTokenId(model, o, path, sources, derived) } };
}

/** The <IMG_CONTEXT> id from the graph, else the flag, else the tokenizer files; checked against the vocabulary. */
function contextTokenId(model: InternVLChatModel, o: BuildOptions, path: BuildPath, sources: WeightSource[], derived: InternVLChatModel | undefined): number | undefined {
  const found = findContextTokenId(model, o, path, sources, derived);
  if (found) checkContextTokenId(found.id, model.language_model.config.vocab, found.source);
  return found?.id;
}

function findContextTokenId(model: InternVLChatModel, o: BuildOptions, path: BuildPath, sources: WeightSource[], derived: InternVLChatModel | undefined): { id: number; source: string } | undefined {
  const own = model.options.imgContextTokenId;
  if (own !== undefined) {
    if (o.imgContextTokenId !== undefined && o.imgContextTokenId !== own) {
      throw new UserError(`--img-context-token-id ${o.imgContextTokenId}: ${o.graph} sets imgContextTokenId ${own} itself; drop the flag or change the graph file`);
    }
    return { id: own, source: `${o.graph ?? 'the graph'}: imgContextTokenId` };
  }
  if (o.imgContextTokenId !== undefined) return { id: o.imgContextTokenId, source: '--img-context-token-id (imgContextTokenId)' };
  // An HF-native config names it (image_token_id).
  const fromConfig = derived?.options.imgContextTokenId;
  if (fromConfig !== undefined) return { id: fromConfig, source: `${configFile(sources[0]!)}: image_token_id` };
  const hfNative = path === 'A' && isHFInternVLConfig(sources[0]!.checkpoint.config);
  const found = tokenizerContextId(path, sources) ?? (hfNative ? { id: hfDefaultImageTokenId(model), file: "transformers' default image_token_id" } : undefined);
  return found?.id === undefined ? undefined : { id: found.id, source: found.file };
}

/** A derived graph is named after its checkpoint, so the output does not depend on --out. */
function derivedName(o: BuildOptions, path: BuildPath, sources: WeightSource[]): string {
  // The checkpoint's own name, as vlmc init names graph files (config `_name_or_path`, else the folder above generic names).
  const source = path === 'A' ? sources[0] : sources.find((s) => s.role === 'llm');
  return source ? checkpointName(source.checkpoint.dir, source.checkpoint.config) : nodePath.basename(nodePath.resolve((o.weights ?? o.llm)!));
}

const configFile = (s: WeightSource): string => nodePath.join(s.checkpoint.dir, 'config.json');

/** What a derived graph came from, for the binding report: the config(s), and the projector flags that changed them. */
function derivedFrom(o: BuildOptions, sources: WeightSource[]): string {
  const configs = sources.filter((s) => s.role !== 'projector').map(configFile).join(' + ');
  const flags = (Object.keys(PROJECTOR_FLAGS) as (keyof typeof PROJECTOR_FLAGS)[]).filter((k) => o[k] !== undefined).map((k) => `${PROJECTOR_FLAGS[k].split(' ')[0]} ${String(o[k])}`);
  return flags.length > 0 ? `${configs} with ${flags.join(', ')}` : configs;
}

function deriveFromConfigs(o: BuildOptions, path: BuildPath, sources: WeightSource[]): InternVLChatModel | undefined {
  // A graph file names itself; a derived one is named after its checkpoint.
  const named = o.graph || path === 'none' ? {} : { name: derivedName(o, path, sources) };
  if (path === 'A') {
    const { checkpoint } = sources[0]!;
    if (isHFInternVLConfig(checkpoint.config)) {
      const hasLmHead = HF_LM_HEAD_KEYS.some((k) => checkpoint.has(k));
      return internvlFromHFConfig({ ...checkpoint.config }, configFile(sources[0]!), { ...pickProjectorOptions(o), ...named }, { hasLmHead });
    }
    return internvlFromConfig({ ...checkpoint.config }, configFile(sources[0]!), { ...pickProjectorOptions(o), ...named });
  }
  if (path === 'B') {
    const [vision, llm] = sources as [WeightSource, WeightSource];
    return internvlFromParts({ ...vision.checkpoint.config }, configFile(vision), { ...llm.checkpoint.config }, configFile(llm), { ...pickProjectorOptions(o), ...named });
  }
  return undefined;
}

function configNames(path: BuildPath, sources: WeightSource[]): { vision?: string; llm?: string; composite?: string } {
  if (path === 'A') {
    const file = configFile(sources[0]!);
    const llm = isHFInternVLConfig(sources[0]!.checkpoint.config) ? 'text_config' : 'llm_config';
    return { vision: `${file} vision_config`, llm: `${file} ${llm}`, composite: file };
  }
  return { vision: configFile(sources[0]!), llm: configFile(sources[1]!) };
}

function tokenizerContextId(path: BuildPath, sources: WeightSource[]): { id: number; file: string } | undefined {
  const dir = tokenizerDir(path, sources);
  if (!dir) return undefined;
  const id = findSpecialTokenId(dir);
  return id === undefined ? undefined : { id, file: `${dir} (added_tokens.json / tokenizer_config.json)` };
}

/** Where the tokenizer files are: the unified checkpoint (Path A) or the LLM's (Path B). */
function tokenizerDir(path: BuildPath, sources: WeightSource[]): string | undefined {
  return path === 'A' ? sources[0]?.checkpoint.dir : sources.find((s) => s.role === 'llm')?.checkpoint.dir;
}

/** What vlmc generate (--split) or vlmc train (--train) will read from the artifact, for checkRequestFiles. */
function requestFiles(o: BuildOptions, path: BuildPath, sources: WeightSource[], facts: TraceFacts): RequestFiles {
  const unified = path === 'A' ? sources[0]! : undefined;
  // Without a unified config, --train writes one naming the default template; --split writes none.
  const template = unified
    ? { name: unified.checkpoint.config['template'], where: configFile(unified) }
    : { name: o.train ? WRITTEN_TEMPLATE : undefined, where: 'the config.json written for a split artifact built without a unified checkpoint' };
  const source = o.imgContextTokenId !== undefined ? `--img-context-token-id ${o.imgContextTokenId}` : o.graph ? `${o.graph} (imgContextTokenId)` : undefined;
  return { purpose: o.split ? '--split' : '--train', tokenizerDir: tokenizerDir(path, sources), template, imgContextTokenId: facts.imgContextTokenId, imgContextSource: source };
}

function llmConfigOf(path: BuildPath, sources: WeightSource[]): Readonly<Record<string, unknown>> | undefined {
  if (path === 'B') return sources.find((s) => s.role === 'llm')?.checkpoint.config;
  const llm = sources[0]?.checkpoint.config['llm_config'];
  return typeof llm === 'object' && llm !== null ? (llm as Record<string, unknown>) : undefined;
}
