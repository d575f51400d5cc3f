/**
 * Pictures of models and model changes, the data they draw (issue 20): `vlmc view` of every
 * operand kind agrees with the manifest's counts and keys, repeated layers fold, a diff's changes
 * land on the right nodes of both pictures, pages are self-contained and byte-stable, and the CLI
 * exits 0 / 1 / 2 as documented. What the browser shows of it: test/view-browser.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { build } from '../src/build.ts';
import { exportHF } from '../src/export/hf.ts';
import { compile, freeze, internvl, internViT, preset, qwen2, unfreeze, type Model } from '../src/index.ts';
import type { FreezeRule } from '../src/dsl/freeze.ts';
import type { Manifest } from '../src/artifact/format.ts';
import { diffSummaries, resolveOperand, summaryFromGraph, type ResolvedOperand } from '../src/review/index.ts';
import { buildView, diffPage, diffView, viewPage, type View, type ViewNode } from '../src/review/view/index.ts';
import { FIXTURES, ROOT, removeDir, tempDir, vlmc } from './helpers.ts';

const work = tempDir('vlmc-view-');
afterAll(() => removeDir(work));
const unified = path.join(FIXTURES, 'qwen2-tiny', 'unified');
const artifacts = { single: path.join(work, 'single'), split: path.join(work, 'split'), train: path.join(work, 'train'), int4: path.join(work, 'int4') };

beforeAll(async () => {
  await build({ weights: unified, out: artifacts.single });
  await build({ weights: unified, out: artifacts.split, split: true });
  await build({ weights: unified, out: artifacts.train, train: true, preset: 'stage1' });
  // Unpacked projections (every fusion but pack-projections): the views show each logical weight stored quantised.
  await build({ weights: unified, out: artifacts.int4, target: 'gpu', fuse: 'gqa,vit-attention,gelu,skip-layernorm,rmsnorm', quant: { bits: 4, blockSize: 32, symmetric: true } });
});

const manifestOf = (dir: string): Manifest => JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
const viewOf = async (spec: string): Promise<View> => buildView(await resolveOperand(spec, { cwd: ROOT }));

function leaves(n: ViewNode): ViewNode[] {
  return n.children ? n.children.flatMap(leaves) : [n];
}

function find(root: ViewNode, p: string): ViewNode {
  const hit = [root, ...descendants(root)].find((n) => n.path === p);
  if (!hit) throw new Error(`no node ${p}`);
  return hit;
}

function descendants(n: ViewNode): ViewNode[] {
  return (n.children ?? []).flatMap((c) => [c, ...descendants(c)]);
}

/** Every module's counts are its children's sums, so what is drawn inside a cell adds up to the cell. */
function expectSums(n: ViewNode): void {
  if (!n.children) return;
  const sum = (k: 'params' | 'tensors' | 'bytes' | 'trainable') => n.children!.reduce((s, c) => s + (c[k] ?? 0), 0);
  expect([sum('params'), sum('tensors'), sum('bytes')], n.path).toEqual([n.params, n.tensors, n.bytes]);
  if (n.trainable !== undefined) expect(sum('trainable'), n.path).toBe(n.trainable);
  n.children.forEach(expectSums);
}

describe('the view of each operand kind: the manifest\'s counts and keys', () => {
  it('an artifact: totals, tensors, checkpoint keys and stored bytes', async () => {
    const v = await viewOf(artifacts.single);
    const m = manifestOf(artifacts.single);
    expect([v.total, v.trainable, v.tensors]).toEqual([m.counts.total, m.counts.trainable, m.parameters.length]);
    expect(v.bytes).toBe(m.parameters.reduce((n, p) => n + p.length, 0));
    expect(v.source).toEqual({ kind: 'artifact', label: artifacts.single });
    expect(v.panels.map((p) => p.id)).toEqual(['model']);
    const q = find(v.root, 'language_model.model.layers.{0,1}.self_attn.q_proj.weight');
    expect(q).toMatchObject({ shape: [48, 48], dtype: 'float32', keys: ['language_model.model.layers.{0,1}.self_attn.q_proj.weight'], params: 2 * 48 * 48, repeat: 2 });
    expectSums(v.root);
  });

  it('a quantised artifact: the logical weights, their int4 blocks and scales as one parameter', async () => {
    const v = await viewOf(artifacts.int4);
    const m = manifestOf(artifacts.int4);
    expect([v.total, v.tensors]).toEqual([m.counts.total, m.parameters.length]);
    expect(leaves(v.root).filter((l) => /_scales|_zero_points/.test(l.path))).toEqual([]);
    const up = m.parameters.find((p) => p.name === 'language_model.model.layers.0.mlp.up_proj.weight')!;
    const scales = (up.quant!.tensors as { length: number }[])[0]!.length;
    expect(find(v.root, 'language_model.model.layers.{0,1}.mlp.up_proj.weight')).toMatchObject({ shape: [96, 48], dtype: 'float32', quant: 'int4-symmetric, block 32', bytes: 2 * (up.length + scales) });
    expect(v.bytes).toBe(m.parameters.reduce((n, p) => n + p.length + ((p.quant?.tensors as { length: number }[] | undefined) ?? []).reduce((s, t) => s + t.length, 0), 0));
    expectSums(v.root);
  });

  it('a training artifact: what train.onnx computes gradients for and where its backward nodes run', async () => {
    const v = await viewOf(artifacts.train);
    const m = manifestOf(artifacts.train);
    expect([v.total, v.trainable]).toEqual([m.counts.total, m.counts.trainable]);
    expect(v.panels.map((p) => [p.id, p.mode])).toEqual([['model', 'params'], ['train', 'grad']]);
    const grads = leaves(v.root).filter((l) => l.grad).map((l) => l.path);
    expect(grads.sort()).toEqual(m.train!.trainable.map((t) => t.name).sort());
    expect(v.train).toEqual({ graph: 'train.onnx', gradTensors: 6, gradParams: m.counts.trainable, backwardNodes: m.train!.pruning.backward_nodes, backwardNodesUnpruned: m.train!.pruning.backward_nodes_unpruned });
    // stage1: the loss's gradient runs back through the LLM to the projector, never into the ViT.
    expect(find(v.root, 'mlp1').backward).toBeGreaterThan(0);
    expect(find(v.root, 'language_model').backward).toBeGreaterThan(0);
    expect(find(v.root, 'vision_model').backward).toBeUndefined();
  });

  it('a split artifact: one panel per graph, the shared embedding table counted once', async () => {
    const v = await viewOf(artifacts.split);
    const m = manifestOf(artifacts.split);
    expect([v.total, v.trainable, v.tensors]).toEqual([m.counts.total, m.counts.trainable, m.parameters.length]);
    expect(v.panels.map((p) => p.title)).toEqual(['vision.onnx', 'embedding.onnx', 'decoder.onnx']);
    const [vision, embedding, decoder] = v.panels.map((p) => p.root!);
    expect(vision!.params).toBe(find(v.root, 'vision_model').params + find(v.root, 'mlp1').params);
    expect(embedding!.params).toBe(160 * 48);
    // The decoder reads the tied table again as its lm_head.
    expect(vision!.params + decoder!.params).toBe(v.total);
    expect(decoder!.params).toBe(find(v.root, 'language_model').params);
    // As a diff operand it is the model its graphs make: the same parameters as the single graph.
    const split = await resolveOperand(artifacts.split);
    const single = await resolveOperand(artifacts.single);
    const d = diffSummaries(single.summary, split.summary);
    expect([d.params, d.freeze, d.counts.filter((c) => c.changed)]).toEqual([{ renamed: [], added: [], removed: [], reshaped: [], retyped: [] }, [], []]);
    expect(d.io.map((c) => `${c.change} ${c.name}`)).toContain('added decoder/past_key_values.0.key');
    expect(descendants(diffView(single, split, d).b.root).filter((n) => n.marks)).toEqual([]);
  });

  it('a checkpoint folder: the graph vlmc build derives, and the keys each parameter is read from', async () => {
    const v = await viewOf(unified);
    const built = await viewOf(artifacts.single);
    expect(v.source.kind).toBe('checkpoint');
    expect(v.root).toEqual(built.root);
    const hf = path.join(work, 'hf');
    await exportHF({ checkpoint: unified, out: hf });
    const h = await viewOf(hf);
    expect(h.total).toBe(built.total);
    expect(find(h.root, 'vision_model.encoder.layers.{0,1}.attn.qkv.weight').keys).toEqual(['q', 'k', 'v'].map((x) => `vision_tower.encoder.layer.{0,1}.attention.${x}_proj.weight`));
  });

  it('a graph file: parameter names are the checkpoint keys; a bare .onnx file: freeze state unknown', async () => {
    const g = await viewOf('graphs/internvl-tiny.ts');
    expect(g.source.kind).toBe('graph');
    expect(find(g.root, 'mlp1.1.weight').keys).toEqual(['mlp1.1.weight']);
    expect(g.trainable).toBe(8800);
    const onnx = await viewOf(path.join(artifacts.single, 'model.onnx'));
    expect(onnx.trainable).toBeUndefined();
    expect(onnx.total).toBe(manifestOf(artifacts.single).counts.total);
    expect(find(onnx.root, 'mlp1.1.weight').keys).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------

function tiny(o: { layers?: number; intermediate?: number; train?: FreezeRule[] } = {}): Model {
  return internvl({
    name: 'internvl-tiny',
    vision: internViT({ hidden: 32, heads: 4, layers: 2, intermediate: 64, imageSize: 56, patchSize: 14, norm: 'layer_norm', qkvBias: true, qkNorm: false, eps: 1e-6 }),
    llm: qwen2({ hidden: 48, heads: 4, kvHeads: 2, layers: o.layers ?? 3, intermediate: o.intermediate ?? 96, vocab: 160, rmsNormEps: 1e-6, ropeTheta: 1e6, maxPositions: 32768, tieEmbeddings: true }),
    downsampleRatio: 0.5,
    psVersion: 'v2',
    selectLayer: -1,
    imgContextTokenId: 153,
    train: o.train ?? preset('stage1'),
  });
}

const operand = (label: string, model: Model): ResolvedOperand => ({ label, kind: 'graph', summary: summaryFromGraph(compile(model)) });

describe('repeated layers fold', () => {
  it('identical layers become one node standing for all of them, keys and counts included', () => {
    const v = buildView(operand('three', tiny()));
    const layers = find(v.root, 'language_model.model.layers');
    expect(layers.children!.map((c) => [c.name, c.repeat])).toEqual([['{0..2}', 3]]);
    const up = find(v.root, 'language_model.model.layers.{0..2}.mlp.up_proj.weight');
    expect(up).toMatchObject({ params: 3 * 96 * 48, tensors: 3, repeat: 3, keys: ['language_model.model.layers.{0..2}.mlp.up_proj.weight'] });
    expectSums(v.root);
  });

  it('layers that differ in what the picture shows (here: freeze state) stay apart', () => {
    const v = buildView(operand('mixed', tiny({ train: [...freeze('**'), ...unfreeze('language_model.model.layers.2')] })));
    expect(find(v.root, 'language_model.model.layers').children!.map((c) => [c.name, c.repeat ?? 1, c.trainable])).toEqual([
      ['{0,1}', 2, 0],
      ['2', 1, find(v.root, 'language_model.model.layers.2').params],
    ]);
  });
});

describe('diff marks on both pictures', () => {
  const marked = (root: ViewNode) => descendants(root).filter((n) => n.marks).map((n) => [n.path, n.marks!.map((m) => m.kind).join(',')]);

  it('an added layer, a freeze flip and a widened MLP, each where it happened', () => {
    const a = operand('a', tiny());
    const b = operand('b', tiny({ layers: 4, intermediate: 128, train: preset('full') }));
    const d = diffSummaries(a.summary, b.summary);
    const { a: va, b: vb } = diffView(a, b, d);
    expect(marked(vb.root)).toContainEqual(['language_model.model.layers.3', 'added']);
    expect(find(vb.root, 'language_model.model.layers.{0..2}.mlp.up_proj.weight').marks).toEqual([
      { kind: 'trainable', before: 'frozen', after: 'trainable' },
      { kind: 'reshaped', before: '[96,48]', after: '[128,48]' },
    ]);
    expect(find(va.root, 'language_model.model.layers.{0..2}.mlp.up_proj.weight').marks).toEqual(find(vb.root, 'language_model.model.layers.{0..2}.mlp.up_proj.weight').marks);
    expect(find(va.root, 'language_model').changed).toBeGreaterThan(0);
    expect(descendants(va.root).some((n) => n.marks?.some((m) => m.kind === 'added'))).toBe(false);
  });

  it('a renamed module points at its other name on each side', () => {
    const a = operand('a', tiny());
    const moved = summaryFromGraph(compile(tiny()));
    const rename = (p: string) => p.replace(/^mlp1(?=\.|$)/, 'projector');
    const params = moved.params.map((p) => ({ ...p, name: rename(p.name) })).sort((x, y) => (x.name < y.name ? -1 : 1));
    const ops = Object.fromEntries(Object.entries(moved.ops).map(([m, h]) => [rename(m), h]));
    const b: ResolvedOperand = { label: 'b', kind: 'graph', summary: { ...moved, params, ops } };
    const { a: va, b: vb } = diffView(a, b, diffSummaries(a.summary, b.summary));
    expect(find(va.root, 'mlp1').marks).toEqual([{ kind: 'renamed', other: 'projector' }]);
    expect(find(vb.root, 'projector.1.weight').marks).toEqual([{ kind: 'renamed', other: 'mlp1.1.weight' }]);
  });

  it('quantisation is a storage change of the logical weight, not added scales', async () => {
    const a = await resolveOperand(artifacts.single);
    const b = await resolveOperand(artifacts.int4);
    const { b: vb } = diffView(a, b, diffSummaries(a.summary, b.summary));
    expect(find(vb.root, 'language_model.model.layers.{0,1}.mlp.up_proj.weight').marks).toEqual([{ kind: 'retyped', before: 'float32', after: 'float32 as int4-symmetric, block 32' }]);
    expect(find(vb.root, 'language_model.model.embed_tokens.lm_head').marks).toEqual([{ kind: 'added' }]);
  });
});

describe('pages', () => {
  it('are self-contained and byte-stable, with the data they draw as JSON', async () => {
    const v = await viewOf(artifacts.train);
    const html = viewPage(v);
    expect(viewPage(await viewOf(artifacts.train))).toBe(html);
    expect(html.startsWith('<!DOCTYPE html>\n<!-- vlmc view')).toBe(true);
    expect(html).toContain("Content-Security-Policy\" content=\"default-src 'none'");
    expect(html).not.toMatch(/\b(src|href)=|https?:\/\/|@import|url\(/);
    const json = /<script type="application\/json" id="vlmc-view">(.*?)<\/script>/s.exec(html)![1]!;
    expect(JSON.parse(json)).toEqual(JSON.parse(JSON.stringify(v)));
  });

  it('no name in the data can end the script element', () => {
    const s = summaryFromGraph(compile(tiny()));
    const html = viewPage(buildView({ label: '</script><script>alert(1)</script>', kind: 'graph', summary: { ...s, name: '</script><b>x' } }));
    expect(html.match(/<\/script>/g)).toHaveLength(2);
    const d = diffPage(diffView(operand('a', tiny()), operand('b', tiny()), diffSummaries(s, s)), 'x </pre><b>y\n');
    expect(d).toContain('x &lt;/pre&gt;&lt;b&gt;y');
  });
});

describe('the CLI', () => {
  it('vlmc view writes the page and reports the counts', () => {
    const out = path.join(work, 'view.html');
    const r = vlmc(['view', artifacts.split, '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${out}: 95,024 parameters (95,024 trainable), 64 tensors, 3 panels\n`);
    expect(readFileSync(out, 'utf8')).toContain('id="vlmc-view"');
  });

  it('vlmc view: bad input is exit 2 with one line naming it', () => {
    const empty = path.join(work, 'empty');
    mkdirSync(empty);
    for (const [args, message] of [
      [['view', path.join(work, 'missing'), '--out', path.join(work, 'v.html')], 'no such file or folder'],
      [['view', empty, '--out', path.join(work, 'v.html')], `${empty}: not an artifact folder (no model.onnx), a split artifact (no pipeline.json) or a checkpoint folder (no config.json)`],
    ] as [string[], string][]) {
      const r = vlmc(args);
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(message);
    }
  });

  it('vlmc diff --format html: exit 1 with changes, 0 without (the page says so), --out only for html', () => {
    const out = path.join(work, 'diff.html');
    const changed = vlmc(['diff', artifacts.single, artifacts.int4, '--format', 'html', '--out', out]);
    expect([changed.status, changed.stdout, changed.stderr]).toEqual([1, '', '']);
    const page = readFileSync(out, 'utf8');
    expect(page.startsWith('<!DOCTYPE html>\n<!-- vlmc diff')).toBe(true);
    const data = JSON.parse(/id="vlmc-diff">(.*?)<\/script>/s.exec(page)![1]!);
    expect([data.a.total, data.b.total]).toEqual([manifestOf(artifacts.single).counts.total, manifestOf(artifacts.int4).counts.total]);
    expect(page).toContain('retyped  language_model.model.layers.{0,1}.mlp.up_proj.weight float32 -&gt; uint8 (x2)');
    const same = vlmc(['diff', artifacts.single, unified, '--format', 'html']);
    expect(same.status).toBe(0);
    expect(same.stdout).toContain('No differences.');
    const r = vlmc(['diff', artifacts.single, unified, '--out', out]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--out writes the page of --format html');
  });
});
