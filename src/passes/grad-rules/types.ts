/** The contract of a gradient rule. */
import type { Node, Value } from '../../ir/graph.ts';

export interface GradContext {
  node: Node;
  /** Gradient of the loss w.r.t. the node's first output (rules for multi-output ops read `gys`). */
  gy: Value;
  /** Gradient w.r.t. every output; undefined where no gradient flows. */
  gys: (Value | undefined)[];
  /** Whether input i needs a gradient: rules compute nothing for the others (pruning). */
  needs(i: number): boolean;
}

/** Returns the gradient for each input (undefined where none is needed or none exists). */
export type GradRule = (c: GradContext) => (Value | undefined)[];

/** Ops whose outputs carry no gradient (integer / boolean results, shape queries). */
export const NON_DIFFERENTIABLE = new Set([
  'Shape', 'Size', 'Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor',
  'Range', 'NonZero', 'ArgMax', 'ArgMin', 'ConstantOfShape', 'IsNaN', 'IsInf', 'Sign', 'Floor', 'Ceil', 'Round',
]);
