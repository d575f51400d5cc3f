/**
 * The --target gpu rewrites for the decode path change no value: pack-projections (q/k/v and
 * gate/up as one Gemm over weights concatenated at bind time, then a Split) and nd-linears
 * (Linears read N-D activations directly: FusedMatMul / MatMulNBits without the flattening
 * Reshapes). Each is compared bit for bit with the graph without it, on every fixture case's split
 * artifact through `vlmc generate` (in-process), and the packed parameters are bound from the parts' keys.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as path from 'node:path';
import { readFileSync } from 'node:fs';
import { FIXTURES, fixtureCases, tempDir, removeDir, vlmcInProcess } from './helpers.ts';
import { onnx } from '../src/onnx/proto.ts';

const WITHOUT_PACKING = 'gqa,vit-attention,gelu,skip-layernorm,rmsnorm';

function opCounts(file: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const n of onnx.ModelProto.decode(readFileSync(file)).graph?.node ?? []) counts[n.opType!] = (counts[n.opType!] ?? 0) + 1;
  return counts;
}

describe.each(fixtureCases())('fixture %s: decode-path rewrites', (name) => {
  const fx = path.join(FIXTURES, name);
  let work: string;
  const build = async (label: string, extra: string[]) => {
    const out = path.join(work, label);
    const r = await vlmcInProcess(['build', '--weights', path.join(fx, 'unified'), '--out', out, '--split', '--quiet', ...extra]);
    // The fixtures hold no tokenizer.json: the build warns that generate will print ids.
    expect(r.stderr.replace(/^vlmc: warning: .*\n/gm, '')).toBe('');
    expect(r.status).toBe(0);
    return out;
  };
  /** The generation's bytes (tokens and every step's logits). */
  const generated = async (artifact: string): Promise<Buffer> => {
    const out = `${artifact}.gen.safetensors`;
    const r = await vlmcInProcess(['generate', artifact, '--inputs', path.join(fx, 'gen_inputs.safetensors'), '--max-new-tokens', '4', '--ignore-eos', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    return readFileSync(out);
  };

  beforeAll(() => {
    work = tempDir('vlmc-decode-kernels-');
  });
  afterAll(() => removeDir(work));

  it('nd-linears: --target gpu --fuse none generates exactly what the portable graph does, without the flattening Reshapes', async () => {
    const portable = await build('portable', []);
    const gpu = await build('gpu-none', ['--target', 'gpu', '--fuse', 'none']);
    expect((await generated(gpu)).equals(await generated(portable))).toBe(true);
    const [before, after] = [opCounts(path.join(portable, 'decoder.onnx')), opCounts(path.join(gpu, 'decoder.onnx'))];
    expect(after.FusedMatMul).toBeGreaterThan(0);
    expect(after.Reshape!).toBeLessThan(before.Reshape!);
  });

  it.each([[[] as string[]], [['--quant', 'int4']]])('pack-projections %j: bit-identical generation; packed weights bound from the parts, concatenated', async (extra) => {
    const packed = await build(`packed${extra.join('')}`, ['--target', 'gpu', ...extra]);
    const plain = await build(`plain${extra.join('')}`, ['--target', 'gpu', '--fuse', WITHOUT_PACKING, ...extra]);
    expect((await generated(packed)).equals(await generated(plain))).toBe(true);
    const manifest = JSON.parse(readFileSync(path.join(packed, 'manifest.json'), 'utf8')) as { parameters: { name: string; key: string | string[]; source: { key: string | string[]; transform?: string } }[] };
    const first = manifest.parameters.filter((p) => p.name.includes('layers.0.') && p.name.includes('+'));
    expect(first.length).toBeGreaterThan(0);
    for (const p of first) {
      expect(p.source.transform).toBe('concat(axis=0)');
      expect(p.key).toEqual(p.source.key);
      // The name lists its parts; the keys are theirs, in order.
      const parts = p.name.replace(/^.*\.([^.]+)\.(weight|bias)$/, '$1').split('+');
      expect((p.key as string[]).map((k) => k.split('.').at(-2))).toEqual(parts);
    }
  });
});
