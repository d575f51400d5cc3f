/** Every gradient rule, by op type. A new op the zoo emits needs its rule here (and its FD test). */
import type { GradRule } from './types.ts';
import { ELEMENTWISE_RULES } from './elementwise.ts';
import { LINALG_RULES } from './linalg.ts';
import { NN_RULES } from './nn.ts';
import { SHAPE_RULES } from './shape.ts';
import { INDEXING_RULES } from './indexing.ts';

export const GRAD_RULES: Record<string, GradRule> = { ...ELEMENTWISE_RULES, ...LINALG_RULES, ...NN_RULES, ...SHAPE_RULES, ...INDEXING_RULES };
export { NON_DIFFERENTIABLE, type GradRule, type GradContext } from './types.ts';
