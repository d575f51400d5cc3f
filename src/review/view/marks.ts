/**
 * A diff's changes as marks on both pictures: renames, additions, removals, freeze flips and
 * changed bytes as `vlmc diff` found them (the `GraphDiff` the text shows beside the pictures);
 * shapes, dtypes and quantisation compared on the parameters as drawn, which for a quantised
 * artifact are the logical weights the manifest records rather than their packed blocks.
 */
import { renamePath, type RenameMatch } from '../renames.ts';
import type { ResolvedOperand } from '../operand.ts';
import type { GraphDiff, ParamGroup } from '../types.ts';
import { paramFacts, type ChangeMark, type ParamFacts } from './model.ts';

export type Marks = Map<string, ChangeMark[]>;

export function diffMarks(a: ResolvedOperand, b: ResolvedOperand, d: GraphDiff): { a: Marks; b: Marks } {
  const out = { a: new Map() as Marks, b: new Map() as Marks };
  const factsA = paramFacts(a.summary, a);
  const factsB = paramFacts(b.summary, b);
  const toB: RenameMatch[] = d.params.renamed;
  const toA: RenameMatch[] = d.params.renamed.map((r) => ({ from: r.to, to: r.from, exact: r.exact }));
  const mark = (side: Marks, path: string, m: ChangeMark) => {
    const list = side.get(path);
    if (list) list.push(m);
    else side.set(path, [m]);
  };
  const under = (facts: readonly ParamFacts[], path: string) => facts.filter((f) => f.name === path || f.name.startsWith(`${path}.`)).map((f) => f.name);

  for (const r of d.params.renamed) {
    for (const name of [r.from, ...under(factsA, r.from)]) mark(out.a, name, { kind: 'renamed', other: renamePath(name, toB) });
    for (const name of [r.to, ...under(factsB, r.to)]) mark(out.b, name, { kind: 'renamed', other: renamePath(name, toA) });
  }
  for (const g of d.params.added) for (const path of groupPaths(g)) mark(out.b, path, { kind: 'added' });
  for (const g of d.params.removed) for (const path of groupPaths(g)) mark(out.a, path, { kind: 'removed' });
  // Freeze flips and byte changes are named on side b; side a has them under its own names.
  const onBothSides = (g: ParamGroup, m: ChangeMark) => {
    for (const path of groupPaths(g)) {
      mark(out.b, path, m);
      mark(out.a, renamePath(path, toA), m);
    }
  };
  for (const g of d.freeze) onBothSides(g, { kind: g.after ? 'trainable' : 'frozen', before: g.before ? 'trainable' : 'frozen', after: g.after ? 'trainable' : 'frozen' });
  for (const g of d.weights) onBothSides(g, { kind: 'weights' });

  const before = new Map(factsA.map((f) => [renamePath(f.name, toB), f]));
  for (const y of factsB) {
    const x = before.get(y.name);
    if (!x) continue;
    const both = (m: ChangeMark) => {
      mark(out.a, x.name, m);
      mark(out.b, y.name, m);
    };
    if (shapeText(x.shape) !== shapeText(y.shape)) both({ kind: 'reshaped', before: shapeText(x.shape), after: shapeText(y.shape) });
    if (storageText(x) !== storageText(y)) both({ kind: 'retyped', before: storageText(x), after: storageText(y) });
  }
  return out;
}

/** A group's module (when it is one) and every parameter in it. */
const groupPaths = (g: ParamGroup): string[] => (g.module ? [g.path, ...g.names] : g.names);

const shapeText = (shape: readonly number[]): string => `[${shape.join(',')}]`;

/** How a parameter is stored: its dtype, and its quantisation scheme when quantised. */
const storageText = (f: ParamFacts): string => (f.quant ? `${f.dtype} as ${f.quant}` : f.dtype);
