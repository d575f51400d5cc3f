/** Graph review: summaries, lock files, `vlmc diff` and its renderers, diff operands, `vlmc view` and the HTML diff. */
export * from './types.ts';
export { summaryFromGraph, summaryFromOnnxFile, withTrainable, type OnnxSummaryOptions } from './summary.ts';
export { lockText, lockPathFor, writeLock, checkLocks, LOCK_HEADER } from './lock.ts';
export { diffSummaries, groupParams, isEmptyDiff, diffExitCode, renderText, renderMarkdown, renderJson, type DiffOptions } from './diff.ts';
export { resolveOperand, loadGraphSummary, summaryFromArtifact, manifestTrainable, type ResolvedOperand, type OperandKind, type OperandOptions } from './operand.ts';
export { mermaidDiagram } from './mermaid.ts';
export { writeView, buildView, diffView, viewPage, diffPage, VIEW_FORMAT, DIFF_VIEW_FORMAT, type View, type ViewNode, type ViewPanel, type ChangeMark, type DiffView } from './view/index.ts';
export { comparePaths } from './tree.ts';
