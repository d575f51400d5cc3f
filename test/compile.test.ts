/** The compiler core: tracing, shape errors that point at the graph file, passes, determinism. */
import { describe, it, expect } from 'vitest';
import { readFileSync, readdirSync as readdir } from 'node:fs';
import * as path from 'node:path';
import { compile, GraphError, internvl, internViT, qwen2 } from '../src/index.ts';
import { loadGraphFile } from '../src/graph-file.ts';
import { build } from '../src/build.ts';
import { ROOT, tempDir, removeDir, vlmcInProcess } from './helpers.ts';
import tiny from '../graphs/internvl-tiny.ts';

const vision = () => internViT({ hidden: 32, heads: 4, layers: 2, intermediate: 64, imageSize: 56, patchSize: 14, norm: 'layer_norm', qkvBias: true, qkNorm: false, eps: 1e-6 });
const llm = () => qwen2({ hidden: 48, heads: 4, kvHeads: 2, layers: 2, intermediate: 96, vocab: 160, rmsNormEps: 1e-6, ropeTheta: 1e6, maxPositions: 2048, tieEmbeddings: true });

describe('compile', () => {
  it('infers symbolic output shapes', () => {
    const g = compile(tiny);
    expect(g.outputs.map((o) => [o.name, o.dtype, o.shape])).toEqual([
      ['logits', 'float32', ['batch', 'seq', 160]],
      ['vit_embeds', 'float32', ['tiles', 4, 48]],
    ]);
    expect(g.inputs.map((i) => [i.name, i.dtype, i.shape])).toEqual([
      ['pixel_values', 'float32', ['tiles', 3, 56, 56]],
      ['input_ids', 'int64', ['batch', 'seq']],
      ['image_flags', 'int64', ['tiles']],
    ]);
  });

  it('names nodes by module path and op, uniquely', () => {
    const g = compile(tiny);
    const names = g.nodes.map((n) => n.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toContain('/language_model/model/layers/0/self_attn/q_proj/Gemm');
    expect(names).toContain('/vision_model/embeddings/patch_embedding/Conv');
  });

  it('folds shape arithmetic and removes dead nodes', () => {
    const g = compile(tiny);
    // Static Reshape targets are folded to constants; the dynamic ones are the splice's (batch, seq)
    // and those giving a Linear's output back its leading dims (Shape -> Concat with the width).
    const dynamicReshapes = g.nodes.filter((n) => n.op === 'Reshape' && n.inputs[1]!.kind !== 'const');
    for (const r of dynamicReshapes) expect(['Shape', 'Concat']).toContain(r.inputs[1]!.producer!.op);
    // The ViT has one symbolic dim (tiles), so its Linear reshapes fold to constants.
    expect(dynamicReshapes.filter((n) => n.scope.startsWith('vision_model'))).toEqual([]);
    expect(g.nodes.filter((n) => n.op === 'Transpose' && n.inputs[0]!.kind === 'param')).toEqual([]);
    const consumed = new Set(g.nodes.flatMap((n) => n.inputs));
    for (const n of g.nodes) expect(n.outputs.some((o) => consumed.has(o) || g.outputs.includes(o))).toBe(true);
  });

  it('keeps every parameter, used or not, and skips ViT layers after select_layer', () => {
    const m = internvl({ vision: vision(), llm: llm(), selectLayer: -2, imgContextTokenId: 153 });
    const g = compile(m);
    expect(g.params.map((p) => p.name)).toContain('vision_model.encoder.layers.1.attn.qkv.weight');
    expect(g.nodes.some((n) => n.scope.startsWith('vision_model.encoder.layers.1'))).toBe(false);
    expect(g.nodes.some((n) => n.scope.startsWith('vision_model.encoder.layers.0'))).toBe(true);
  });

  it('reports a shape error with the graph file line and module path', async () => {
    const model = await loadGraphFile(path.join(ROOT, 'test/graphs/bad-projector.ts'));
    let error: unknown;
    try {
      compile(model);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(GraphError);
    const msg = (error as Error).message;
    expect(msg).toMatch(/test\/graphs\/bad-projector\.ts:5:\d+: mlp1\.proj: Linear: inner dimensions differ/);
    expect(msg).toContain('inner dimensions differ');
    expect(msg).toContain('[tiles, 4, 128] x weight [48, 64]');
  });

  it('the CLI reports that shape error with exit code 2 and writes nothing', async () => {
    const work = tempDir();
    const r = await vlmcInProcess(['build', 'test/graphs/bad-projector.ts', '--out', path.join(work, 'a')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/bad-projector\.ts:5:\d+: mlp1\.proj: Linear: inner dimensions differ/);
    expect(readdir(work)).toEqual([]);
    removeDir(work);
  });

  it('rejects an opset its ops do not exist at', () => {
    expect(() => compile(tiny, { opset: 16 })).toThrow(/LayerNormalization does not exist at opset 16/);
  });

  it('two builds of the same input are byte-identical', async () => {
    const work = tempDir();
    const files = ['model.onnx', 'model.onnx.data', 'manifest.json'];
    const a = path.join(work, 'a');
    const b = path.join(work, 'b');
    await build({ graph: path.join(ROOT, 'graphs/internvl-tiny.ts'), out: a, seed: 3, init: 'random' });
    await build({ graph: path.join(ROOT, 'graphs/internvl-tiny.ts'), out: b, seed: 3, init: 'random' });
    for (const f of files) expect(readFileSync(path.join(a, f)).equals(readFileSync(path.join(b, f))), f).toBe(true);
    removeDir(work);
  });
});
