/**
 * The lines `vlmc build` prints after the artifact is written: what was built, and for
 * `--target gpu` / `webgpu` which fusions applied to which graph and how often (a fusion that applied 0 times
 * is said so, with the likely reason), and for `--quant` how the parameter count comes about.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as nodePath from 'node:path';
import type { Manifest, ManifestParameter } from '../artifact/format.ts';
import { onnx } from '../onnx/proto.ts';

const n = (v: number): string => v.toLocaleString('en-US');

export function buildSummary(out: string, manifest: Manifest): string[] {
  const c = manifest.counts;
  const kind = manifest.build.structure_only ? ', structure only (no weights; `vlmc run` needs --weights or --init random)' : '';
  const lines = [`${out}: ${manifest.parameters.length} tensors, ${n(c.total)} parameters (${n(c.trainable)} trainable), path ${manifest.build.path}, ${manifest.build.dtype}${kind}`];
  const fusions = fusionLine(out);
  if (fusions) lines.push(fusions);
  const quant = quantLine(manifest);
  if (quant) lines.push(quant);
  return lines;
}

/** The graph files of an artifact folder: model.onnx, or a split artifact's three graphs. */
function graphFiles(dir: string): string[] {
  const pipeline = nodePath.join(dir, 'pipeline.json');
  if (existsSync(pipeline)) {
    const p = JSON.parse(readFileSync(pipeline, 'utf8')) as { graphs: Record<string, { file: string }> };
    return Object.values(p.graphs).map((g) => g.file);
  }
  return ['model.onnx'];
}

/** Each graph's `vlmc.fusions` metadata (`name:count,...`), as the fuse pass recorded it. */
export function fusionCounts(dir: string): { file: string; target: string; counts: [string, number][] }[] {
  return graphFiles(dir).flatMap((file) => {
    const model = onnx.ModelProto.decode(readFileSync(nodePath.join(dir, file)));
    const meta = (key: string) => model.metadataProps?.find((p) => p.key === key)?.value;
    const recorded = meta('vlmc.fusions');
    if (recorded === undefined || recorded === null) return [];
    const counts = recorded === '' ? [] : recorded.split(',').map((e) => e.split(':')).map(([name, count]) => [name!, Number(count)] as [string, number]);
    return [{ file, target: meta('vlmc.target') ?? 'gpu', counts }];
  });
}

/** `fusions: vision.onnx vit-attention 2, gelu 3; decoder.onnx rmsnorm 3; applied 0 times: gqa (why)`. */
function fusionLine(dir: string): string | undefined {
  const graphs = fusionCounts(dir);
  if (graphs.length === 0) return undefined;
  const applied = graphs
    .map(({ file, counts }) => ({ file, used: counts.filter(([, k]) => k > 0) }))
    .filter((g) => g.used.length > 0)
    .map((g) => `${graphs.length > 1 ? `${g.file} ` : ''}${g.used.map(([name, k]) => `${name} ${k}`).join(', ')}`);
  const asked = [...new Set(graphs.flatMap((g) => g.counts.map(([name]) => name)))];
  const never = asked.filter((name) => graphs.every((g) => (g.counts.find(([m]) => m === name)?.[1] ?? 0) === 0));
  const split = graphs.length > 1;
  const zero = never.map((name) => `${name}${whyNotApplied(name, dir, split)}`);
  return `fusions (--target ${graphs[0]!.target}): ${applied.join('; ') || 'none applied'}${zero.length > 0 ? `; applied 0 times: ${zero.join(', ')}` : ''}`;
}

/** The usual reason a fusion found nothing to rewrite. */
function whyNotApplied(name: string, dir: string, split: boolean): string {
  if (name !== 'gqa') return ' (no matching pattern in this model)';
  if (!split) return ' (it fuses the split decoder\'s attention with its KV cache: build with --split)';
  const p = JSON.parse(readFileSync(nodePath.join(dir, 'pipeline.json'), 'utf8')) as { llm?: { head_dim?: number } };
  const headDim = p.llm?.head_dim;
  return headDim !== undefined && headDim % 8 !== 0 ? ` (GroupQueryAttention needs a head_dim that is a multiple of 8; this model's is ${headDim})` : ' (no matching pattern in this model)';
}

/**
 * `--quant`: how many weights are stored quantised, and why the count can exceed the model's: a
 * tied head is stored twice (the embedding stays float for the lookup, the head is quantised).
 */
function quantLine(manifest: Manifest): string | undefined {
  const quantised = manifest.parameters.filter((p) => p.quant !== undefined);
  if (quantised.length === 0) return undefined;
  const q = quantised[0]!.quant as { bits?: number; block_size?: number; scheme?: string };
  const names = new Set(manifest.parameters.map((p) => p.name));
  const copies = manifest.parameters.filter((p) => typeof p.key === 'string' && p.key !== p.name && names.has(p.key));
  const size = (p: ManifestParameter) => p.shape.reduce((a, d) => a * d, 1);
  const extra = copies.reduce((a, p) => a + size(p), 0);
  const scheme = `${quantised.length} weight${quantised.length === 1 ? '' : 's'} stored as ${q.scheme ?? `int${q.bits}`} (block ${q.block_size}, MatMulNBits), counted at their unpacked sizes`;
  if (extra === 0) return `quantised: ${scheme}`;
  return `quantised: ${scheme}; the ${n(manifest.counts.total)} parameters include ${n(extra)} of ${copies.map((p) => p.name).join(', ')}, a quantised copy of the tied ${copies.map((p) => p.key).join(', ')} (the embedding stays unquantised for the lookup), so the model itself has ${n(manifest.counts.total - extra)}`;
}
