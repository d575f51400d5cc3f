/**
 * The one door from op builders into the graph being traced: checks the call against the op's
 * signature, appends a node to the active builder, and infers the outputs' dtypes and shapes.
 */
import type { Value } from '../ir/graph.ts';
import type { OpSignature } from './signature.ts';
import { activeBuilder } from '../ir/builder.ts';

/**
 * Emit one node. `inputs` are positional (undefined for an omitted optional input; a variadic
 * formal takes the rest). `attrs` holds the attributes given explicitly; undefined ones are omitted.
 * `numOutputs` is needed where the schema's outputs are variadic or optional.
 */
export function emit(
  sig: OpSignature,
  inputs: (Value | undefined)[],
  attrs: Record<string, unknown>,
  numOutputs?: number,
): Value[] {
  return activeBuilder().emit(sig, inputs, attrs, numOutputs);
}
