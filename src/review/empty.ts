/** Whether a diff has anything to report, and the exit code the CLI derives from it. */
import type { GraphDiff } from './types.ts';

export function isEmptyDiff(d: GraphDiff): boolean {
  const p = d.params;
  const lists = [d.io, d.opset, d.metadata, p.renamed, p.added, p.removed, p.reshaped, p.retyped, d.weights, d.freeze, d.usage, d.ops, d.counts.filter((c) => c.changed)];
  const nodes = d.nodes ? [d.nodes.added, d.nodes.removed, d.nodes.changed] : [];
  return [...lists, ...nodes].every((l) => l.length === 0) && d.structure === undefined;
}

/** For the CLI: 0 when the graphs are the same, 1 when they differ (errors exit 2 elsewhere). */
export function diffExitCode(d: GraphDiff): 0 | 1 {
  return isEmptyDiff(d) ? 0 : 1;
}
