/**
 * The webgpu capability profile (src/passes/webgpu-profile.ts): the fused target's graphs in fp32, fp16 and
 * int4 are inside it, bf16 is refused naming each op; and the table agrees with onnxruntime-node
 * 1.30 itself: with SwiftShader's adapter, every fused node of the fp32 and int4 graphs is placed on
 * the WebGPU provider (session creation only). fp16 cannot be placed there: SwiftShader has no f16
 * shaders and ONNX Runtime already runs one (a weight Transpose) while it creates the session; its
 * fp16 kernels are the sources' (every WebGPU kernel is registered for float32 and float16).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { compile } from '../src/compile.ts';
import { loadGraphFile } from '../src/graph-file.ts';
import type { Graph } from '../src/ir/graph.ts';
import type { CompileOptions } from '../src/compile.ts';
import { WEBGPU_CONTRIB_OPS, checkWebgpuGraph, webgpuSupports } from '../src/passes/webgpu-profile.ts';
import { ROOT, tempDir, removeDir, vlmc } from './helpers.ts';
import { SWIFTSHADER_ICD, swiftshaderEnv } from './webgpu-env.ts';

const GRAPH = path.join(import.meta.dirname, 'graphs/internvl-gqa-tiny.ts');
const INT4 = { bits: 4, blockSize: 32, symmetric: true } as const;

async function graphs(o: CompileOptions): Promise<Graph[]> {
  const model = await loadGraphFile(GRAPH);
  return ['vision', 'decoder'].map((entry) => compile(model, { target: 'webgpu', ...o, entry }));
}

const contribOps = (gs: Graph[]) => [...new Set(gs.flatMap((g) => g.nodes.filter((n) => n.domain === 'com.microsoft').map((n) => n.op)))].sort();

describe('webgpu profile: webgpuSupports and checkWebgpuGraph', () => {
  it('webgpuSupports: fused ops in fp32 / fp16, standard ops in any WGSL type, nothing in bf16 or fp64', () => {
    expect(webgpuSupports('GroupQueryAttention', 'com.microsoft', 'float32')).toBe(true);
    expect(webgpuSupports('MatMulNBits', 'com.microsoft', 'float16')).toBe(true);
    expect(webgpuSupports('GroupQueryAttention', 'com.microsoft', 'bfloat16')).toBe(false);
    expect(webgpuSupports('SparseAttention', 'com.microsoft', 'float16')).toBe(false);
    expect(webgpuSupports('MatMul', '', 'float16')).toBe(true);
    expect(webgpuSupports('Shape', 'ai.onnx', 'int64')).toBe(true);
    expect(webgpuSupports('Expand', '', 'bfloat16')).toBe(false);
    expect(webgpuSupports('Add', '', 'float64')).toBe(false);
    expect(webgpuSupports('Anything', 'ai.onnx.ml', 'float32')).toBe(false);
  });

  it('fused fp32, fp16 and fp16 + int4 graphs (vision and KV-cache decoder) are inside the profile', async () => {
    const all: Graph[] = [];
    for (const o of [{}, { paramDtype: 'float16' }, { paramDtype: 'float16', quant: INT4 }] as CompileOptions[]) {
      const gs = await graphs(o);
      for (const g of gs) expect(() => checkWebgpuGraph(g)).not.toThrow();
      all.push(...gs);
    }
    expect(contribOps(all)).toEqual(['Gelu', 'GroupQueryAttention', 'MatMulNBits', 'MultiHeadAttention', 'SkipLayerNormalization', 'SkipSimplifiedLayerNormalization']);
  });

  it('bf16 is refused with one message naming each op and type, where it first occurs, and what builds instead', async () => {
    const [, decoder] = await graphs({ paramDtype: 'bfloat16', target: 'gpu' });
    expect(() => checkWebgpuGraph(decoder!)).toThrow(/^internvl-gqa-tiny: the webgpu profile: ONNX Runtime's WebGPU provider has no kernel for .*com\.microsoft GroupQueryAttention in bfloat16 \(2 nodes, first in language_model\.model\.layers\.0\.self_attn\).*; WebGPU computes in fp32 or fp16 \(--dtype fp32 or fp16\)$/);
  });
});

describe.skipIf(!SWIFTSHADER_ICD)('webgpu profile against onnxruntime-node 1.30 (SwiftShader adapter): every fused node is placed on the WebGPU provider', () => {
  let work: string;
  beforeAll(() => {
    work = tempDir();
  });
  afterAll(() => removeDir(work));

  /** The provider ORT places each com.microsoft node on, from its verbose session log. */
  function placements(model: string): Map<string, string> {
    const script = path.join(work, 'place.cjs');
    writeFileSync(script, `const ort = require(${JSON.stringify(path.join(ROOT, 'node_modules/onnxruntime-node'))});
ort.InferenceSession.create(process.argv[2], { executionProviders: ['webgpu'], logSeverityLevel: 0, logVerbosityLevel: 0 }).then((s) => s.release());`);
    const r = spawnSync(process.execPath, [script, model], { encoding: 'utf8', env: { ...process.env, ...swiftshaderEnv() } });
    expect(r.status, r.stderr).toBe(0);
    const placed = new Map<string, string>();
    let provider = '';
    for (const line of `${r.stdout}\n${r.stderr}`.split('\n')) {
      const header = /Node\(s\) placed on \[(\w+)\]/.exec(line);
      if (header) provider = header[1]!;
      const node = /VerifyEachNodeIsAssignedToAnEp\]\s{3}(\w+) \((.*)\)/.exec(line);
      if (node && Object.hasOwn(WEBGPU_CONTRIB_OPS, node[1]!)) placed.set(`${node[1]} ${node[2]}`, provider);
    }
    return placed;
  }

  it.each([
    ['fp32', []],
    ['fp32 + int4', ['--quant', 'int4']],
  ])('%s', (label, flags) => {
    const out = path.join(work, label.replace(/\W+/g, '-'));
    const b = vlmc(['build', GRAPH, '--init', 'random', '--out', out, '--split', '--target', 'gpu', '--quiet', ...flags]);
    expect(b.status, b.stderr).toBe(0);
    const placed = new Map([...placements(path.join(out, 'vision.onnx')), ...placements(path.join(out, 'decoder.onnx'))]);
    const ops = new Set([...placed.keys()].map((k) => k.split(' ')[0]));
    expect([...ops].sort()).toEqual(['Gelu', 'GroupQueryAttention', 'MultiHeadAttention', 'QuickGelu', 'SkipLayerNormalization', 'SkipSimplifiedLayerNormalization', ...(flags.length ? ['MatMulNBits'] : [])].sort());
    for (const [node, provider] of placed) expect(provider, node).toBe('WebGpuExecutionProvider');
  });
});
