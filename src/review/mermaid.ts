/**
 * The Markdown diff's picture: a Mermaid flowchart of the modules a diff changes, which GitHub,
 * GitLab and other code-review hosts draw from a ```mermaid block in a comment. The model, its
 * top-level modules, and under each the changed modules (per-layer repeats folded into one node,
 * as in the text: `layers.{0..79}.mlp.up_proj` x80), coloured by what happened to them; a rename is
 * an edge from the old name to the new one. Long lists end in one "... more" node.
 */
import { foldBy, formatCount } from './fold.ts';
import { comparePaths, parentPath } from './tree.ts';
import type { GraphDiff, ParamGroup } from './types.ts';

/** Changed modules drawn at most; the rest are counted in one node. */
const MAX_NODES = 24;

type Kind = 'added' | 'removed' | 'renamed' | 'changed' | 'freeze' | 'weights';

interface Entry {
  path: string;
  kind: Kind;
  /** What happened, one line each. */
  lines: string[];
  /** For renames: the old path. */
  from?: string;
}

const STYLES: Record<Kind, string> = {
  added: 'fill:#d8f5e3,stroke:#1f9d55,color:#0b3d20',
  removed: 'fill:#fbe0df,stroke:#d0342c,color:#5a1410',
  renamed: 'fill:#dde8fb,stroke:#2f6fdb,color:#0d2a5c',
  changed: 'fill:#fdebc8,stroke:#e08a00,color:#4a2e00',
  freeze: 'fill:#ece0fe,stroke:#8a3ffc,color:#2e0f5c',
  weights: 'fill:#d6f2f2,stroke:#0f8f8f,color:#063a3a',
};

/** The ```mermaid block's lines; empty when no parameter changed (op-only and I/O-only diffs). */
export function mermaidDiagram(d: GraphDiff): string[] {
  const entries = foldBy(changedModules(d), (e) => e.path, (e) => JSON.stringify([e.kind, e.lines, e.from === undefined ? '' : e.from.replace(/(^|\.)\d+(?=\.|$)/g, '$1*')]));
  if (entries.length === 0) return [];
  const out = ['```mermaid', 'flowchart LR', `  root["${text(d.b.name)}"]`];
  // Top-level modules are the first level under the model; a changed one is its own node there.
  const tops = new Map<string, string>();
  const parentOf = (path: string): { id: string; prefix: string } => {
    const top = path.split('.')[0]!;
    if (top === path) return { id: 'root', prefix: '' };
    let id = tops.get(top);
    if (!id) {
      id = `t${tops.size}`;
      tops.set(top, id);
      out.push(`  ${id}["${text(top)}"]`, `  root --> ${id}`);
    }
    return { id, prefix: `${top}.` };
  };
  const node = (id: string, path: string, lines: string[], kind: Kind, count = 1): string => {
    const parent = parentOf(path);
    const label = [path.slice(parent.prefix.length) + (count > 1 ? ` ×${count}` : ''), ...lines].map(text).join('<br/>');
    out.push(`  ${id}["${label}"]:::${kind}`, `  ${parent.id} --> ${id}`);
    if (parent.id === 'root') tops.set(path, id);
    return id;
  };
  const shown = entries.length > MAX_NODES ? entries.slice(0, MAX_NODES - 1) : entries;
  shown.forEach(({ name, item, count }, i) => {
    const id = node(`m${i}`, name, item.lines, item.kind, count);
    if (item.from !== undefined) out.push(`  ${node(`${id}from`, count > 1 ? renamedFrom(name, item) : item.from, [], 'removed')} -.->|renamed| ${id}`);
  });
  if (shown.length < entries.length) out.push(`  more["… ${entries.length - shown.length} more changed modules (see the tables below)"]`, '  root --> more');
  for (const kind of Object.keys(STYLES) as Kind[]) out.push(`  classDef ${kind} ${STYLES[kind]}`);
  out.push('```');
  return out;
}

/** Every changed module or parameter group, in path order, one entry per path and kind. */
function changedModules(d: GraphDiff): Entry[] {
  const entries: Entry[] = [];
  const size = (g: ParamGroup) => `${formatCount(g.tensors)} tensor${g.tensors === 1 ? '' : 's'}, ${formatCount(g.params)} params`;
  for (const r of d.params.renamed) entries.push({ path: r.to, kind: 'renamed', lines: [`renamed${r.exact ? '' : ', contents changed'}`], from: r.from });
  for (const g of d.params.added) entries.push({ path: g.path, kind: 'added', lines: [`added: ${size(g)}`] });
  for (const g of d.params.removed) entries.push({ path: g.path, kind: 'removed', lines: [`removed: ${size(g)}`] });
  // Shape and dtype changes are per parameter; the picture names the module that holds them.
  const changed = new Map<string, string[]>();
  const note = (name: string, line: string) => {
    const module = parentPath(name) || name;
    const lines = changed.get(module) ?? [];
    lines.push(`${name.slice(module.length + 1) || name} ${line}`);
    changed.set(module, lines);
  };
  for (const c of d.params.reshaped) note(c.name, `[${c.before.join(',')}] → [${c.after.join(',')}]`);
  for (const c of d.params.retyped) note(c.name, `${c.before} → ${c.after}`);
  for (const [path, lines] of changed) entries.push({ path, kind: 'changed', lines: lines.length > 3 ? [`${lines.length} tensors reshaped or retyped`] : lines });
  for (const g of d.freeze) entries.push({ path: g.path, kind: 'freeze', lines: [`${g.before ? 'trainable' : 'frozen'} → ${g.after ? 'trainable' : 'frozen'}: ${size(g)}`] });
  for (const g of d.weights) entries.push({ path: g.path, kind: 'weights', lines: [`bytes changed: ${size(g)}`] });
  return mergeByPath(entries).sort((x, y) => comparePaths(x.path, y.path));
}

/** One entry per path (a module reshaped and frozen is one node), coloured by its first change. */
function mergeByPath(entries: readonly Entry[]): Entry[] {
  const byPath = new Map<string, Entry>();
  for (const e of entries) {
    const seen = byPath.get(e.path);
    if (!seen) byPath.set(e.path, { ...e, lines: [...e.lines] });
    else {
      seen.lines.push(...e.lines);
      seen.from ??= e.from;
    }
  }
  return [...byPath.values()];
}

/** A folded rename's old name: the new name's index pattern on the old path. */
function renamedFrom(pattern: string, item: Entry): string {
  const from = item.from!.split('.');
  const to = item.path.split('.');
  const folded = pattern.split('.');
  // Where the old and new paths agree segment for segment, the fold applies to both.
  return from.map((seg, i) => (to[i] === seg && folded[i] !== undefined && folded[i] !== seg && /^\{/.test(folded[i]!) ? folded[i]! : seg)).join('.');
}

/** Text inside a quoted Mermaid label: quotes and markup characters as entity codes. */
function text(s: string): string {
  return s.replace(/[#"<>]/g, (c) => `#${c.charCodeAt(0)};`);
}
