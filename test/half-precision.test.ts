/**
 * --target gpu --dtype fp16|bf16 computes in half (src/passes/half-precision.ts): fp32 at the graph's
 * edges, half inside, rotary angles in fp32; passes the ONNX checker; fp16 runs on the CPU EP within
 * a documented tolerance of fp32 (bf16 has no CPU kernels: a clear exit 2).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as path from 'node:path';
import { readFileSync } from 'node:fs';
import { FIXTURES, fixtureCases, hasOnnxChecker, maxAbsError, onnxCheck, readFloats, removeDir, tempDir, vlmcInProcess } from './helpers.ts';
import { compile } from '../src/compile.ts';
import { loadGraphFile } from '../src/graph-file.ts';

/** fp16 on the fixtures (|logits| about 5): measured 0.016 (qwen2-tiny); int4 adds its own error. */
const FP16_LOGIT_TOL = 0.05;

describe('the half-precision pass', () => {
  it.each(['float16', 'bfloat16'] as const)('%s: fp32 edges, half parameters and activations, fp32 rotary angles', async (dtype) => {
    const g = compile(await loadGraphFile(path.join(import.meta.dirname, '../graphs/internvl-tiny.ts')), { target: 'gpu', paramDtype: dtype });
    expect(g.inputs.find((v) => v.name === 'pixel_values')!.dtype).toBe('float32');
    expect(g.outputs.map((v) => v.dtype)).toEqual(['float32', 'float32']);
    expect(g.params.every((p) => p.value.dtype === dtype)).toBe(true);
    const gemms = g.nodes.filter((n) => n.op === 'Gemm');
    expect(gemms.every((n) => n.outputs[0]!.dtype === dtype)).toBe(true);
    for (const n of g.nodes.filter((n) => n.op === 'Cos' || n.op === 'Sin')) expect(n.outputs[0]!.dtype).toBe('float32');
    // Parameters are read in the stored dtype, except by an op that lacks it (bf16 Conv-11: its weight and bias).
    const castParams = g.nodes.filter((n) => n.op === 'Cast' && n.inputs[0]!.kind === 'param').map((n) => n.inputs[0]!.name);
    expect(castParams).toEqual(dtype === 'bfloat16' ? ['vision_model.embeddings.patch_embedding.weight', 'vision_model.embeddings.patch_embedding.bias'] : []);
    const conv = g.nodes.find((n) => n.op === 'Conv')!;
    expect(conv.outputs[0]!.dtype).toBe(dtype === 'bfloat16' ? 'float32' : 'float16'); // Conv-11 has no bfloat16
  });
});

describe.each(fixtureCases())('fixture %s, --target gpu half precision', (name) => {
  const fx = path.join(FIXTURES, name);
  let work: string;
  const build = async (out: string, extra: string[]) => {
    const r = await vlmcInProcess(['build', '--weights', path.join(fx, 'unified'), '--out', out, '--quiet', '--target', 'gpu', ...extra]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  };
  const runIt = async (artifact: string) => await vlmcInProcess(['run', artifact, '--inputs', path.join(fx, 'inputs.safetensors'), '--out', `${artifact}.safetensors`]);

  beforeAll(async () => {
    work = tempDir();
    await build(path.join(work, 'fp32'), []);
    expect((await runIt(path.join(work, 'fp32'))).status).toBe(0);
  });
  afterAll(() => removeDir(work));

  it.each([[['--dtype', 'fp16']], [['--dtype', 'fp16', '--quant', 'int4']]])('%j: checker passes, runs on CPU near fp32', async (extra) => {
    const out = path.join(work, extra.join(''));
    await build(out, extra);
    if (hasOnnxChecker()) expect(onnxCheck(path.join(out, 'model.onnx'))).toEqual({ ok: true, message: '' });
    expect((await runIt(out)).status).toBe(0);
    const tol = extra.includes('int4') ? 4 : FP16_LOGIT_TOL;
    for (const key of ['logits', 'vit_embeds']) {
      expect(maxAbsError(await readFloats(`${out}.safetensors`, key), await readFloats(path.join(work, 'fp32.safetensors'), key)), key).toBeLessThanOrEqual(tol);
    }
  });

  it('bf16: checker passes, parameters stored bf16; the CPU EP says it has no kernel (exit 2)', async () => {
    const out = path.join(work, 'bf16');
    await build(out, ['--dtype', 'bf16']);
    if (hasOnnxChecker()) expect(onnxCheck(path.join(out, 'model.onnx'))).toEqual({ ok: true, message: '' });
    const manifest = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    expect(manifest.metadata['vlmc.compute_dtype']).toBe('bfloat16');
    expect(manifest.inputs.find((i: { name: string }) => i.name === 'pixel_values').dtype).toBe('float32');
    const r = await runIt(out);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/has no kernel for .* computing in bfloat16/);
  });
});
