/**
 * Proves the float64 reference (test/reference/internvl-reference.ts) against the shared fixtures,
 * which an independent PyTorch float64 implementation of the official code produced. Only once it
 * matches them is it trusted to judge vlmc on the variants the fixtures do not cover.
 */
import { describe, it, expect } from 'vitest';
import * as path from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../src/checkpoint/safetensors.ts';
import { internvlReference, loadConfig, loadWeights, bicubicResize, erf, pixelShuffle, ropeParams } from './reference/internvl-reference.ts';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../shared/fixtures');
const CASES = ['qwen2-tiny', 'internlm2-tiny'];

async function readAll(file: string): Promise<Map<string, { shape: number[]; data: Float64Array }>> {
  const st = await SafetensorsFile.open(file);
  try {
    const out = new Map<string, { shape: number[]; data: Float64Array }>();
    for (const key of st.keys()) {
      const e = st.entry(key);
      let data: Float64Array;
      if (e.dtype === 'I64') {
        const bytes = await st.readAll(e);
        data = Float64Array.from(new BigInt64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8), (v) => Number(v));
      } else {
        data = Float64Array.from(await st.readAsFloat32(e));
      }
      out.set(key, { shape: [...e.shape], data });
    }
    return out;
  } finally {
    await st.close();
  }
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('reference kernels', () => {
  it('erf matches known values', () => {
    expect(erf(0)).toBe(0);
    expect(Math.abs(erf(0.5) - 0.5204998778130465)).toBeLessThan(1e-15);
    expect(Math.abs(erf(1) - 0.8427007929497149)).toBeLessThan(1e-15);
    expect(Math.abs(erf(-2) + 0.9953222650189527)).toBeLessThan(1e-15);
    expect(Math.abs(erf(3.5) - 0.9999992569016276)).toBeLessThan(1e-15);
  });

  it('bicubic resize: identity at equal size, torch values on a 2x2 -> 4x4 upsample', () => {
    const src = Float64Array.from([1, 2, 3, 4]);
    expect([...bicubicResize(src, 2, 2, 1, 2, 2)]).toEqual([1, 2, 3, 4]);
    // torch.nn.functional.interpolate(torch.tensor([[[[1.,2],[3,4]]]]), size=(4,4), mode='bicubic', align_corners=False)
    const expected = [
      0.68359375, 1.015625, 1.5625, 1.89453125,
      1.34765625, 1.6796875, 2.2265625, 2.55859375,
      2.44140625, 2.7734375, 3.3203125, 3.65234375,
      3.10546875, 3.4375, 3.984375, 4.31640625,
    ];
    const got = bicubicResize(src, 2, 2, 1, 4, 4);
    expect(maxAbs(got, expected)).toBeLessThan(1e-12);
  });

  it('pixel shuffle v1/v2 index maps follow the official view/permute sequence', () => {
    // A 2x2 grid of width 1 becomes one token of width 4 either way.
    const x = Float64Array.from([0, 1, 2, 3]);
    expect([...pixelShuffle(x, 2, 2, 1, 0.5, 'v1').y]).toEqual([0, 1, 2, 3]);
    expect([...pixelShuffle(x, 2, 2, 1, 0.5, 'v2').y]).toEqual([0, 1, 2, 3]);
    // A 4x4 grid distinguishes the versions.
    const g = Float64Array.from({ length: 16 }, (_, i) => i);
    const a = pixelShuffle(g, 4, 4, 1, 0.5, 'v1').y;
    const b = pixelShuffle(g, 4, 4, 1, 0.5, 'v2').y;
    // v1 token (r, c) = v2 token (c, r): the transposed image.
    for (let r = 0; r < 2; r++) for (let c = 0; c < 2; c++) for (let e = 0; e < 4; e++) expect(a[(r * 2 + c) * 4 + e]).toBe(b[(c * 2 + r) * 4 + e]);
    expect([...b.subarray(0, 4)]).toEqual([0, 1, 4, 5]);
  });

  it('llama3 rope scaling leaves high frequencies, divides low ones by factor and smooths between', () => {
    const lc = { architectures: ['LlamaForCausalLM'], rope_theta: 10000, max_position_embeddings: 64, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 32 } };
    const { invFreq } = ropeParams(lc, 16, 10);
    const plain = ropeParams({ ...lc, rope_scaling: null }, 16, 10).invFreq;
    let kept = 0;
    let divided = 0;
    let smoothed = 0;
    for (let i = 0; i < 8; i++) {
      const wl = (2 * Math.PI) / plain[i]!;
      if (wl < 8) {
        expect(invFreq[i]).toBe(plain[i]);
        kept++;
      } else if (wl > 32) {
        expect(invFreq[i]).toBeCloseTo(plain[i]! / 8, 15);
        divided++;
      } else {
        expect(invFreq[i]).toBeLessThan(plain[i]!);
        expect(invFreq[i]).toBeGreaterThan(plain[i]! / 8);
        smoothed++;
      }
    }
    expect(kept).toBeGreaterThan(0);
    expect(divided).toBeGreaterThan(0);
    expect(smoothed).toBeGreaterThan(0);
  });
});

describe.skipIf(!existsSync(FIXTURES))('reference vs shared fixtures (official PyTorch float64)', () => {
  for (const name of CASES) {
    it(name, async () => {
      const dir = path.join(FIXTURES, name);
      const caseJson = JSON.parse(readFileSync(path.join(dir, 'case.json'), 'utf8')) as { img_context_token_id: number; expected: { loss: number } };
      const cfg = loadConfig(path.join(dir, 'unified'));
      const weights = await loadWeights(path.join(dir, 'unified'));
      const inputs = await readAll(path.join(dir, 'inputs.safetensors'));
      const expected = await readAll(path.join(dir, 'expected.safetensors'));
      const px = inputs.get('pixel_values')!;
      const ids = inputs.get('input_ids')!;
      const out = internvlReference(
        cfg,
        weights,
        {
          pixelValues: px.data,
          pixelShape: px.shape as [number, number, number, number],
          inputIds: ids.data,
          inputShape: ids.shape as [number, number],
          imageFlags: inputs.get('image_flags')!.data,
          labels: inputs.get('labels')!.data,
        },
        caseJson.img_context_token_id,
      );
      expect(out.logitsShape).toEqual(expected.get('logits')!.shape);
      expect(out.vitEmbedsShape).toEqual(expected.get('vit_embeds')!.shape);
      const eLogits = maxAbs(out.logits, expected.get('logits')!.data);
      const eVit = maxAbs(out.vitEmbeds, expected.get('vit_embeds')!.data);
      const eLoss = Math.abs(out.loss! - caseJson.expected.loss);
      console.log(`[reference] ${name}: logits ${eLogits.toExponential(2)}, vit_embeds ${eVit.toExponential(2)}, loss ${eLoss.toExponential(2)}`);
      expect(eLogits).toBeLessThanOrEqual(1e-5);
      expect(eVit).toBeLessThanOrEqual(1e-5);
      expect(eLoss).toBeLessThanOrEqual(1e-6);
      // And the float32 copy of the loss in expected.safetensors.
      expect(Math.abs(out.loss! - expected.get('loss')!.data[0]!)).toBeLessThanOrEqual(1e-6);
    });
  }
});
