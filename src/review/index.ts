/** Graph review: summaries, lock files, `vlmc diff` and its renderers, diff operands. */
export * from './types.ts';
export { summaryFromGraph, summaryFromOnnxFile, withTrainable, type OnnxSummaryOptions } from './summary.ts';
export { lockText, lockPathFor, writeLock, checkLocks, LOCK_HEADER } from './lock.ts';
export { diffSummaries, groupParams, isEmptyDiff, diffExitCode, renderText, renderMarkdown, renderJson, type DiffOptions } from './diff.ts';
export { resolveOperand, resolveOperandGraphs, pairGraphs, loadGraphSummary, summaryFromArtifact, manifestTrainable, type ResolvedOperand, type OperandGraph, type OperandKind, type OperandOptions } from './operand.ts';
export { comparePaths } from './tree.ts';
