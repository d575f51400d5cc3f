/**
 * Renderers for a `GraphDiff`: plain text (terminal), Markdown (a pull-request comment: a Mermaid
 * diagram of the changed modules, short sections inline, long ones folded in <details>), JSON
 * (machines). Sections come in reviewer
 * order and are left out when empty; repeated per-layer changes fold into one indexed line
 * (`layers.{0..79}.mlp.up_proj.weight`).
 */
import { isEmptyDiff } from './empty.ts';
import { mermaidDiagram } from './mermaid.ts';
import { comparePaths, depthOf } from './tree.ts';
import { foldBy, formatCount, type Folded } from './fold.ts';
import type { CountChange, Counts, GraphDiff, IoChange, IoEntry, OpChange, ParamGroup } from './types.ts';

/** Sections longer than this fold into <details> in Markdown. */
const FOLD_AT = 10;

/**
 * The diff object; for identical operands the empty-difference object `{}`, so "no output" holds
 * for machines too (`Object.keys(json).length === 0`).
 */
export function renderJson(d: GraphDiff): string {
  return isEmptyDiff(d) ? '{}\n' : `${JSON.stringify(d, null, 2)}\n`;
}

// ---------------------------------------------------------------------------------------------
// Shared formatting

const formatDelta = (n: number): string => (n > 0 ? `+${formatCount(n)}` : n < 0 ? formatCount(n) : '0');

const moduleName = (path: string): string => (path === '' ? '(root)' : path);

const ioText = (v: IoEntry | undefined): string => (v ? `${v.dtype} [${v.shape.join(',')}]` : '');

const plural = (n: number, word: string): string => `${formatCount(n)} ${word}${n === 1 ? '' : 's'}`;

const flagWord = (kind: 'freeze' | 'usage', v: boolean): string => (kind === 'freeze' ? (v ? 'trainable' : 'frozen') : v ? 'used' : 'unused');

interface Row {
  name: string;
  before: string;
  after: string;
  /** Size of what the row names (`2 tensors, 6,912 params`), per item when folded. */
  size: string;
  count: number;
}

type RowInput = Omit<Row, 'count' | 'size'> & { size?: string };

export function foldIndexed(rows: readonly RowInput[]): Row[] {
  return foldBy(rows, (r) => r.name, (r) => JSON.stringify([r.before, r.after, r.size ?? '']))
    .map((f) => ({ name: f.name, before: f.item.before, after: f.item.after, size: f.item.size ?? '', count: f.count }))
    .sort((x, y) => comparePaths(x.name, y.name));
}

const foldCounts = (counts: readonly CountChange[]): Folded<CountChange>[] => foldBy(counts, (c) => moduleName(c.module), (c) => JSON.stringify([c.before, c.after]));

/** One entry per module with all of its op changes, then folded across indexed modules. */
function foldOps(ops: readonly OpChange[]): Folded<OpChange[]>[] {
  const byModule = new Map<string, OpChange[]>();
  for (const o of ops) {
    const list = byModule.get(o.module);
    if (list) list.push(o);
    else byModule.set(o.module, [o]);
  }
  return foldBy([...byModule.values()], (list) => moduleName(list[0]!.module), (list) => list.map(opChangeText).join(', '));
}

const opChangeText = (o: OpChange): string => `${o.op} ${o.before}->${o.after}`;

const times = (n: number): string => (n > 1 ? ` (x${n} each)` : '');

const shapeText = (s: readonly number[]): string => `[${s.join(',')}]`;

const sizeText = (tensors: number, params: number): string => `${plural(tensors, 'tensor')}, ${formatCount(params)} params`;

const groupName = (g: ParamGroup): string => `${moduleName(g.path)}${g.module ? '' : ' (tensor)'}`;

type ParamRow = Row & { kind: 'renamed' | 'added' | 'removed' | 'reshaped' | 'retyped' };

/** Parameter changes in reviewer order, per-layer repeats folded. */
function paramRows(d: GraphDiff): ParamRow[] {
  const p = d.params;
  const tag = (kind: ParamRow['kind'], rows: Row[]) => rows.map((r) => ({ ...r, kind }));
  return [
    // A rename folds as one "from -> to" name so both sides' indices line up.
    ...tag('renamed', foldIndexed(p.renamed.map((r) => ({ name: `${r.from} -> ${r.to}`, before: '', after: '', size: sizeText(r.tensors, r.params) + (r.exact ? '' : '; contents also changed (see below, under the new name)') })))),
    ...tag('added', foldIndexed(p.added.map((g) => ({ name: groupName(g), before: '', after: '', size: sizeText(g.tensors, g.params) })))),
    ...tag('removed', foldIndexed(p.removed.map((g) => ({ name: groupName(g), before: '', after: '', size: sizeText(g.tensors, g.params) })))),
    ...tag('reshaped', foldIndexed(p.reshaped.map((r) => ({ name: r.name, before: shapeText(r.before), after: shapeText(r.after) })))),
    ...tag('retyped', foldIndexed(p.retyped.map((r) => ({ name: r.name, before: r.before, after: r.after })))),
  ];
}

function paramRowText(r: ParamRow): string {
  const times = r.count > 1 ? ` (x${r.count})` : '';
  switch (r.kind) {
    case 'renamed':
    case 'added':
    case 'removed':
      return `${r.kind.padEnd(8)} ${r.name} — ${r.size}${r.count > 1 ? ' each' : ''}${times}`;
    default:
      return `${r.kind.padEnd(8)} ${r.name} ${r.before} -> ${r.after}${times}`;
  }
}

/** Freeze or use changes, folded like parameter rows. */
function flagRows(groups: readonly (ParamGroup & { before: boolean; after: boolean })[], kind: 'freeze' | 'usage'): Row[] {
  return foldIndexed(groups.map((g) => ({ name: groupName(g), before: flagWord(kind, g.before), after: flagWord(kind, g.after), size: sizeText(g.tensors, g.params) })));
}

function ioKindText(c: IoChange): string {
  return `${c.kind} ${c.name}`;
}

function ioCell(c: IoChange, side: 'before' | 'after'): string {
  if (c.change === 'moved') return `position ${c.position![side]}`;
  const v = c[side];
  return v ? code(ioText(v)) : '';
}

function ioLine(c: IoChange): string {
  switch (c.change) {
    case 'added':
      return `+ ${ioKindText(c)} ${ioText(c.after)}`;
    case 'removed':
      return `- ${ioKindText(c)} ${ioText(c.before)}`;
    case 'moved':
      return `~ ${ioKindText(c)}: position ${c.position!.before} -> ${c.position!.after}`;
    case 'changed':
      return `~ ${ioKindText(c)}: ${ioText(c.before)} -> ${ioText(c.after)}`;
  }
}

function countsCell(c: Counts, key: 'params' | 'trainable'): string {
  const v = c[key];
  return v === undefined ? '?' : formatCount(v);
}

function countDelta(c: CountChange, key: 'params' | 'trainable'): string {
  const x = c.before[key];
  const y = c.after[key];
  return x === undefined || y === undefined ? '?' : formatDelta(y - x);
}

const opDelta = (o: OpChange): string => formatDelta(o.after - o.before);

function headline(d: GraphDiff): string[] {
  const p = d.params;
  const facts: string[] = [];
  const add = (n: number, what: string) => n > 0 && facts.push(`${formatCount(n)} ${what}`);
  add(d.io.length, 'I/O change(s)');
  add(p.renamed.length, 'rename(s)');
  add(p.added.reduce((n, g) => n + g.tensors, 0), 'tensor(s) added');
  add(p.removed.reduce((n, g) => n + g.tensors, 0), 'tensor(s) removed');
  add(p.reshaped.length, 'reshaped');
  add(p.retyped.length, 'retyped');
  add(d.weights.reduce((n, g) => n + g.tensors, 0), 'tensor(s) with changed bytes');
  add(d.freeze.reduce((n, g) => n + g.tensors, 0), 'tensor(s) with a freeze change');
  const root = d.counts.find((c) => c.module === '');
  if (root?.changed) facts.push(`params ${formatDelta(root.after.params - root.before.params)}`);
  return facts;
}

// ---------------------------------------------------------------------------------------------
// Text

export function renderText(d: GraphDiff): string {
  // As diff(1) and `git diff`: the same graphs, no output at all.
  if (isEmptyDiff(d)) return '';
  const out: string[] = [`vlmc diff: ${d.a.label} -> ${d.b.label}`];
  const section = (title: string, lines: string[]) => lines.length && out.push('', title, ...lines.map((l) => `  ${l}`));
  section(
    'I/O signature',
    d.io.map(ioLine),
  );
  section('Opset', d.opset.map((c) => `~ ${c.key}: ${c.before ?? '(none)'} -> ${c.after ?? '(none)'}`));
  section('Metadata', d.metadata.map((c) => `~ ${c.key}: ${c.before === undefined ? '(none)' : JSON.stringify(c.before)} -> ${c.after === undefined ? '(none)' : JSON.stringify(c.after)}`));
  section('Parameters', paramRows(d).map(paramRowText));
  section('Weights', foldIndexed(d.weights.map((g) => ({ name: groupName(g), before: '', after: '', size: sizeText(g.tensors, g.params) }))).map((r) => `changed  ${r.name} — ${r.size}${times(r.count)}`));
  const flagLine = (r: Row) => `${r.before} -> ${r.after}: ${r.name} — ${r.size}${r.count > 1 ? ` each (x${r.count})` : ''}`;
  section('Freeze', flagRows(d.freeze, 'freeze').map(flagLine));
  section('Parameter use', flagRows(d.usage, 'usage').map(flagLine));
  const countLine = ({ name, item: c, count }: Folded<CountChange>) =>
    `${name}: ${countsCell(c.before, 'params')} -> ${countsCell(c.after, 'params')} (${countDelta(c, 'params')}) [${countsCell(c.before, 'trainable')} -> ${countsCell(c.after, 'trainable')} (${countDelta(c, 'trainable')})]${times(count)}`;
  section('Parameter counts (changed modules; trainable in brackets)', foldCounts(d.counts.filter((c) => c.changed)).map(countLine));
  section('Op counts (per module, subtrees included)', foldOps(d.ops).map(({ name, item, count }) => `${name}: ${item.map(opChangeText).join(', ')}${times(count)}`));
  if (d.structure) section('Structure', [`${d.structure.before} -> ${d.structure.after}`]);
  if (d.nodes) {
    section('Nodes', [...d.nodes.added.map((n) => `+ ${n}`), ...d.nodes.removed.map((n) => `- ${n}`), ...d.nodes.changed.map((n) => `~ ${n}`)]);
  }
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// Markdown

const code = (s: string): string => `\`${s.replace(/`/g, "'")}\``;
const cell = (s: string): string => s.replace(/\|/g, '\\|');

function table(head: string[], rows: string[][]): string[] {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)];
}

function details(summary: string, body: string[]): string[] {
  return ['<details>', `<summary>${summary}</summary>`, '', ...body, '', '</details>'];
}

/** Inline when short, folded when long. */
function block(summary: string, body: string[], rowCount: number): string[] {
  return rowCount > FOLD_AT ? details(summary, body) : body;
}

export function renderMarkdown(d: GraphDiff): string {
  if (isEmptyDiff(d)) return '';
  const out: string[] = [`### vlmc diff: ${code(d.a.label)} → ${code(d.b.label)}`, ''];
  const facts = headline(d);
  if (facts.length) out.push(`**Summary:** ${facts.join(', ')}.`, '');
  const section = (title: string, body: string[]) => body.length && out.push(`#### ${title}`, '', ...body, '');
  section('Changed modules', mermaidDiagram(d));

  section('I/O signature', d.io.length ? table(['change', 'name', 'before', 'after'], d.io.map((c) => [c.change, `${c.kind} ${code(c.name)}`, ioCell(c, 'before'), ioCell(c, 'after')])) : []);
  section('Opset', d.opset.map((c) => `- ${code(c.key)}: ${c.before ?? '(none)'} → ${c.after ?? '(none)'}`));
  section('Metadata', d.metadata.length ? table(['key', 'before', 'after'], d.metadata.map((c) => [code(c.key), c.before === undefined ? '' : code(c.before), c.after === undefined ? '' : code(c.after)])) : []);
  section('Parameters', markdownParams(d));
  section('Weights', markdownWeights(d.weights));
  section('Freeze (trainable)', markdownFlags(d.freeze, 'freeze'));
  section('Parameter use', markdownFlags(d.usage, 'usage'));
  section('Parameter counts', markdownCounts(d.counts));
  section('Op counts', markdownOps(d.ops));
  if (d.structure) section('Structure', [`Structure hash ${code(d.structure.before.slice(0, 19))} → ${code(d.structure.after.slice(0, 19))}${d.nodes ? '' : ' (node detail: `--nodes`)'}`]);
  if (d.nodes) section('Nodes', markdownNodes(d.nodes));
  return `${out.join('\n').trimEnd()}\n`;
}

function markdownParams(d: GraphDiff): string[] {
  const rows = paramRows(d);
  const moves = rows.filter((r) => r.kind === 'renamed' || r.kind === 'added' || r.kind === 'removed');
  const shapes = rows.filter((r) => r.kind === 'reshaped' || r.kind === 'retyped');
  const times = (r: Row) => (r.count > 1 ? ` ×${r.count}` : '');
  const moveLine = (r: ParamRow) => {
    const [from, to] = r.name.split(' -> ');
    const what = r.kind === 'renamed' ? `${code(from!)} → ${code(to!)}` : code(r.name);
    return `- **${r.kind}** ${what}: ${r.size}${r.count > 1 ? ' each' : ''}${times(r)}`;
  };
  const out = block(`renamed / added / removed (${moves.length})`, moves.map(moveLine), moves.length);
  if (shapes.length) {
    if (out.length) out.push('');
    const body = table(['change', 'parameter', 'before', 'after', 'count'], shapes.map((r) => [r.kind, code(r.name), code(r.before), code(r.after), String(r.count)]));
    out.push(...block(`reshaped / retyped (${shapes.length})`, body, shapes.length));
  }
  return out;
}

function markdownWeights(groups: readonly ParamGroup[]): string[] {
  const rows = foldIndexed(groups.map((g) => ({ name: groupName(g), before: '', after: '', size: sizeText(g.tensors, g.params) }))).map((r) => [code(r.name), r.size + (r.count > 1 ? ` each, ×${r.count}` : '')]);
  if (!rows.length) return [];
  return ['Bytes differ (sha256):', '', ...block(`${rows.length} weight changes`, table(['module', 'size'], rows), rows.length)];
}

function markdownFlags(groups: readonly (ParamGroup & { before: boolean; after: boolean })[], kind: 'freeze' | 'usage'): string[] {
  const rows = flagRows(groups, kind).map((r) => [code(r.name), `${r.before} → **${r.after}**`, r.size + (r.count > 1 ? ` each, ×${r.count}` : '')]);
  if (!rows.length) return [];
  return block(`${rows.length} ${kind === 'freeze' ? 'freeze' : 'use'} changes`, table(['module', 'change', 'size'], rows), rows.length);
}

function markdownCounts(counts: readonly CountChange[]): string[] {
  if (!counts.some((c) => c.changed)) return [];
  const row = ({ name, item: c, count }: Folded<CountChange>) => [
    code(name) + (count > 1 ? ` ×${count}` : ''),
    countsCell(c.before, 'params'),
    countsCell(c.after, 'params'),
    countDelta(c, 'params'),
    countsCell(c.before, 'trainable'),
    countsCell(c.after, 'trainable'),
    countDelta(c, 'trainable'),
  ];
  const head = ['module', 'params before', 'params after', 'Δ', 'trainable before', 'trainable after', 'Δ'];
  // The root and top-level modules always show, changed or not, so the table reads as a whole.
  const top = counts.filter((c) => depthOf(c.module) <= 1).map((item) => ({ name: moduleName(item.module), item, count: 1 }));
  const deeper = foldCounts(counts.filter((c) => c.changed && depthOf(c.module) > 1));
  const out = table(head, top.map(row));
  const title = `Changed modules below the top level (${deeper.length})`;
  if (deeper.length) out.push('', ...(deeper.length > FOLD_AT ? details(title, table(head, deeper.map(row))) : [`${title}:`, '', ...table(head, deeper.map(row))]));
  return out;
}

function markdownOps(ops: readonly OpChange[]): string[] {
  if (!ops.length) return [];
  const whole = ops.filter((o) => o.module === '');
  const perModule = foldOps(ops.filter((o) => o.module !== ''));
  const out = whole.length ? ['Whole graph:', '', ...table(['op', 'before', 'after', 'Δ'], whole.map((o) => [code(o.op), String(o.before), String(o.after), opDelta(o)]))] : [];
  if (perModule.length) {
    if (out.length) out.push('');
    const rows = perModule.map(({ name, item, count }) => [code(name) + (count > 1 ? ` ×${count}` : ''), item.map(opChangeText).join(', ')]);
    const title = `Per module, subtrees included (${rows.length})`;
    const body = table(['module', 'op changes (before->after)'], rows);
    out.push(...(rows.length > FOLD_AT ? details(title, body) : [`${title}:`, '', ...body]));
  }
  return out;
}

function markdownNodes(n: NonNullable<GraphDiff['nodes']>): string[] {
  const rows = [...n.added.map((x) => ['added', code(x)]), ...n.removed.map((x) => ['removed', code(x)]), ...n.changed.map((x) => ['changed', code(x)])];
  if (!rows.length) return ['No node changes.'];
  return block(`${rows.length} node changes`, table(['change', 'node'], rows), rows.length);
}
