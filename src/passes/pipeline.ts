/**
 * The compiler's passes, in the order they run. Each says when it applies (from the options and
 * the entry point), may refuse a combination of options it cannot serve (before anything is traced,
 * with one message naming the flags), and edits only the graph it is given.
 */
import { UserError } from '../errors.ts';
import type { Graph } from '../ir/graph.ts';
import type { ParamDType } from '../ir/dtype.ts';
import type { TraceFacts } from '../ir/builder.ts';
import type { QuantScheme } from '../quant/blockwise.ts';
import { applyFreezeRules, type FreezeRule } from '../dsl/freeze.ts';
import { MODEL_ENTRY, TRAIN_ENTRY, type Model } from '../dsl/model.ts';
import { foldShapes } from './fold-shapes.ts';
import { removeDeadNodes, removeUnusedParams } from './dead-nodes.ts';
import { appendBackward, type DimSizes, type PruningReport } from './differentiate.ts';
import { fuseGraph, isFused, parseFuse, type Target } from './fusion/index.ts';
import { checkWebgpuGraph } from './webgpu-profile.ts';
import { lowerComposites } from './lower.ts';
import { quantizeLinears } from './quantize.ts';
import { ndLinears } from './nd-linears.ts';
import { computeInHalf } from './half-precision.ts';
import { checkOpset, retargetOpset } from './opset.ts';
import { storeParamsAs } from './param-storage.ts';
import { nameGraph } from './naming.ts';
import { applyLora, checkLoraRules, loraFreezeRules, loraOf } from './lora.ts';
import type { LoraDeclaration } from '../dsl/lora.ts';

/** What the passes read: the build's choices, fixed before tracing (the model is never written to). */
export interface PassOptions {
  /** Element type parameters are stored in; the graph computes in fp32 either way (but see `target`). */
  paramDtype?: ParamDType;
  /** Trace for structure only (locks, diffs, counts): an unknown <IMG_CONTEXT> id becomes a placeholder. */
  structureOnly?: boolean;
  /** `portable` (default): standard ONNX ops only. `gpu`: ONNX Runtime fused ops (src/passes/fusion). */
  target?: Target;
  /** Which fusions (`none`, `all` or a comma list); defaults to all for `gpu`, none for `portable`. */
  fuse?: string;
  /** Weight-only quantisation of the LLM's linear layers (MatMulNBits; needs target gpu). */
  quant?: QuantScheme;
  /** Freeze rules applied after the model's own (the CLI's --preset / --freeze / --unfreeze). */
  rules?: FreezeRule[];
  /** Facts decided at build time that the trace reads (the <IMG_CONTEXT> id, the name). */
  facts?: TraceFacts;
  /** Sizes of the symbolic dims for the FLOP figures of train.onnx's pruning report. */
  sizes?: DimSizes;
  /** LoRA the build adds to the model's own (--use-llm-lora, a LoRA checkpoint kept separate); the `lora` pass applies both. */
  lora?: LoraDeclaration;
  /** The LoRA adapters are graph inputs fed at run time (`vlmc run --adapter`), not parameters. */
  loraInputs?: boolean;
  /**
   * Every parameter keeps its own name (`pack-projections` packs nothing): another graph of the
   * artifact reads the parameters by name (train.onnx beside a --target gpu model.onnx), or binding
   * merges LoRA adapters into their base weights (a LoRA checkpoint without --keep-lora, --adapter),
   * one base weight each.
   */
  keepParamNames?: boolean;
}

export interface PipelineOptions extends PassOptions {
  opset: number;
}

export interface PassContext {
  model: Model;
  entry: string;
  options: PipelineOptions;
  /** What passes found, for the build's summary and the manifest. */
  report: { pruning?: PruningReport; fusions?: Record<string, number>; lowered?: Record<string, number> };
}

export interface Pass {
  name: string;
  applies(ctx: PassContext): boolean;
  /**
   * Throws a UserError naming the flags when the options ask this pass for what it cannot serve.
   * Asked of every pass, applying or not: a flag whose pass does not apply is refused here too.
   */
  refuse?(ctx: PassContext): void;
  run(graph: Graph, ctx: PassContext): void;
}

const targetOf = (ctx: PassContext): Target => ctx.options.target ?? 'portable';
const dtypeOf = (ctx: PassContext): ParamDType => ctx.options.paramDtype ?? 'float32';
const isTraining = (ctx: PassContext): boolean => ctx.entry === TRAIN_ENTRY;

/** What every graph ends with, those made without tracing a model (optimizer.onnx) too: built at the op builders' opset, moved to the asked one, named, checked. */
export const FINISHING_PASSES: readonly Pass[] = [
  { name: 'retarget-opset', applies: () => true, run: (g) => retargetOpset(g) },
  { name: 'name', applies: () => true, run: (g) => nameGraph(g) },
  { name: 'check-opset', applies: () => true, run: (g) => checkOpset(g) },
];

/** The finishing passes over a graph built directly (no model, no options). */
export function finishGraph(graph: Graph): void {
  for (const p of FINISHING_PASSES) p.run(graph, undefined as unknown as PassContext);
}

export const PASSES: readonly Pass[] = [
  {
    name: 'lower-composites',
    applies: () => true,
    run: (g, ctx) => {
      const fusions = parseFuse(ctx.options.fuse, targetOf(ctx));
      ctx.report.lowered = lowerComposites(g, targetOf(ctx), isTraining(ctx) ? [] : fusions);
    },
  },
  { name: 'fold-shapes', applies: () => true, run: (g) => foldShapes(g) },
  { name: 'dead-nodes', applies: () => true, run: (g) => removeDeadNodes(g) },
  {
    name: 'lora',
    // Before freeze, so freeze rules see the adapters; over every parameter, so every graph names them alike.
    applies: (ctx) => loraOf(ctx.model, ctx.options.lora).length > 0,
    refuse: (ctx) => {
      if (ctx.options.loraInputs && isTraining(ctx)) throw new UserError('--lora-inputs with --train: adapters fed at run time are not parameters to train; build the training artifact without --lora-inputs');
    },
    run: (g, ctx) => applyLora(g, loraOf(ctx.model, ctx.options.lora), ctx.options.loraInputs, isTraining(ctx)),
  },
  {
    name: 'freeze',
    applies: () => true,
    // Over every parameter of the model (before an entry point drops the ones it does not read), so a rule means the same in every graph.
    run: (g, { model, options }) => {
      const lora = loraOf(model, options.lora);
      const rules = [...model.train, ...(options.rules ?? [])];
      checkLoraRules(rules, lora);
      applyFreezeRules(g.params, [...model.train, ...loraFreezeRules(lora, options.loraInputs), ...(options.rules ?? [])], model.aliases());
    },
  },
  {
    name: 'prune-params',
    // The whole model keeps every parameter (it is the model); a part keeps the ones it reads.
    applies: (ctx) => ctx.entry !== MODEL_ENTRY && !isTraining(ctx),
    run: (g) => removeUnusedParams(g),
  },
  {
    name: 'differentiate',
    applies: isTraining,
    refuse: (ctx) => {
      if (!isTraining(ctx)) return;
      if (targetOf(ctx) !== 'portable') throw new UserError(`train.onnx with --target ${targetOf(ctx)}: the fused ops have no gradient rules; the training graph is portable (--target applies to model.onnx)`);
      if (ctx.options.quant) throw new UserError('--train with --quant: train.onnx reads the float weights that --quant stores packed; build the training artifact without --quant');
    },
    run: (g, ctx) => {
      g.metadata['vlmc.graph'] = 'train';
      ctx.report.pruning = appendBackward(g, ctx.options.sizes);
    },
  },
  {
    name: 'fuse',
    applies: (ctx) => targetOf(ctx) !== 'portable',
    // parseFuse also refuses --fuse without --target gpu, so it runs for every graph.
    refuse: (ctx) => void parseFuse(ctx.options.fuse, targetOf(ctx)),
    run: (g, ctx) => {
      // Packing renames parameters: not where another graph or a LoRA merge needs their own names.
      const names = parseFuse(ctx.options.fuse, targetOf(ctx)).filter((n) => n !== 'pack-projections' || !ctx.options.keepParamNames);
      const counts = fuseGraph(g, names, ctx.report.lowered, targetOf(ctx));
      ctx.report.fusions = counts;
      g.metadata['vlmc.target'] = targetOf(ctx);
      g.metadata['vlmc.fusions'] = Object.entries(counts).map(([n, c]) => `${n}:${c}`).join(',');
    },
  },
  {
    name: 'quantize',
    applies: (ctx) => ctx.options.quant !== undefined,
    refuse: (ctx) => {
      if (ctx.options.quant && !isFused(targetOf(ctx))) throw new UserError('--quant needs --target gpu or webgpu: MatMulNBits is an ONNX Runtime contrib op');
    },
    run: (g, ctx) => {
      const q = ctx.options.quant!;
      const count = quantizeLinears(g, q);
      g.metadata['vlmc.quant'] = `int${q.bits} ${q.symmetric ? 'symmetric' : 'asymmetric'} block ${q.blockSize}: ${count} weights`;
    },
  },
  {
    name: 'nd-linears',
    // After quantize, so MatMulNBits drops its flattening too; before the half pass, which sees the final ops.
    applies: (ctx) => targetOf(ctx) === 'gpu',
    run: (g, ctx) => void ndLinears(g, dtypeOf(ctx) !== 'float32'),
  },
  {
    name: 'compute-in-half',
    // The gpu target computes in a half storage dtype; the portable graph only stores in it.
    applies: (ctx) => isFused(targetOf(ctx)) && dtypeOf(ctx) !== 'float32',
    run: (g, ctx) => {
      const dtype = dtypeOf(ctx) as 'float16' | 'bfloat16';
      // The KV cache stays in the compute dtype between steps where onnxruntime-node can hold it.
      const kvCache = (name: string) => dtype === 'float16' && /^(past_key_values|present)\./.test(name);
      computeInHalf(g, dtype, kvCache);
      g.metadata['vlmc.compute_dtype'] = dtype;
    },
  },
  {
    name: 'store-params',
    applies: (ctx) => !isFused(targetOf(ctx)) && dtypeOf(ctx) !== 'float32',
    run: (g, ctx) => storeParamsAs(g, dtypeOf(ctx)),
  },
  {
    name: 'check-webgpu',
    applies: (ctx) => targetOf(ctx) === 'webgpu',
    refuse: (ctx) => {
      if (targetOf(ctx) === 'webgpu' && dtypeOf(ctx) === 'bfloat16') throw new UserError('--target webgpu with --dtype bf16: WGSL has no bfloat16, so no WebGPU kernel computes in it; use --dtype fp16 or fp32');
    },
    run: (g) => checkWebgpuGraph(g),
  },
  ...FINISHING_PASSES,
];
