/** Checks that every op the graph uses means the same at the target opset as when it was built. */
import { UserError } from '../errors.ts';
import type { Graph } from '../ir/graph.ts';
import { MAX_KNOWN_OPSET, OPSET_HISTORY } from '../ops/opset-history.generated.ts';

/** The schema version in effect for `op` at `opset`, or undefined if the op does not exist yet. */
export function versionAt(op: string, opset: number): number | undefined {
  const versions = OPSET_HISTORY[op] ?? [];
  let found: number | undefined;
  for (const v of versions) if (v <= opset) found = v;
  return found;
}

export function checkOpset(graph: Graph): void {
  if (graph.opset > MAX_KNOWN_OPSET) {
    throw new UserError(`opset ${graph.opset} is newer than the schemas vlmc knows (up to ${MAX_KNOWN_OPSET})`);
  }
  const problems = new Set<string>();
  for (const node of graph.nodes) {
    if (node.domain !== '') continue;
    const v = versionAt(node.op, graph.opset);
    if (v === undefined) problems.add(`${node.op} does not exist at opset ${graph.opset}`);
    else if (v !== node.since) problems.add(`${node.op} changed between opset ${Math.min(v, node.since)} and ${Math.max(v, node.since)} (built against version ${node.since})`);
  }
  if (problems.size > 0) throw new UserError(`cannot target opset ${graph.opset}: ${[...problems].sort().join('; ')}`);
}
