/**
 * Binding: decide, before anything is written, where every parameter's bytes come from, and check
 * the whole mapping at once the way `load_state_dict(strict=True)` does: every missing key,
 * unexpected key, shape mismatch and dtype problem is reported together, naming file and key.
 */
import * as nodePath from 'node:path';
import { CheckpointError, UserError } from '../errors.ts';
import type { GraphParam } from '../ir/graph.ts';
import { isFloatStDType } from '../tensor/convert.ts';
import { pathPatternMatches } from '../dsl/freeze.ts';
import type { KeySource, PackedKeys } from '../dsl/layout.ts';
import { mxfp4DenseShape } from '../quant/mxfp4.ts';
import type { BoundParam, WeightSource } from './source.ts';
import type { TensorEntry } from '../checkpoint/safetensors.ts';
import { locateAdapterParam, withLoraMerges } from './lora.ts';

export type { BoundParam, LoraMergeOrigin, ParamOrigin, WeightSource } from './source.ts';

export type BuildPath = 'A' | 'B' | 'none';

export interface BindPlan {
  path: BuildPath;
  seed: number;
  params: BoundParam[];
  sources: WeightSource[];
}

export interface BindOptions {
  seed?: number;
  /** Globs of parameter names that may be missing (they take their declared init). */
  allowMissing?: string[];
  /** Globs of checkpoint keys that may be left unused. */
  ignoreUnexpected?: string[];
  /** Where the graph came from (a graph file, or the config.json it was derived from), for messages. */
  graphFrom?: string;
  /** The family's checkpoint keys that are not parameters but safe to leave unused (rotary caches). */
  ignorableKeys?: RegExp[];
  /** The family's duplicate keys of a tied head: graph name of the duplicate -> the parameter it duplicates. */
  tiedDuplicates?: Record<string, string>;
}

/**
 * Where a parameter is looked up: Path A's one checkpoint takes every parameter (under its own name
 * where the layout has no rule, so a gap is reported missing); in Path B the first source whose
 * layout covers it, and none for a part that is new (the projector): it is initialised.
 */
function locate(param: GraphParam, path: BuildPath, sources: WeightSource[]): { source: WeightSource; key: KeySource } | 'init' {
  if (path === 'none') return 'init';
  // Parameters packed into one (q/k/v for one Gemm) bind from the parts' keys, concatenated.
  if (param.packs) return locatePacked(param.packs.map((p) => p.name), path, sources);
  // A copy of another parameter (a tied lm_head stored quantised) binds from that one's key.
  const name = param.sourceName ?? param.name;
  if (path === 'A') return { source: sources[0]!, key: sources[0]!.layout.keysFor(name) ?? name };
  for (const source of sources) {
    const key = source.layout.keysFor(name);
    if (key !== undefined) return { source, key };
  }
  return 'init';
}

/** The parts' keys in order (a part that is itself a concatenation contributes its keys), from the source holding the first part. */
function locatePacked(parts: readonly string[], path: BuildPath, sources: WeightSource[]): { source: WeightSource; key: string[] } | 'init' {
  const source = path === 'A' ? sources[0]! : sources.find((s) => s.layout.keysFor(parts[0]!) !== undefined);
  if (!source) return 'init';
  return { source, key: parts.flatMap((n) => source.layout.keysFor(n) ?? (path === 'A' ? n : [])) };
}

/** The graph name a source key stands for (for reports and tied duplicates). */
export function graphNameOf(source: WeightSource, key: string): string {
  return source.layout.nameFor(key) ?? key;
}

export function planBinding(params: GraphParam[], path: BuildPath, sources: WeightSource[], options: BindOptions = {}): BindPlan {
  const problems: string[] = [];
  const used = new Map<WeightSource, Set<string>>(sources.map((s) => [s, new Set()]));
  const allowMissing = (options.allowMissing ?? []).map((g) => pathGlob(g, '--allow-missing'));
  const bound: BoundParam[] = params.map((param) => {
    const where = locateAdapterParam(param.name, sources) ?? locate(param, path, sources);
    if (where === 'init') return { param, origin: { kind: 'init' } };
    const { source, key } = where;
    const packed = source.layout.packedKeysFor(param.sourceName ?? param.name);
    if (packed) return bindPacked(param, source, packed, used.get(source)!, problems);
    if (Array.isArray(key)) return bindConcat(param, source, key, used.get(source)!, problems, allowMissing);
    const ckpt = source.checkpoint;
    if (!ckpt.has(key)) {
      if (allowMissing.some((re) => re.test(param.name))) return { param, origin: { kind: 'init' } };
      problems.push(`missing     ${key}  [${param.shape.join(', ')}] is not in ${source.role} checkpoint ${ckpt.dir}`);
      return { param, origin: { kind: 'init' } };
    }
    used.get(source)!.add(key);
    const entry = ckpt.entry(key);
    const file = nodePath.basename(entry.file);
    if (!sameShape(entry.shape, param.shape)) {
      problems.push(`shape       ${key}: graph [${param.shape.join(', ')}], checkpoint [${entry.shape.join(', ')}] (${file})`);
    }
    if (!isFloatStDType(entry.dtype)) problems.push(`dtype       ${key}: ${entry.dtype} in ${file}; parameters must be F32, F16 or BF16`);
    return { param, origin: { kind: 'checkpoint', source, key } };
  });
  const merged = withLoraMerges(bound, sources, used, problems);
  problems.push(...unexpectedKeys(sources, used, options));
  if (problems.length > 0) {
    throw new CheckpointError(`the checkpoint does not match the graph${options.graphFrom ? ` from ${options.graphFrom}` : ''} (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  ${problems.join('\n  ')}`);
  }
  return { path, seed: options.seed ?? 0, params: merged, sources };
}

/** Parts concatenated along axis 0: each must be there, agree on the trailing dims, and sum to the rows. */
function bindConcat(param: GraphParam, source: WeightSource, keys: string[], used: Set<string>, problems: string[], allowMissing: { test(name: string): boolean }[]): BoundParam {
  const ckpt = source.checkpoint;
  const absent = keys.filter((k) => !ckpt.has(k));
  // Parts that are there are expected even when a sibling is missing: only the missing ones are reported.
  for (const k of keys) if (ckpt.has(k)) used.add(k);
  if (absent.length > 0) {
    if (absent.length === keys.length && allowMissing.some((re) => re.test(param.name))) return { param, origin: { kind: 'init' } };
    for (const k of absent) problems.push(`missing     ${k}  (part of ${param.name} [${param.shape.join(', ')}]) is not in ${source.role} checkpoint ${ckpt.dir}`);
    return { param, origin: { kind: 'init' } };
  }
  const entries = keys.map((k) => ckpt.entry(k));
  const rows = entries.reduce((n, e) => n + (e.shape[0] ?? 0), 0);
  const trailingOk = entries.every((e) => e.shape.length === param.shape.length && sameShape(e.shape.slice(1), param.shape.slice(1)));
  if (!trailingOk || rows !== param.shape[0]) {
    const shapes = entries.map((e) => `${e.key} [${e.shape.join(', ')}]`).join(' + ');
    problems.push(`shape       ${param.name}: graph [${param.shape.join(', ')}], checkpoint ${shapes} concatenated along axis 0`);
  }
  for (const e of entries) {
    if (!isFloatStDType(e.dtype)) problems.push(`dtype       ${e.key}: ${e.dtype} in ${nodePath.basename(e.file)}; parameters must be F32, F16 or BF16`);
  }
  return { param, origin: { kind: 'concat', source, keys } };
}

/** A quantised pair (PackedKeyLayout): both tensors there, uint8, and decoding to the parameter's shape. */
function bindPacked(param: GraphParam, source: WeightSource, packed: PackedKeys, used: Set<string>, problems: string[]): BoundParam {
  const ckpt = source.checkpoint;
  const keys = [packed.blocks, packed.scales];
  for (const k of keys) if (ckpt.has(k)) used.add(k);
  const absent = keys.filter((k) => !ckpt.has(k));
  for (const k of absent) problems.push(`missing     ${k}  (${packed.format} half of ${param.name} [${param.shape.join(', ')}]) is not in ${source.role} checkpoint ${ckpt.dir}`);
  if (absent.length > 0) return { param, origin: { kind: 'init' } };
  const [blocks, scales] = keys.map((k) => ckpt.entry(k)) as [TensorEntry, TensorEntry];
  for (const e of [blocks, scales]) if (e.dtype !== 'U8') problems.push(`dtype       ${e.key}: ${e.dtype} in ${nodePath.basename(e.file)}; ${packed.format} blocks and scales are U8`);
  const dense = mxfp4DenseShape(blocks.shape, scales.shape);
  if (typeof dense === 'string') problems.push(`shape       ${param.name}: ${packed.format} ${packed.blocks} / ${packed.scales}: ${dense}`);
  else if (!sameShape(dense, param.shape)) problems.push(`shape       ${param.name}: graph [${param.shape.join(', ')}], ${packed.format} ${packed.blocks} [${blocks.shape.join(', ')}] dequantises to [${dense.join(', ')}]`);
  return { param, origin: { kind: 'packed', source, packed } };
}

function unexpectedKeys(sources: WeightSource[], used: Map<WeightSource, Set<string>>, options: BindOptions): string[] {
  const ignored = (options.ignoreUnexpected ?? []).map((g) => pathGlob(g, '--ignore-unexpected'));
  const out: string[] = [];
  for (const source of sources) {
    const usedKeys = used.get(source)!;
    for (const key of source.checkpoint.keys()) {
      if (usedKeys.has(key)) continue;
      const name = graphNameOf(source, key);
      if ((options.ignorableKeys ?? []).some((re) => re.test(key))) continue;
      if (ignored.some((re) => re.test(key) || re.test(name))) continue;
      const tiedTo = options.tiedDuplicates?.[name];
      if (tiedTo && [...usedKeys].some((k) => graphNameOf(source, k) === tiedTo)) continue;
      out.push(`unexpected  ${key} (${nodePath.basename(source.checkpoint.entry(key).file)} in ${source.role} checkpoint): no graph parameter takes it`);
    }
  }
  return out;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * A `--allow-missing` / `--ignore-unexpected` glob as a test on keys: the freeze-rule language
 * (src/dsl/freeze.ts), so every glob in vlmc means the same.
 */
export function pathGlob(glob: string, flag = 'glob'): { test(key: string): boolean } {
  // The language has no partial-segment wildcards; `mlp*` would silently match nothing.
  const bad = glob.split('.').find((s) => s === '' || (s.includes('*') && s !== '*' && s !== '**'));
  if (bad !== undefined) {
    throw new UserError(`${flag} '${glob}': ${bad === '' ? 'empty segment' : `segment '${bad}' mixes '*' with other characters`}; segments are names, '*' (one segment), '**' (any number) or a range such as 0-3`);
  }
  return { test: (key) => pathPatternMatches(glob, key) };
}
