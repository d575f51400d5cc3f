/**
 * The --target gpu fusion passes (src/passes/fusion): each is run alone on two tiny InternVLs
 * (InternViT-300M style + Qwen2; InternViT-6B style + InternLM2) and must find its pattern, replace
 * it (the decomposed ops gone, the fused op there) and leave the outputs unchanged on ONNX
 * Runtime's CPU EP (1e-4 against the portable graph with the same seeded weights).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { build } from '../src/build.ts';
import { compile } from '../src/compile.ts';
import { loadGraphFile } from '../src/graph-file.ts';
import { UserError } from '../src/errors.ts';
import type { Graph } from '../src/ir/graph.ts';
import { FUSION_NAMES, parseFuse } from '../src/passes/fusion/index.ts';
import { openSession, run, type HostTensor } from '../src/runtime/session.ts';
import { FIXTURES, ROOT, tempDir, removeDir, maxAbsError, vlmcInProcess, hasOnnxChecker, onnxCheck } from './helpers.ts';

const TOL = 1e-4;
const GRAPHS = {
  'vit300m-qwen2': path.join(ROOT, 'graphs/internvl-tiny.ts'),
  'vit6b-internlm2': path.join(ROOT, 'test/graphs/internvl-6b-style-tiny.ts'),
};

/** 2 tiles of 56x56 (4 image tokens each) in an 18-token prompt; deterministic values. */
function inputs(): Record<string, HostTensor> {
  const pixels = Float32Array.from({ length: 2 * 3 * 56 * 56 }, (_, i) => Math.sin(i * 0.37) * 1.5);
  const ids = [1, 2, 3, ...Array(8).fill(153), 4, 5, 6, 7, 8, 9, 10];
  return {
    pixel_values: { dtype: 'float32', shape: [2, 3, 56, 56], data: pixels },
    input_ids: { dtype: 'int64', shape: [1, ids.length], data: BigInt64Array.from(ids, BigInt) },
    image_flags: { dtype: 'int64', shape: [2], data: BigInt64Array.of(1n, 1n) },
  };
}

async function forward(artifact: string): Promise<Record<string, HostTensor>> {
  const session = await openSession(artifact);
  try {
    return await run(session, inputs());
  } finally {
    await session.release();
  }
}

const ops = (g: Graph, op: string): number => g.nodes.filter((n) => n.op === op).length;

/** What each fusion must leave behind: the fused op present, the decomposed pattern's marker op gone. */
const EXPECT: Record<string, (g: Graph, portable: Graph, name: string) => void> = {
  // The single graph has no KV cache: GQA fuses only the split decoder (test/split-gpu.test.ts).
  gqa: (g) => expect(ops(g, 'GroupQueryAttention')).toBe(0),
  'vit-attention': (g, p) => {
    expect(ops(g, 'MultiHeadAttention')).toBe(2); // two ViT layers
    expect(ops(g, 'Softmax')).toBe(ops(p, 'Softmax') - 2); // the LLM's stay
  },
  gelu: (g) => {
    expect(ops(g, 'Gelu')).toBe(3); // two ViT MLPs and the projector
    expect(ops(g, 'Erf')).toBe(0);
  },
  'skip-layernorm': (g, p, name) => {
    // norm2 of each layer and norm1 of layer 1 follow a same-shape residual; layer 0's norm1 reads
    // embeddings + a broadcast position embedding, and the projector's LayerNorm no residual. The
    // 6B-style tower has RMSNorms instead.
    const fused = name === 'vit300m-qwen2' ? 3 : 0;
    expect(ops(g, 'SkipLayerNormalization')).toBe(fused);
    expect(ops(g, 'LayerNormalization')).toBe(ops(p, 'LayerNormalization') - fused);
  },
  // Qwen2: q/k/v and gate/up of 2 layers; InternLM2: w1/w3 of 2 layers (wqkv is packed already).
  'pack-projections': (g, p, name) => {
    const groups = name === 'vit300m-qwen2' ? 4 : 2;
    expect(ops(g, 'Split')).toBe(ops(p, 'Split') + groups);
    expect(g.params.filter((q) => q.packs !== undefined).length).toBe(name === 'vit300m-qwen2' ? 6 : 2); // q/k/v weight + bias
    expect(g.params.some((q) => /\.q_proj\.weight$|\.w1\.weight$/.test(q.name))).toBe(false);
  },
  rmsnorm: (g, p) => {
    const skip = ops(g, 'SkipSimplifiedLayerNormalization');
    expect(skip).toBeGreaterThanOrEqual(4); // 2 LLM layers x 2 norms, minus the first, plus the final norm
    // Only norms without a residual stay decomposed at opset 17.
    expect(ops(g, 'ReduceMean')).toBe(ops(p, 'ReduceMean') - skip);
  },
};

describe.each(Object.entries(GRAPHS))('fusions on %s', (name, graphFile) => {
  let work: string;
  let portable: Graph;
  let reference: Record<string, HostTensor>;

  beforeAll(async () => {
    work = tempDir('vlmc-fusion-');
    portable = (await build({ graph: graphFile, out: path.join(work, 'portable'), seed: 3, init: 'random' })).graph;
    reference = await forward(path.join(work, 'portable'));
  });
  afterAll(() => removeDir(work));

  // moe (ONNX Runtime's MoE for sparse blocks) has nothing to find in these dense models: test/families.test.ts.
  it.each(FUSION_NAMES.filter((f) => f !== 'moe'))('%s: found, replaced, numerics unchanged', async (fusion) => {
    const out = path.join(work, fusion);
    const { graph } = await build({ graph: graphFile, out, seed: 3, init: 'random', target: 'gpu', fuse: fusion });
    EXPECT[fusion]!(graph, portable, name);
    expect(graph.metadata['vlmc.fusions']).toMatch(new RegExp(`^${fusion}:\\d+$`));
    const got = await forward(out);
    for (const key of ['logits', 'vit_embeds']) {
      expect(got[key]!.shape).toEqual(reference[key]!.shape);
      expect(maxAbsError(got[key]!.data as Float32Array, reference[key]!.data as Float32Array), `${name} ${fusion} ${key}`).toBeLessThanOrEqual(TOL);
    }
  });

  it.each([17, 23])('all fusions at opset %i: numerics unchanged, checker passes', async (opset) => {
    const out = path.join(work, `all-${opset}`);
    const { graph } = await build({ graph: graphFile, out, seed: 3, init: 'random', target: 'gpu', opset });
    // From opset 23 the norms without a residual become RMSNormalization.
    if (opset >= 23) expect(ops(graph, 'ReduceMean')).toBe(0);
    const got = await forward(out);
    for (const key of ['logits', 'vit_embeds']) {
      expect(maxAbsError(got[key]!.data as Float32Array, reference[key]!.data as Float32Array), `${name} all ${key}`).toBeLessThanOrEqual(TOL);
    }
    // Debian's onnx 1.12 knows opsets up to 17; com.microsoft nodes are outside its registry and pass.
    if (opset === 17 && hasOnnxChecker()) expect(onnxCheck(path.join(out, 'model.onnx'))).toEqual({ ok: true, message: '' });
  });
});

describe('--fuse and --target', () => {
  it('default to every fusion for gpu and none for portable', () => {
    expect(parseFuse(undefined, 'gpu')).toEqual(FUSION_NAMES);
    expect(parseFuse(undefined, 'portable')).toEqual([]);
    expect(parseFuse('none', 'gpu')).toEqual([]);
    expect(parseFuse('rmsnorm, gelu', 'gpu')).toEqual(['gelu', 'rmsnorm']);
    expect(FUSION_NAMES).toEqual(['gqa', 'vit-attention', 'gelu', 'moe', 'skip-layernorm', 'rmsnorm', 'pack-projections']);
  });

  it('reject unknown fusions and fusions without --target gpu', () => {
    expect(() => parseFuse('gelu,flash', 'gpu')).toThrow(UserError);
    expect(() => parseFuse('gelu,flash', 'gpu')).toThrow(/unknown fusion flash/);
    expect(() => parseFuse('gelu', 'portable')).toThrow(/--fuse needs --target gpu/);
  });

  it('leave the portable graph as it was (no contrib op, no target metadata)', async () => {
    const g = compile(await loadGraphFile(GRAPHS['vit300m-qwen2']));
    expect(g.nodes.every((n) => n.domain === '')).toBe(true);
    expect(g.metadata['vlmc.target']).toBeUndefined();
  });

  it('CLI: an unknown fusion exits 2 with one message and writes nothing', async () => {
    const work = tempDir();
    try {
      const out = path.join(work, 'a');
      const r = await vlmcInProcess(['build', GRAPHS['vit300m-qwen2'], '--out', out, '--target', 'gpu', '--fuse', 'flash']);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/--fuse: unknown fusion flash/);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(existsSync(out)).toBe(false);
    } finally {
      removeDir(work);
    }
  });
});

describe('issue 16: the --target gpu build says which fusions applied to which graph, and how often', () => {
  const work = tempDir('vlmc-fusion-summary-');
  afterAll(() => removeDir(work));
  const unified = path.join(FIXTURES, 'qwen2-tiny/unified');

  it('single graph and split artifact: counts per graph as the graphs record them, and why GQA applied 0 times', async () => {
    const single = await vlmcInProcess(['build', '--weights', unified, '--out', path.join(work, 'single'), '--target', 'gpu', '--quiet']);
    expect(single.status).toBe(0);
    expect(single.stdout.split('\n')[1]).toBe("fusions (--target gpu): vit-attention 2, gelu 3, skip-layernorm 3, rmsnorm 4, pack-projections 4; applied 0 times: gqa (it fuses the split decoder's attention with its KV cache: build with --split)");
    const split = await vlmcInProcess(['build', '--weights', unified, '--out', path.join(work, 'split'), '--split', '--target', 'gpu', '--quiet']);
    expect(split.status).toBe(0);
    expect(split.stdout.split('\n')[1]).toBe('fusions (--target gpu): vision.onnx vit-attention 2, gelu 3, skip-layernorm 3; decoder.onnx rmsnorm 3, pack-projections 4; applied 0 times: gqa (GroupQueryAttention needs a head_dim that is a multiple of 8; this model\'s is 12)');
    // The counts are the graphs' own metadata.
    const { fusionCounts } = await import('../src/cli/build-summary.ts');
    expect(Object.fromEntries(fusionCounts(path.join(work, 'split')).map((g) => [g.file, Object.fromEntries(g.counts)]))).toEqual({
      'vision.onnx': { gqa: 0, 'vit-attention': 2, gelu: 3, 'skip-layernorm': 3, rmsnorm: 0, 'pack-projections': 0 },
      'embedding.onnx': { gqa: 0, 'vit-attention': 0, gelu: 0, 'skip-layernorm': 0, rmsnorm: 0, 'pack-projections': 0 },
      'decoder.onnx': { gqa: 0, 'vit-attention': 0, gelu: 0, 'skip-layernorm': 0, rmsnorm: 3, 'pack-projections': 4 },
    });
    // A model whose head_dim is a multiple of 8 gets GroupQueryAttention in its decoder.
    const gqa = await vlmcInProcess(['build', path.join(ROOT, 'test/graphs/internvl-gqa-tiny.ts'), '--init', 'random', '--out', path.join(work, 'gqa'), '--split', '--target', 'gpu', '--quiet']);
    expect(gqa.stdout.split('\n')[1]).toMatch(/decoder\.onnx gqa [1-9]/);
    const portable = await vlmcInProcess(['build', '--weights', unified, '--out', path.join(work, 'portable'), '--quiet']);
    expect(portable.stdout.trim().split('\n')).toHaveLength(1);
  });
});
