/** `vlmc view` and `vlmc diff --format html`: pictures of a model and of a model change. */
import { writeFileAtomic } from '../../fs/atomic.ts';
import { checkOutputPath } from '../../fs/output-path.ts';
import { resolveOperand, type OperandOptions, type ResolvedOperand } from '../operand.ts';
import type { GraphDiff } from '../types.ts';
import { diffPage, viewPage, DIFF_VIEW_FORMAT, type DiffView } from './html.ts';
import { diffMarks } from './marks.ts';
import { buildView, type View } from './model.ts';

export { buildView, paramFacts, VIEW_FORMAT, type View, type ViewNode, type ViewPanel, type ChangeMark, type ParamFacts, type TrainFacts } from './model.ts';
export { viewPage, diffPage, DIFF_VIEW_FORMAT, type DiffView } from './html.ts';
export { diffMarks } from './marks.ts';

/** Draws `spec` (graph file, artifact, split artifact, checkpoint folder, .onnx, REV:path) into the page `out`. */
export async function writeView(spec: string, out: string, options: OperandOptions = {}): Promise<View> {
  checkOutputPath(out, { kind: 'view', flag: '--out', inputs: [spec] });
  const view = buildView(await resolveOperand(spec, options));
  await writeFileAtomic(out, viewPage(view));
  return view;
}

/** Both sides' pictures with the diff's changes marked on each. */
export function diffView(a: ResolvedOperand, b: ResolvedOperand, diff: GraphDiff): DiffView {
  const marks = diffMarks(a, b, diff);
  return { format: DIFF_VIEW_FORMAT, a: buildView(a, { marks: marks.a }), b: buildView(b, { marks: marks.b }), diff };
}
