/**
 * The `lora` pass: the model's and the build's LoRA declarations (src/dsl/lora.ts) applied to one
 * traced graph. Every targeted Linear `y = Gemm(x, W, b, transB=1)` gets two more Gemms,
 *   h = Gemm(x, A, transB=1)                    x A^T          [tokens, r]
 *   y' = Gemm(h, B, y, transB=1, alpha=scaling)  y + s h B^T    [tokens, out]
 * and every reader of y reads y' instead. A = `<module>.lora_A.weight` [r, in] and
 * B = `<module>.lora_B.weight` [out, r] are new parameters of this graph (PEFT's names without the
 * adapter name; InternVL's checkpoint keys come from its layout, src/models/internvl.lora.names.ts),
 * placed right after the wrapped Linear's own, initialised as PEFT does (A kaiming-uniform with
 * a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in)); B zeros, so a fresh LoRA changes nothing).
 *
 * A LoRA part also freezes its base weights and trains only its adapters (PEFT marks only them
 * trainable): `loraFreezeRules`, which the freeze pass applies after the model's own rules and
 * before the build's (so `--unfreeze` can still train more).
 */
import { UserError } from '../errors.ts';
import { constValue, GraphParam, Param, Value, type Graph, type Node } from '../ir/graph.ts';
import { DropoutSig, GemmSig } from '../ops/onnx.generated.ts';
import { freeze, unfreeze, type FreezeRule } from '../dsl/freeze.ts';
import { isTargeted, loraMetadata, loraParamNames, resolveLora, type LoraDeclaration, type ResolvedLoraPart } from '../dsl/lora.ts';
import type { Model } from '../dsl/model.ts';
import { detachedNode } from './fusion/rewrite.ts';

/** The LoRA a compile applies: the model's declaration, then the build's. */
export function loraOf(model: Model | undefined, declared: LoraDeclaration | undefined): ResolvedLoraPart[] {
  if (!model) return [];
  return resolveLora(model.loraParts(), [model.lora, declared]);
}

/** Freezes each LoRA part's base weights and trains its adapters (PEFT's get_peft_model); adapters fed as inputs have no rules. */
export function loraFreezeRules(parts: ResolvedLoraPart[], asInputs = false): FreezeRule[] {
  if (asInputs) return [];
  return parts.flatMap((p) => {
    const origin = `LoRA on ${p.module} (${p.origin})`;
    return [...freeze(p.module), ...unfreeze(`${p.module}.**.lora_A`, `${p.module}.**.lora_B`)].map((r) => ({ ...r, site: undefined, origin }));
  });
}

/** `--preset lora` trains adapters only: without a LoRA declaration it would match nothing, so it says why. */
export function checkLoraRules(rules: readonly FreezeRule[], parts: ResolvedLoraPart[]): void {
  if (parts.length > 0) return;
  const rule = rules.find((r) => r.action === 'unfreeze' && /(^|\.)lora_[AB]$/.test(r.pattern));
  if (rule) {
    throw new UserError(`${rule.origin ?? `unfreeze('${rule.pattern}')`}: no LoRA is declared, so there are no adapters to train; add --use-llm-lora R and / or --use-backbone-lora R (or lora() in the graph file), or --keep-lora with a LoRA checkpoint or --adapter`);
  }
}

/**
 * @param asInputs the adapters are graph inputs of any rank (`lora_rank_<part>`) instead of
 *   parameters: fed at run time (`vlmc run --adapter`), lora_B already multiplied by the adapter's
 *   scaling, since onnxruntime-node cannot switch LoRA adapters itself (docs/training.md).
 */
export function applyLora(graph: Graph, parts: ResolvedLoraPart[], asInputs = false, training = false): void {
  const readers = gemmReaders(graph);
  for (const part of parts) {
    const dropout = training && !asInputs && part.dropout > 0 ? new LoraDropout(graph, part) : undefined;
    for (const weight of targetedWeights(graph, part, readers)) {
      // An input nothing reads would still have to be fed: only the Linears this graph runs get them.
      if (asInputs && !readers.get(weight)?.length) continue;
      const adapters = asInputs ? adapterInputs(graph, part, weight) : adapterParams(graph, part, weight);
      for (const gemm of readers.get(weight) ?? []) addLowRankPath(graph, gemm, adapters.a, adapters.b, asInputs ? 1 : part.scaling, dropout);
    }
    graph.metadata[`vlmc.lora.${part.module}`] = asInputs ? loraInputsMetadata(part) : loraMetadata(part);
  }
}

/** The dim every adapter input of a part has for its rank. */
export const loraRankDim = (module: string): string => `lora_rank_${module}`;

function loraInputsMetadata(p: ResolvedLoraPart): string {
  return `inputs (any rank; lora_B fed times alpha/r) targets=${p.targets.join(',')}`;
}

/** The Gemms reading each parameter as a Linear's weight; a parameter read any other way maps to undefined. */
function gemmReaders(graph: Graph): Map<GraphParam, Node[] | undefined> {
  const out = new Map<GraphParam, Node[] | undefined>();
  for (const node of graph.nodes) {
    node.inputs.forEach((v, i) => {
      const p = v?.param;
      if (!p) return;
      const asLinear = node.op === 'Gemm' && node.domain === '' && i === 1 && node.attrs.transB?.value === 1 && !node.attrs.transA?.value;
      const before = out.has(p) ? out.get(p) : [];
      out.set(p, asLinear && before ? [...before, node] : undefined);
    });
  }
  return out;
}

/**
 * Every `<module>.weight` under the part whose module path (inside the part) a target names,
 * over all the graph's parameters, read or not (ViT layers after select_layer are wrapped too, as
 * PEFT wraps them). Explicit targets must each match; the family's defaults at least one.
 */
function targetedWeights(graph: Graph, part: ResolvedLoraPart, readers: Map<GraphParam, Node[] | undefined>): GraphParam[] {
  const prefix = `${part.module}.`;
  const matched = new Set<string>();
  const out: GraphParam[] = [];
  for (const p of graph.params) {
    if (!p.name.startsWith(prefix) || !p.name.endsWith('.weight')) continue;
    const relative = p.name.slice(prefix.length, -'.weight'.length);
    const hits = part.targets.filter((t) => isTargeted(relative, [t]));
    if (hits.length === 0) continue;
    if (p.shape.length !== 2 || p.decl.role === 'embedding' || (readers.has(p) && readers.get(p) === undefined)) {
      throw new UserError(`${part.origin}: LoRA target '${hits[0]}' names ${p.name}, which is not a Linear's weight; LoRA wraps Linear layers only`);
    }
    for (const t of hits) matched.add(t);
    out.push(p);
  }
  const missing = part.targets.filter((t) => !matched.has(t));
  // The family's own list may name modules a variant lacks; an explicit list must match in full.
  if (out.length === 0 || (!part.targetsAreDefault && missing.length > 0)) {
    const which = out.length === 0 ? part.targets : missing;
    throw new UserError(`${part.origin}: LoRA target${which.length === 1 ? '' : 's'} ${which.map((t) => `'${t}'`).join(', ')} match${which.length === 1 ? 'es' : ''} no Linear under ${part.module}`);
  }
  return out;
}

/** lora_A and lora_B as parameters of the graph, right after the Linear's own (weight, then bias). */
function adapterParams(graph: Graph, part: ResolvedLoraPart, weight: GraphParam): { a: Value; b: Value } {
  const module = weight.name.slice(0, -'.weight'.length);
  const [out, inFeatures] = weight.shape as [number, number];
  const names = loraParamNames(module);
  const a = loraParam(names.a, [part.r, inFeatures], { kind: 'uniform', bound: 1 / Math.sqrt(inFeatures) });
  const b = loraParam(names.b, [out, part.r], { kind: 'zeros' });
  const bias = graph.params.findIndex((p) => p.name === `${module}.bias`);
  const at = Math.max(bias, graph.params.indexOf(weight)) + 1;
  graph.params.splice(at, 0, a, b);
  return { a: a.value, b: b.value };
}

/** lora_A and lora_B as graph inputs, after the others, their rank a dim of the part. */
function adapterInputs(graph: Graph, part: ResolvedLoraPart, weight: GraphParam): { a: Value; b: Value } {
  const names = loraParamNames(weight.name.slice(0, -'.weight'.length));
  const [out, inFeatures] = weight.shape as [number, number];
  const rank = loraRankDim(part.module);
  const input = (name: string, shape: (number | string)[]) => {
    const v = new Value('input', 'float32', shape);
    v.name = name;
    graph.inputs.push(v);
    return v;
  };
  return { a: input(names.a, [rank, inFeatures]), b: input(names.b, [out, rank]) };
}

function loraParam(name: string, shape: number[], init: Param['init']): GraphParam {
  const p = new GraphParam(new Param(name, shape, 'float32', init));
  // Adapters stay float: --quant packs the base weight only.
  p.quantizable = false;
  return p;
}

/** The name of train.onnx's input that sets a part's LoRA dropout (vlmc train feeds the declared ratio; 0 is none). */
export const loraDropoutInput = (module: string): string => `lora_dropout.${module}`;

/**
 * PEFT's lora_dropout on the LoRA input, in train.onnx only: Dropout(x, ratio, training_mode true)
 * with the ratio a scalar graph input, so `vlmc train` drops and `vlmc run --graph train` (ratio 0)
 * computes the eval gradients. Each Dropout has a seed of its own (from its module), so a run's
 * masks are the same every time the artifact trains.
 */
class LoraDropout {
  private readonly ratio: Value;
  private readonly trainingMode = constValue('bool', [], Uint8Array.of(1));

  constructor(graph: Graph, part: ResolvedLoraPart) {
    this.ratio = new Value('input', 'float32', []);
    this.ratio.name = loraDropoutInput(part.module);
    graph.inputs.push(this.ratio);
  }

  /** x with dropout, and the node that computes it. */
  apply(graph: Graph, gemm: Node, x: Value): Node {
    return detachedNode(graph, gemm.scope, DropoutSig, [x, this.ratio, this.trainingMode], { seed: seedOf(gemm.scope) }, 2);
  }
}

/** A stable, positive 31-bit seed from a name (FNV-1a). */
function seedOf(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h & 0x7fffffff;
}

/** y' = y + scaling * (dropout(x) A^T) B^T after `gemm`; every reader of y reads y'. */
function addLowRankPath(graph: Graph, gemm: Node, a: Value, b: Value, scaling: number, dropout?: LoraDropout): void {
  const y = gemm.outputs[0]!;
  const dropped = dropout?.apply(graph, gemm, gemm.inputs[0]!);
  const x = dropped?.outputs[0] ?? gemm.inputs[0]!;
  const down = detachedNode(graph, gemm.scope, GemmSig, [x, a], { transB: 1 });
  const up = detachedNode(graph, gemm.scope, GemmSig, [down.outputs[0], b, y], { transB: 1, alpha: scaling });
  const sum = up.outputs[0]!;
  sum.shape = y.shape;
  for (const n of graph.nodes) n.inputs = n.inputs.map((v) => (v === y ? sum : v));
  graph.outputs = graph.outputs.map((v) => {
    if (v !== y) return v;
    sum.name = v.name;
    return sum;
  });
  graph.nodes.splice(graph.nodes.indexOf(gemm) + 1, 0, ...(dropped ? [dropped] : []), down, up);
}
