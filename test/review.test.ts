/**
 * Graph review: summaries, lock files, `vlmc diff` on real graph changes built from the zoo, .onnx
 * summaries (round trip through the emitter, unsafe external data), diff operands.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { compile, freeze, internlm2, internvl, internViT, preset, qwen2, UserError, type Graph, type Model } from '../src/index.ts';
import type { FreezeRule } from '../src/dsl/freeze.ts';
import { DTYPES } from '../src/ir/dtype.ts';
import { buildModelProto, encodeModel, type ExternalWeights } from '../src/onnx/emit.ts';
import { onnx, type ModelProto } from '../src/onnx/proto.ts';
import {
  checkLocks,
  comparePaths,
  diffExitCode,
  diffSummaries,
  isEmptyDiff,
  lockPathFor,
  lockText,
  renderJson,
  renderMarkdown,
  renderText,
  resolveOperand,
  summaryFromArtifact,
  summaryFromGraph,
  summaryFromOnnxFile,
  withTrainable,
  writeLock,
  type GraphDiff,
  type GraphSummary,
} from '../src/review/index.ts';
import { buildModules } from '../src/review/tree.ts';
import { ROOT, removeDir, tempDir } from './helpers.ts';

// ---------------------------------------------------------------------------------------------
// Graphs: the tiny InternVL and one-change variants of it.

interface Variant {
  family?: typeof qwen2 | typeof internlm2;
  llm?: { intermediate?: number; layers?: number };
  selectLayer?: number;
  downsampleRatio?: number;
  train?: FreezeRule[];
}

function tiny(v: Variant = {}): Model {
  return internvl({
    name: 'internvl-tiny',
    // 56 / 14 = a 4x4 patch grid: divisible by both 0.5 (2x2 tokens) and 0.25 (1 token).
    vision: internViT({ hidden: 32, heads: 4, layers: 2, intermediate: 64, imageSize: 56, patchSize: 14, norm: 'layer_norm', qkvBias: true, qkNorm: false, eps: 1e-6 }),
    llm: (v.family ?? qwen2)({ hidden: 48, heads: 4, kvHeads: 2, layers: 2, intermediate: 96, vocab: 160, rmsNormEps: 1e-6, ropeTheta: 1e6, maxPositions: 32768, tieEmbeddings: true, ...v.llm }),
    downsampleRatio: v.downsampleRatio ?? 0.5,
    psVersion: 'v2',
    selectLayer: v.selectLayer ?? -1,
    imgContextTokenId: 153,
    train: v.train ?? preset('stage1'),
  });
}

const summarize = (v: Variant = {}): GraphSummary => summaryFromGraph(compile(tiny(v)));
const diffOf = (v: Variant, options = {}): GraphDiff => diffSummaries(summarize(), summarize(v), { labels: ['base', 'changed'], ...options });
/** The text rendering's lines, trimmed, without the heading. */
const textLines = (d: GraphDiff): string[] => renderText(d).split('\n').slice(1).map((l) => l.trim()).filter(Boolean);

/** The summary as if module `from` had been called `to` (params, op scopes, nodes). */
function reprefix(s: GraphSummary, from: string, to: string): GraphSummary {
  const move = (p: string) => (p === from ? to : p.startsWith(`${from}.`) ? to + p.slice(from.length) : p);
  const params = s.params.map((p) => ({ ...p, name: move(p.name) })).sort((x, y) => comparePaths(x.name, y.name));
  const ops = Object.fromEntries(Object.entries(s.ops).map(([m, h]) => [move(m), h]));
  return { ...s, params, ops, modules: buildModules(params, Object.keys(ops)) };
}

// ---------------------------------------------------------------------------------------------

describe('summary', () => {
  const s = summarize();

  it('records the I/O signature, opset and metadata', () => {
    expect(s.inputs).toEqual([
      { name: 'pixel_values', dtype: 'float32', shape: ['tiles', 3, 56, 56] },
      { name: 'input_ids', dtype: 'int64', shape: ['batch', 'seq'] },
      { name: 'image_flags', dtype: 'int64', shape: ['tiles'] },
    ]);
    expect(s.outputs.map((o) => `${o.name} ${o.dtype} [${o.shape}]`)).toEqual(['logits float32 [batch,seq,160]', 'vit_embeds float32 [tiles,4,48]']);
    expect(s.opset).toEqual({ 'ai.onnx': 17 });
    expect(s.metadata['vlmc.select_layer']).toBe('-1');
  });

  it('lists parameters in module-path order with shape, dtype and freeze state', () => {
    const names = s.params.map((p) => p.name);
    expect([...names].sort(comparePaths)).toEqual(names);
    expect(s.params.find((p) => p.name === 'mlp1.1.weight')).toEqual({ name: 'mlp1.1.weight', shape: [48, 128], dtype: 'float32', trainable: true, used: true });
    expect(s.params.find((p) => p.name === 'vision_model.embeddings.class_embedding')).toMatchObject({ trainable: false });
  });

  it('aggregates parameter counts to every ancestor module', () => {
    const m = (p: string) => s.modules.find((x) => x.path === p)!;
    const total = s.params.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
    expect(m('')).toMatchObject({ tensors: s.params.length, params: total, trainable: m('mlp1').params });
    expect(m('mlp1')).toEqual({ path: 'mlp1', tensors: 6, params: 128 * 2 + 48 * 128 + 48 + 48 * 48 + 48, trainable: 8800 });
    expect(m('language_model.model.layers').params).toBe(m('language_model.model.layers.0').params + m('language_model.model.layers.1').params);
  });

  it('keeps an op histogram per module', () => {
    expect(s.ops['vision_model.embeddings.patch_embedding']).toEqual({ Conv: 1 });
    // Own nodes only: the SwiGLU product in mlp, the projections' Gemms (flattened, leading dims restored) in its children.
    expect(s.ops['language_model.model.layers.0.mlp']).toEqual({ Mul: 2, Sigmoid: 1 });
    expect(s.ops['language_model.model.layers.0.mlp.down_proj']).toEqual({ Concat: 1, Gemm: 1, Reshape: 2, Shape: 1 });
  });

  it('has a structure hash that is stable and follows the structure', () => {
    expect(summarize().structureHash).toBe(s.structureHash);
    expect(s.structureHash).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(summarize({ llm: { intermediate: 128 } }).structureHash).not.toBe(s.structureHash);
    // Freezing is not structure.
    expect(summarize({ train: preset('full') }).structureHash).toBe(s.structureHash);
  });

  it('is JSON-serialisable and byte-stable', () => {
    expect(JSON.stringify(JSON.parse(JSON.stringify(s)))).toBe(JSON.stringify(s));
    expect(JSON.stringify(summarize())).toBe(JSON.stringify(s));
  });
});

describe('lock files', () => {
  it('writes canonical, line-oriented text', () => {
    const text = lockText(summarize());
    const lines = text.split('\n');
    expect(lines[0]).toBe('# vlmc graph lock v1');
    for (const section of ['[graph]', '[opset]', '[metadata]', '[io]', '[params]', '[modules]', '[ops]', '[structure-hash]']) expect(lines).toContain(section);
    expect(lines).toContain('input pixel_values float32 [tiles,3,56,56]');
    expect(lines).toContain('mlp1.1.weight float32 [48,128] trainable');
    expect(lines).toContain('language_model.model.norm.weight float32 [48] frozen');
    expect(lines).toContain('mlp1 tensors=6 params=8800 trainable=8800');
    expect(lines).toContain('vision_model.embeddings.patch_embedding Conv 1');
    expect(lines).toContain('ai.onnx 17');
    expect(text.endsWith('\n')).toBe(true);
  });

  it('is byte-identical across runs', () => {
    expect(lockText(summarize())).toBe(lockText(summarize()));
  });

  it('moves only the lines of the facts that changed', () => {
    const before = lockText(summarize()).split('\n');
    const after = lockText(summarize({ train: [...preset('stage1'), ...freeze('projector')] })).split('\n');
    const changed = before.filter((l, i) => l !== after[i]);
    expect(before.length).toBe(after.length);
    expect(changed.every((l) => l.startsWith('mlp1') || l.startsWith('(root) tensors='))).toBe(true);
    expect(changed).toContain('mlp1.3.weight float32 [48,48] trainable');
  });

  it('names the lock after the graph file', () => {
    expect(lockPathFor('graphs/internvl-tiny.ts')).toBe('graphs/internvl-tiny.graph.lock');
    expect(lockPathFor('/a/b/x.mts')).toBe('/a/b/x.graph.lock');
  });

  it('writes locks and finds missing and stale ones', async () => {
    const dir = tempDir('vlmc-lock-');
    try {
      const graph = path.join(dir, 'tiny.ts');
      copyFileSync(path.join(ROOT, 'graphs/internvl-tiny.ts'), graph);
      expect(await checkLocks([graph])).toEqual({ stale: [], missing: [path.join(dir, 'tiny.graph.lock')] });
      expect(await writeLock(graph)).toEqual({ path: path.join(dir, 'tiny.graph.lock'), changed: true });
      expect(await writeLock(graph)).toEqual({ path: path.join(dir, 'tiny.graph.lock'), changed: false });
      expect(await checkLocks([graph])).toEqual({ stale: [], missing: [] });
      const lock = path.join(dir, 'tiny.graph.lock');
      writeFileSync(lock, readFileSync(lock, 'utf8').replace('mlp1.1.weight float32 [48,128] trainable', 'mlp1.1.weight float32 [48,128] frozen'));
      expect(await checkLocks([graph])).toEqual({ stale: [lock], missing: [] });
    } finally {
      removeDir(dir);
    }
  });
});

describe('diff on real graph changes', () => {
  it('reports nothing for identical graphs', () => {
    const d = diffSummaries(summarize(), summarize(), { nodes: true });
    expect(isEmptyDiff(d)).toBe(true);
    expect(diffExitCode(d)).toBe(0);
    // As diff(1): identical operands print nothing; JSON is the empty-difference object.
    expect(renderText(d)).toBe('');
    expect(renderMarkdown(d)).toBe('');
    expect(renderJson(d)).toBe('{}\n');
    expect(d.nodes).toEqual({ added: [], removed: [], changed: [] });
  });

  it('LLM family swap (Qwen2 -> InternLM2): renames, new modules, op changes', () => {
    const d = diffOf({ family: internlm2 });
    expect(diffExitCode(d)).toBe(1);
    expect(d.io).toEqual([]);
    expect(d.params.renamed.map((r) => `${r.from} -> ${r.to}`)).toEqual([
      'language_model.model.embed_tokens -> language_model.model.tok_embeddings',
      'language_model.model.layers.0.input_layernorm -> language_model.model.layers.0.attention_norm',
      'language_model.model.layers.0.post_attention_layernorm -> language_model.model.layers.0.ffn_norm',
      'language_model.model.layers.1.input_layernorm -> language_model.model.layers.1.attention_norm',
      'language_model.model.layers.1.post_attention_layernorm -> language_model.model.layers.1.ffn_norm',
    ]);
    const lines = textLines(d);
    expect(lines).toContain('added    language_model.model.layers.{0,1}.attention — 2 tensors, 6,912 params each (x2)');
    expect(lines).toContain('added    language_model.model.layers.{0,1}.feed_forward — 3 tensors, 13,824 params each (x2)');
    expect(lines).toContain('removed  language_model.model.layers.{0,1}.self_attn — 7 tensors, 7,008 params each (x2)');
    expect(lines).toContain('removed  language_model.model.layers.{0,1}.mlp — 3 tensors, 13,824 params each (x2)');
    // Qwen2's q/k/v biases go: 2 layers x (48 + 24 + 24) fewer parameters.
    expect(lines).toContain('(root): 95,024 -> 94,832 (-192) [8,800 -> 8,800 (0)]');
    expect(d.ops.filter((o) => o.module === '').map((o) => `${o.op} ${o.before}->${o.after}`)).toContain('Gemm 25->21');
    expect(d.structure).toBeDefined();
  });

  it('selectLayer -1 -> -2: the last ViT layer stops running', () => {
    const d = diffOf({ selectLayer: -2 });
    expect(d.params).toEqual({ renamed: [], added: [], removed: [], reshaped: [], retyped: [] });
    expect(d.metadata).toEqual([{ key: 'vlmc.select_layer', before: '-1', after: '-2' }]);
    const lines = textLines(d);
    expect(lines).toContain('used -> unused: vision_model.encoder.layers.1 — 14 tensors, 8,608 params');
    expect(lines.find((l) => l.startsWith('vision_model.encoder.layers.1:'))).toMatch(/^vision_model\.encoder\.layers\.1: Add 3->0, .*Gemm 4->0, LayerNormalization 2->0, MatMul 2->0/);
    expect(d.counts.filter((c) => c.changed)).toEqual([]);
  });

  it('freezing a module', () => {
    const d = diffOf({ train: [...preset('stage1'), ...freeze('projector')] });
    expect(d.freeze).toEqual([{ path: 'mlp1', module: true, tensors: 6, params: 8800, names: expect.any(Array), before: true, after: false }]);
    const lines = textLines(d);
    expect(lines).toContain('trainable -> frozen: mlp1 — 6 tensors, 8,800 params');
    expect(lines).toContain('(root): 95,024 -> 95,024 (0) [8,800 -> 0 (-8,800)]');
    expect(d.structure).toBeUndefined();
    expect(d.ops).toEqual([]);
  });

  it('downsample ratio 0.5 -> 0.25: fewer tokens per tile, a wider projector', () => {
    const d = diffOf({ downsampleRatio: 0.25 });
    const lines = textLines(d);
    expect(lines).toContain('~ output vit_embeds: float32 [tiles,4,48] -> float32 [tiles,1,48]');
    expect(lines).toContain('reshaped mlp1.0.weight [128] -> [512]');
    expect(lines).toContain('reshaped mlp1.1.weight [48,128] -> [48,512]');
    expect(lines).toContain('~ vlmc.tokens_per_tile: "4" -> "1"');
    expect(lines).toContain('mlp1: 8,800 -> 28,000 (+19,200) [8,800 -> 28,000 (+19,200)]');
  });

  it('widening the LLM intermediate size folds per-layer changes', () => {
    const d = diffOf({ llm: { intermediate: 128 } });
    expect(d.params.reshaped).toHaveLength(6);
    const lines = textLines(d);
    expect(lines).toContain('reshaped language_model.model.layers.{0,1}.mlp.gate_proj.weight [96,48] -> [128,48] (x2)');
    expect(lines).toContain('reshaped language_model.model.layers.{0,1}.mlp.down_proj.weight [48,96] -> [48,128] (x2)');
    expect(lines).toContain('language_model.model.layers: 41,856 -> 51,072 (+9,216) [0 -> 0 (0)]');
  });

  it('an extra LLM layer is one added module', () => {
    const d = diffOf({ llm: { layers: 3 } });
    expect(textLines(d)).toContain('added    language_model.model.layers.2 — 12 tensors, 20,928 params');
    expect(d.params.removed).toEqual([]);
    expect(d.params.renamed).toEqual([]);
    // Inside the new layer nothing more is listed: its own line says it all.
    expect(d.counts.filter((c) => c.changed).map((c) => c.module)).toEqual(['', 'language_model', 'language_model.model', 'language_model.model.layers', 'language_model.model.layers.2']);
  });

  it('a renamed module (mlp1 -> projector) is a rename, not add + remove', () => {
    const a = summarize();
    const d = diffSummaries(a, reprefix(a, 'mlp1', 'projector'));
    expect(d.params).toEqual({ renamed: [{ from: 'mlp1', to: 'projector', exact: true, tensors: 6, params: 8800 }], added: [], removed: [], reshaped: [], retyped: [] });
    // Counts and ops compare the renamed module with its old self.
    expect(d.counts.filter((c) => c.changed)).toEqual([]);
    expect(d.ops).toEqual([]);
    expect(textLines(d)).toEqual(['Parameters', 'renamed  mlp1 -> projector — 6 tensors, 8,800 params']);
  });

  it('a shifted layer (layers.1 -> layers.2) is a rename', () => {
    const a = summarize();
    const d = diffSummaries(a, reprefix(a, 'language_model.model.layers.1', 'language_model.model.layers.2'));
    expect(d.params.renamed).toEqual([{ from: 'language_model.model.layers.1', to: 'language_model.model.layers.2', exact: true, tensors: 12, params: 20928 }]);
    expect(d.params.added).toEqual([]);
    expect(d.params.removed).toEqual([]);
  });

  it('a module renamed and widened is removed + added: names and shapes must match for a rename', () => {
    const a = summarize();
    const b = reprefix(summarize({ downsampleRatio: 0.25 }), 'mlp1', 'projector');
    const d = diffSummaries(a, b);
    expect(d.params.renamed).toEqual([]);
    expect(d.params.removed.map((g) => g.path)).toEqual(['mlp1']);
    expect(d.params.added.map((g) => g.path)).toEqual(['projector']);
    expect(d.params.reshaped).toEqual([]);
  });

  it('a LayerNorm is never "renamed" to a Linear, even with the same parameter names and shapes', () => {
    const a = summarize();
    // mlp1.0 is a LayerNorm (weight [128], bias [128]); in b its place is taken by a module with the
    // same parameters whose ops are a Linear's.
    const moved = reprefix(a, 'mlp1.0', 'mlp1.9');
    const b = { ...moved, ops: { ...moved.ops, 'mlp1.9': { MatMul: 1, Add: 1 } } };
    const d = diffSummaries(a, b);
    expect(d.params.renamed).toEqual([]);
    expect(d.params.removed.map((g) => g.path)).toEqual(['mlp1.0']);
    expect(d.params.added.map((g) => g.path)).toEqual(['mlp1.9']);
    // The same module under a new name, ops and all, is still a rename.
    expect(diffSummaries(a, moved).params.renamed).toEqual([{ from: 'mlp1.0', to: 'mlp1.9', exact: true, tensors: 2, params: 256 }]);
  });

  it('a LayerNorm next to a new Linear with the same parameter names is removed + added', () => {
    const a = summarize();
    const ln = a.params.filter((p) => p.name.startsWith('mlp1.0.'));
    const params = [...a.params.filter((p) => !p.name.startsWith('mlp1.0.')), { ...ln[0]!, name: 'mlp1.9.bias', shape: [48] }, { ...ln[1]!, name: 'mlp1.9.weight', shape: [48, 128] }].sort((x, y) => comparePaths(x.name, y.name));
    const { 'mlp1.0': _ln, ...ops } = a.ops;
    const b = { ...a, params, ops: { ...ops, 'mlp1.9': { MatMul: 1, Add: 1 } }, modules: buildModules(params, [...Object.keys(ops), 'mlp1.9']) };
    const d = diffSummaries(a, b);
    expect(d.params.renamed).toEqual([]);
    expect(d.params.removed.map((g) => g.path)).toEqual(['mlp1.0']);
    expect(d.params.added.map((g) => g.path)).toEqual(['mlp1.9']);
  });

  it('reordered inputs are a signature change', () => {
    const a = summarize();
    const d = diffSummaries(a, { ...a, inputs: [a.inputs[1]!, a.inputs[0]!, a.inputs[2]!] });
    expect(d.io.map((c) => [c.name, c.change, c.position])).toEqual([
      ['pixel_values', 'moved', { before: 0, after: 1 }],
      ['input_ids', 'moved', { before: 1, after: 0 }],
    ]);
    expect(textLines(d)).toContain('~ input pixel_values: position 0 -> 1');
  });

  it('node detail only with nodes: true', () => {
    expect(diffOf({ llm: { layers: 3 } }).nodes).toBeUndefined();
    const d = diffOf({ llm: { layers: 3 } }, { nodes: true });
    expect(d.nodes!.added).toContain('/language_model/model/layers/2/mlp/down_proj/Gemm');
    expect(d.nodes!.removed).toEqual([]);
    expect(textLines(d)).toContain('+ /language_model/model/layers/2/mlp/down_proj/Gemm');
  });
});

describe('renderers', () => {
  it('Markdown: reviewer order, long sections folded in <details>', () => {
    const md = renderMarkdown(diffOf({ family: internlm2 }, { nodes: true }));
    expect(md.startsWith('### vlmc diff: `base` → `changed`')).toBe(true);
    const order = ['#### Parameters', '#### Parameter counts', '#### Op counts', '#### Structure', '#### Nodes'].map((h) => md.indexOf(h));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((x, y) => x - y)).toEqual(order);
    expect(md).toMatch(/<details>\n<summary>\d+ node changes<\/summary>/);
    expect(md).toContain('- **renamed** `language_model.model.embed_tokens` → `language_model.model.tok_embeddings`: 1 tensor, 7,680 params');
    expect(md).toContain('| `(root)` | 95,024 | 94,832 | -192 | 8,800 | 8,800 | 0 |');
  });

  /** The ```mermaid block's lines, each checked to be a node, an edge or a class definition, every edge between defined nodes. */
  function mermaidLines(md: string): string[] {
    const block = /\n```mermaid\n([\s\S]*?)\n```\n/.exec(md);
    expect(block, 'a mermaid block').not.toBeNull();
    const lines = block![1]!.split('\n');
    expect(lines[0]).toBe('flowchart LR');
    const defined = new Set<string>();
    for (const line of lines.slice(1)) {
      const node = /^  (\w+)\["([^"]*)"\](?::::(\w+))?$/.exec(line);
      const edge = /^  (\w+) (?:-->|-\.->\|renamed\|) (\w+)$/.exec(line);
      const style = /^  classDef (\w+) fill:#[0-9a-f]{6},stroke:#[0-9a-f]{6},color:#[0-9a-f]{6}$/.exec(line);
      expect(node ?? edge ?? style, line).not.toBeNull();
      if (node) defined.add(node[1]!);
      if (edge) expect([defined.has(edge[1]!), defined.has(edge[2]!)], line).toEqual([true, true]);
    }
    return lines;
  }

  it('Markdown: a Mermaid diagram of the changed modules first, per-layer repeats folded', () => {
    const md = renderMarkdown(diffOf({ llm: { intermediate: 128 }, train: preset('full') }));
    expect(md.indexOf('#### Changed modules')).toBeLessThan(md.indexOf('#### Parameters'));
    const lines = mermaidLines(md);
    expect(lines).toContain('  root["internvl-tiny"]');
    expect(lines.filter((l) => l.includes('["language_model'))).toEqual(['  m0["language_model<br/>frozen → trainable: 26 tensors, 58,800 params"]:::freeze']);
    expect(lines).toContain('  m1["model.layers.{0,1}.mlp.down_proj ×2<br/>weight [48,96] → [48,128]"]:::changed');
    expect(lines).toContain('  m0 --> m1');
  });

  it('Markdown: a rename is an edge from the old name to the new one; no diagram without parameter changes', () => {
    const lines = mermaidLines(renderMarkdown(diffSummaries(summarize(), reprefix(summarize(), 'mlp1', 'projector'))));
    expect(lines).toEqual(expect.arrayContaining(['  m0["projector<br/>renamed"]:::renamed', '  m0from["mlp1"]:::removed', '  m0from -.->|renamed| m0']));
    expect(renderMarkdown(diffOf({ selectLayer: -2 }))).not.toContain('```mermaid');
  });

  it('Markdown: I/O first', () => {
    const md = renderMarkdown(diffOf({ downsampleRatio: 0.25 }));
    expect(md.indexOf('#### I/O signature')).toBeLessThan(md.indexOf('#### Parameters'));
    expect(md).toContain('| changed | output `vit_embeds` | `float32 [tiles,4,48]` | `float32 [tiles,1,48]` |');
  });

  it('JSON round-trips', () => {
    const d = diffOf({ selectLayer: -2 });
    expect(JSON.parse(renderJson(d))).toEqual(JSON.parse(JSON.stringify(d)));
  });
});

// ---------------------------------------------------------------------------------------------
// .onnx files

/** Emits a graph as model.onnx + a zero-filled model.onnx.data, like an artifact without weights. */
function emit(graph: Graph, dir: string, edit: (m: ModelProto) => void = () => {}): string {
  mkdirSync(dir, { recursive: true });
  const entries: ExternalWeights['entries'] = new Map();
  let offset = 0;
  for (const p of graph.params) {
    const length = p.shape.reduce((a, b) => a * b, 1) * DTYPES[p.dtype].bytes;
    entries.set(p.name, { offset, length, dtype: p.dtype });
    offset += length;
  }
  writeFileSync(path.join(dir, 'model.onnx.data'), new Uint8Array(offset));
  const proto = buildModelProto(graph, { location: 'model.onnx.data', entries }, { producerVersion: 'test' });
  edit(proto);
  const file = path.join(dir, 'model.onnx');
  writeFileSync(file, encodeModel(proto));
  return file;
}

function setExternal(m: ModelProto, tensor: string, key: string, value: string): void {
  const t = m.graph!.initializer!.find((i) => i.name === tensor)!;
  const entry = t.externalData!.find((e) => e.key === key);
  if (entry) entry.value = value;
  else t.externalData!.push(onnx.StringStringEntryProto.create({ key, value }));
}

describe('.onnx summaries', () => {
  let dir: string;
  let model: string;
  beforeAll(() => {
    dir = tempDir('vlmc-review-onnx-');
    model = emit(compile(tiny()), path.join(dir, 'base'));
  });
  afterAll(() => removeDir(dir));

  it('reads nodes, module paths from node names, initializers as parameters', () => {
    const s = summaryFromOnnxFile(model);
    expect(s.nodeModules).toBe(true);
    expect(s.params).toHaveLength(64);
    expect(s.params[0]).toEqual({ name: 'language_model.model.embed_tokens.weight', shape: [160, 48], dtype: 'float32', used: true });
    expect(s.ops['vision_model.embeddings.patch_embedding']).toEqual({ Conv: 1 });
  });

  it('diffs empty against itself and against the graph it came from', () => {
    const s = summaryFromOnnxFile(model);
    expect(isEmptyDiff(diffSummaries(s, summaryFromOnnxFile(model), { nodes: true }))).toBe(true);
    // Same structure hash, same everything; the .onnx just has no freeze states to compare.
    expect(s.structureHash).toBe(summarize().structureHash);
    expect(isEmptyDiff(diffSummaries(summarize(), s, { nodes: true }))).toBe(true);
  });

  it('diffs against a modified model', () => {
    const wider = summaryFromOnnxFile(emit(compile(tiny({ llm: { intermediate: 128 } })), path.join(dir, 'wider')));
    const d = diffSummaries(summaryFromOnnxFile(model), wider);
    expect(d.params.reshaped).toHaveLength(6);
    expect(textLines(d)).toContain('reshaped language_model.model.layers.{0,1}.mlp.up_proj.weight [96,48] -> [128,48] (x2)');
    // A changed attribute is a structure change, and a node change with nodes: true.
    const eps = emit(compile(tiny()), path.join(dir, 'eps'), (m) => {
      const ln = m.graph!.node!.find((n) => n.opType === 'LayerNormalization')!;
      ln.attribute!.find((a) => a.name === 'epsilon')!.f = 1e-3;
    });
    const e = diffSummaries(summaryFromOnnxFile(model), summaryFromOnnxFile(eps), { nodes: true });
    expect(e.structure).toBeDefined();
    expect(e.nodes!.changed).toEqual(['/vision_model/encoder/layers/0/norm1/LayerNormalization']);
  });

  it('hashes weights only when asked, external data included', () => {
    expect(summaryFromOnnxFile(model).params.every((p) => p.sha256 === undefined)).toBe(true);
    const zeros = summaryFromOnnxFile(model, { weights: true });
    expect(zeros.params.every((p) => /^[0-9a-f]{64}$/.test(p.sha256!))).toBe(true);
    const copy = path.join(dir, 'poked');
    emit(compile(tiny()), copy);
    const data = readFileSync(path.join(copy, 'model.onnx.data'));
    data[0] = 1; // first bytes: vision_model.embeddings.class_embedding (declaration order)
    writeFileSync(path.join(copy, 'model.onnx.data'), data);
    const d = diffSummaries(zeros, summaryFromOnnxFile(path.join(copy, 'model.onnx'), { weights: true }));
    expect(d.weights.map((g) => g.path)).toEqual(['vision_model.embeddings.class_embedding']);
    expect(diffExitCode(d)).toBe(1);
  });

  it('merges freeze states from an artifact manifest', () => {
    const artifact = path.join(dir, 'artifact');
    emit(compile(tiny()), artifact);
    const ir = summarize();
    writeFileSync(path.join(artifact, 'manifest.json'), JSON.stringify({ parameters: ir.params.map((p) => ({ name: p.name, trainable: p.trainable })) }));
    const s = summaryFromArtifact(artifact);
    expect(s.modules.find((m) => m.path === '')!.trainable).toBe(8800);
    expect(isEmptyDiff(diffSummaries(ir, s))).toBe(true);
    expect(withTrainable(s, new Map([['mlp1.1.weight', false]])).modules.find((m) => m.path === 'mlp1')!.trainable).toBe(8800 - 48 * 128);
  });

  describe('refuses unsafe or broken external data', () => {
    const tensor = 'vision_model.embeddings.class_embedding';
    const cases: [string, (m: ModelProto) => void, RegExp][] = [
      ['a parent-folder location', (m) => setExternal(m, tensor, 'location', '../x'), /contains '\.\.'/],
      ['a nested parent-folder location', (m) => setExternal(m, tensor, 'location', 'sub/../../x'), /contains '\.\.'/],
      ['an absolute location', (m) => setExternal(m, tensor, 'location', '/etc/passwd'), /is absolute/],
      ['a missing file', (m) => setExternal(m, tensor, 'location', 'nope.data'), /does not exist/],
      ['a range past the end of the file', (m) => setExternal(m, tensor, 'offset', String(10 ** 9)), /lie outside 'model\.onnx\.data'/],
      ['a length that does not match the dims', (m) => setExternal(m, tensor, 'length', '4'), /does not match float32\[1,1,32\]/],
      ['a malformed offset', (m) => setExternal(m, tensor, 'offset', '-4'), /not a non-negative integer/],
    ];
    for (const [what, edit, message] of cases) {
      it(what, () => {
        const file = emit(compile(tiny()), path.join(dir, `bad-${what.replace(/\W+/g, '-')}`), edit);
        const run = () => summaryFromOnnxFile(file);
        expect(run).toThrow(UserError);
        expect(run).toThrow(new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: initializer '${tensor}': `));
        expect(run).toThrow(message);
      });
    }

    it('a symbolic link out of the model folder', () => {
      const outside = path.join(dir, 'outside.data');
      writeFileSync(outside, new Uint8Array(1 << 20));
      const file = emit(compile(tiny()), path.join(dir, 'symlink'), (m) => setExternal(m, tensor, 'location', 'link.data'));
      symlinkSync(outside, path.join(dir, 'symlink', 'link.data'));
      expect(() => summaryFromOnnxFile(file)).toThrow(/resolves outside the model's folder through a symbolic link/);
    });

    it('a file that is not an ONNX model', () => {
      const file = path.join(dir, 'junk.onnx');
      writeFileSync(file, 'not a model at all \u0001\u0002');
      expect(() => summaryFromOnnxFile(file)).toThrow(UserError);
    });
  });
});

describe('diff operands', () => {
  it('a graph file', async () => {
    const r = await resolveOperand('graphs/internvl-tiny.ts', { cwd: ROOT });
    expect(r.kind).toBe('graph');
    expect(r.summary.name).toBe('internvl-tiny');
  });

  it('a git revision of a graph file, read next to the original and removed afterwards', async () => {
    const before = readdirSync(path.join(ROOT, 'graphs'));
    const r = await resolveOperand('HEAD:graphs/internvl-tiny.ts', { cwd: ROOT });
    expect(r.kind).toBe('git');
    expect(r.summary.name).toBe('internvl-tiny');
    expect(readdirSync(path.join(ROOT, 'graphs'))).toEqual(before);
  });

  it('an artifact folder and an .onnx file', async () => {
    const dir = tempDir('vlmc-operand-');
    try {
      const file = emit(compile(tiny()), dir);
      expect((await resolveOperand(dir)).kind).toBe('artifact');
      expect((await resolveOperand(file)).kind).toBe('onnx');
    } finally {
      removeDir(dir);
    }
  });

  it('clear errors for anything else', async () => {
    await expect(resolveOperand('nope/missing.ts', { cwd: ROOT })).rejects.toThrow(/no such file or folder/);
    await expect(resolveOperand('package.json', { cwd: ROOT })).rejects.toThrow(/not a graph file/);
    await expect(resolveOperand('HEAD:graphs/does-not-exist.ts', { cwd: ROOT })).rejects.toThrow(UserError);
    await expect(resolveOperand('HEAD:package.json', { cwd: ROOT })).rejects.toThrow(/only graph files/);
    const empty = tempDir('vlmc-operand-');
    try {
      await expect(resolveOperand(empty)).rejects.toThrow(/not an artifact folder/);
    } finally {
      removeDir(empty);
    }
    expect(existsSync(path.join(ROOT, 'graphs'))).toBe(true);
  });
});
