/**
 * Opset passes. The op builders are generated at opset 17; `retargetOpset` moves every node to the
 * schema version in effect at the graph's opset where that keeps its meaning (a drop-in upgrade, or
 * a known rewrite such as ReduceMean's axes becoming an input at 18), and `checkOpset` rejects what
 * is left.
 */
import { UserError } from '../errors.ts';
import type { Graph, Node } from '../ir/graph.ts';
import { i64 } from '../dsl/constants.ts';
import { CONTRIB_OPS } from '../ops/contrib.generated.ts';
import { DROP_IN_UPGRADES, MAX_KNOWN_OPSET, OPSET_HISTORY } from '../ops/opset-history.generated.ts';

/** The schema version in effect for `op` at `opset`, or undefined if the op does not exist yet. */
export function versionAt(op: string, opset: number): number | undefined {
  const versions = OPSET_HISTORY[op] ?? [];
  let found: number | undefined;
  for (const v of versions) if (v <= opset) found = v;
  return found;
}

/** Ops whose schema is not in any ONNX opset (ONNX Runtime contrib ops, even in the default domain). */
function isContrib(node: Node): boolean {
  return node.domain !== '' || CONTRIB_OPS[node.op] === '';
}

/** The rewrite that carries a node across a schema change which is not drop-in, if vlmc has one. */
function rewriteFor(op: string, version: number): ((node: Node) => void) | undefined {
  // Opset 18 made `axes` an input of every reduction but ReduceSum (which did so at 13).
  if (version === 18 && op.startsWith('Reduce') && op !== 'ReduceSum') return axesAttributeToInput;
  return undefined;
}

function axesAttributeToInput(node: Node): void {
  const axes = node.attrs.axes;
  if (axes) node.inputs = [node.inputs[0], i64(axes.value as number[])];
  delete node.attrs.axes;
}

/** Moves one node from its version to `target`, one schema change at a time; false if it cannot. */
function upgrade(node: Node, target: number): boolean {
  const steps = (OPSET_HISTORY[node.op] ?? []).filter((v) => v > node.since && v <= target);
  for (const step of steps) {
    const rewrite = rewriteFor(node.op, step);
    if (rewrite) rewrite(node);
    else if (!(DROP_IN_UPGRADES[node.op] ?? []).includes(step)) return false;
    node.since = step;
  }
  return true;
}

export function retargetOpset(graph: Graph): void {
  for (const node of graph.nodes) {
    if (isContrib(node)) continue;
    const v = versionAt(node.op, graph.opset);
    if (v !== undefined && v > node.since) upgrade(node, graph.opset);
  }
}

export function checkOpset(graph: Graph): void {
  if (graph.opset > MAX_KNOWN_OPSET) {
    throw new UserError(`opset ${graph.opset} is newer than the schemas vlmc knows (up to ${MAX_KNOWN_OPSET})`);
  }
  const problems = new Set<string>();
  for (const node of graph.nodes) {
    if (isContrib(node)) continue;
    const v = versionAt(node.op, graph.opset);
    if (v === undefined) problems.add(`${node.op} does not exist at opset ${graph.opset}`);
    else if (v !== node.since) problems.add(`${node.op} changed between opset ${Math.min(v, node.since)} and ${Math.max(v, node.since)} (built against version ${node.since})`);
  }
  if (problems.size > 0) throw new UserError(`cannot target opset ${graph.opset}: ${[...problems].sort().join('; ')}`);
}
