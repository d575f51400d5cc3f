/**
 * Binding with LoRA sources (an InternVL checkpoint with LoRA unmerged, PEFT adapters): where a
 * graph's adapter parameters are read from, and which base weights are merged while binding.
 *
 * - The graph has LoRA on a module (kept separate: --keep-lora, --use-llm-lora, training): its
 *   lora_A / lora_B are read from the source that holds that part's LoRA, or take PEFT's init when
 *   no source holds LoRA for the part (a fresh LoRA).
 * - The graph has no LoRA on a module whose adapters a source holds: the base weight is bound as
 *   W + scaling * B @ A (src/bind/lora-merge.ts), recorded in the manifest with both keys.
 */
import * as nodePath from 'node:path';
import { isFloatStDType } from '../tensor/convert.ts';
import { loraModuleOf, loraParamNames } from '../dsl/lora.ts';
import type { BoundParam, LoraMergeOrigin, WeightSource } from './source.ts';

/** Where an adapter parameter is read; 'init' for a fresh LoRA; undefined for a parameter that is not an adapter. */
export function locateAdapterParam(name: string, sources: readonly WeightSource[]): { source: WeightSource; key: string } | 'init' | undefined {
  const lora = loraModuleOf(name);
  if (!lora) return undefined;
  for (const source of sources) {
    if (!source.lora?.parts.some((p) => name.startsWith(`${p.module}.`))) continue;
    const key = source.layout?.keysFor(name);
    if (typeof key === 'string') return { source, key };
  }
  return 'init';
}

/**
 * Base weights whose adapters a source holds and the graph does not: bound merged. Every problem
 * (a missing or mis-shaped adapter, two sources adapting one weight) is added to `problems`.
 */
export function withLoraMerges(bound: BoundParam[], sources: readonly WeightSource[], used: Map<WeightSource, Set<string>>, problems: string[]): BoundParam[] {
  if (!sources.some((s) => s.lora)) return bound;
  const names = new Set(bound.map((b) => b.param.name));
  return bound.map((b) => {
    const { param, origin } = b;
    if (origin.kind !== 'checkpoint' && origin.kind !== 'concat') return b;
    if (!param.name.endsWith('.weight') || names.has(loraParamNames(param.name.slice(0, -'.weight'.length)).a)) return b;
    const holders = sources.flatMap((source) => {
      const pair = source.lora?.pairFor(param.name);
      return pair ? [{ source, pair }] : [];
    });
    if (holders.length === 0) return b;
    if (holders.length > 1) {
      problems.push(`lora        ${param.name}: adapted by both ${holders.map((h) => h.source.lora!.where).join(' and ')}; merge one first`);
      return b;
    }
    const { source, pair } = holders[0]!;
    if (!checkPair(param.shape, source, pair, problems)) return b;
    used.get(source)?.add(pair.a).add(pair.b);
    const merge: LoraMergeOrigin = { kind: 'lora-merge', base: origin, a: { source, key: pair.a }, b: { source, key: pair.b }, scaling: source.lora!.scalingFor(param.name) };
    return { param, origin: merge };
  });
}

/** lora_A [r, in] and lora_B [out, r] for a weight [out, in], both present and float. */
function checkPair(shape: readonly number[], source: WeightSource, pair: { a: string; b: string }, problems: string[]): boolean {
  const ckpt = source.checkpoint;
  const absent = [pair.a, pair.b].filter((k) => !ckpt.has(k));
  for (const k of absent) problems.push(`missing     ${k}  (LoRA of a weight [${shape.join(', ')}]) is not in ${source.role} checkpoint ${ckpt.dir}`);
  if (absent.length > 0) return false;
  const a = ckpt.entry(pair.a);
  const b = ckpt.entry(pair.b);
  const [out, inFeatures] = shape;
  const r = a.shape[0];
  let ok = true;
  if (a.shape.length !== 2 || b.shape.length !== 2 || a.shape[1] !== inFeatures || b.shape[0] !== out || b.shape[1] !== r) {
    problems.push(`shape       ${pair.a} [${a.shape.join(', ')}] and ${pair.b} [${b.shape.join(', ')}]: a weight [${shape.join(', ')}] takes lora_A [r, ${inFeatures}] and lora_B [${out}, r]`);
    ok = false;
  }
  for (const e of [a, b]) {
    if (!isFloatStDType(e.dtype)) {
      problems.push(`dtype       ${e.key}: ${e.dtype} in ${nodePath.basename(e.file)}; parameters must be F32, F16 or BF16`);
      ok = false;
    }
  }
  return ok;
}
