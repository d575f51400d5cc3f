/**
 * The one compiler: every graph vlmc writes (the whole forward, the split vision / embedding /
 * decoder graphs, train.onnx) is `trace(model, entry)` followed by one ordered list of passes.
 * The model is never written to: tracing gives the graph its own parameters (src/ir/graph.ts
 * GraphParam), facts decided at build time travel in the options, and each pass edits only the
 * graph. A pass that cannot serve a combination of options refuses it before anything is traced.
 *
 *   trace ─ fold-shapes ─ dead-nodes ─ [lora] ─ freeze ─ [prune-params] ─ [differentiate] ─ [fuse]
 *         ─ [quantize] ─ [compute-in-half] ─ retarget-opset ─ [store-params] ─ name ─ check-opset
 */
import { activeBuilder, GraphBuilder, withBuilder } from './ir/builder.ts';
import { Value, type Graph, type GraphParam } from './ir/graph.ts';
import { resetFreshDims } from './ir/dims.ts';
import { assignPaths, collectParams } from './dsl/module.ts';
import { MODEL_ENTRY, TRAIN_ENTRY, type EntryPoint, type Model } from './dsl/model.ts';
import { UserError } from './errors.ts';
import { causalLmLoss } from './nn/loss.ts';
import { PASSES, type Pass, type PassContext, type PassOptions } from './passes/pipeline.ts';
import type { PruningReport } from './passes/differentiate.ts';

export { MODEL_ENTRY, TRAIN_ENTRY };
export { GRAD_PREFIX, type PruningReport } from './passes/differentiate.ts';
export const DEFAULT_OPSET = 17;

export interface CompileOptions extends PassOptions {
  /** ONNX opset, 17 to 24 (default DEFAULT_OPSET). */
  opset?: number;
  /** Which entry point to trace: `model` (the whole forward, default), `train`, or one of Model.entryPoints. */
  entry?: string;
}

/** A compiled graph and what its passes reported. */
export interface Compiled {
  graph: Graph;
  /** The parameters that train, in parameter order (train.onnx's `grad.*` outputs). */
  trainable: GraphParam[];
  /** train.onnx only: what pruning the backward by the freeze rules saved. */
  pruning?: PruningReport;
  /** --target gpu: how often each fusion applied. */
  fusions?: Record<string, number>;
}

export function compile(model: Model, options: CompileOptions = {}): Graph {
  return compileWithReport(model, options).graph;
}

export function compileWithReport(model: Model, options: CompileOptions = {}): Compiled {
  const ctx = contextOf(model, options);
  const passes = passesFor(ctx);
  const graph = trace(model, ctx.entry, ctx.options);
  for (const p of passes) p.run(graph, ctx);
  return { graph, trainable: graph.params.filter((p) => p.trainable), ...ctx.report };
}

/**
 * Refuses, with one message naming the flags, options the passes cannot serve together; compile
 * does the same, this lets a build refuse before it opens or reads anything.
 */
export function checkCompileOptions(options: CompileOptions): void {
  passesFor(contextOf(undefined, options));
}

function contextOf(model: Model | undefined, options: CompileOptions): PassContext {
  return { model: model!, options: { ...options, opset: options.opset ?? DEFAULT_OPSET }, entry: options.entry ?? MODEL_ENTRY, report: {} };
}

/** The passes that apply, once each has had its say on the options. */
function passesFor(ctx: PassContext): Pass[] {
  for (const p of PASSES) p.refuse?.(ctx);
  return PASSES.filter((p) => p.applies(ctx));
}

/**
 * Runs the model's entry point under a fresh builder. Every parameter of the model gets this
 * graph's GraphParam (in declaration order), read or not; the freeze pass decides which train.
 */
export function trace(model: Model, entryName: string, options: CompileOptions): Graph {
  resetFreshDims();
  assignPaths(model);
  const entry = entryPoint(model, entryName);
  const inputs = entry.inputs().map((spec) => named(new Value('input', spec.dtype, spec.shape), spec.name));
  // Traced at the op builders' own opset; the retarget pass moves the graph to options.opset.
  const builder = new GraphBuilder(DEFAULT_OPSET, options.structureOnly ?? false, options.facts ?? {});
  const outputs = withBuilder(builder, () => {
    const result = builder.withScope('', model.site, () => entry.forward(...inputs));
    return Object.entries(result).map(([name, v]) => {
      if (v.name !== undefined && v.kind !== 'node') throw new Error(`output '${name}' must be computed, not a ${v.kind}`);
      return named(v, name);
    });
  });
  const params = withBuilder(builder, () => collectParams(model).map((p) => builder.graphParam(p)));
  const metadata = { ...model.metadata(options.facts) };
  // train.onnx says what it is in `vlmc.graph` (the differentiate pass).
  if (entryName !== MODEL_ENTRY && entryName !== TRAIN_ENTRY) metadata['vlmc.entry'] = entryName;
  return { name: metadata['vlmc.model'] ?? 'model', opset: options.opset ?? DEFAULT_OPSET, inputs, outputs, nodes: builder.nodes, params, metadata };
}

function entryPoint(model: Model, name: string): EntryPoint {
  if (name === MODEL_ENTRY) return { inputs: () => model.inputs(), forward: (...xs) => model.forward(...xs) };
  if (name === TRAIN_ENTRY) return trainingEntry(model);
  const entries = model.entryPoints();
  const entry = Object.hasOwn(entries, name) ? entries[name] : undefined;
  if (!entry) throw new UserError(`the model has no entry point '${name}'; it has: ${entryPointNames(model).join(', ')}`);
  return entry;
}

/** The forward with a `labels` input, ending in the causal-LM loss (InternVL's forward with labels). */
function trainingEntry(model: Model): EntryPoint {
  return {
    inputs: () => [...model.inputs(), { name: 'labels', dtype: 'int64', shape: ['batch', 'seq'] }],
    forward: (...xs) => {
      const labels = xs[xs.length - 1]!;
      const { logits } = model.forward(...xs.slice(0, -1));
      if (!logits) throw new UserError('the model has no `logits` output: there is nothing to train');
      return { loss: activeBuilder().withScope('loss', undefined, () => causalLmLoss(logits, labels)) };
    },
  };
}

/** The entry points of a model, `model` first. */
export function entryPointNames(model: Model): string[] {
  return [MODEL_ENTRY, ...Object.keys(model.entryPoints())];
}

function named(v: Value, name: string): Value {
  v.name = name;
  return v;
}
