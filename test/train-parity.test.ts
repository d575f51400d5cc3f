/**
 * Training parity with the reference fixtures: for every case and preset, train.onnx's loss is
 * within 1e-5 and every trainable parameter's gradient within relative L2 error 1e-4 of
 * grads-<preset>.safetensors (checkpoint keys, mapped through the manifest); frozen parameters get
 * no gradient output; zero_grad_params get exactly zero.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { FIXTURES, fixtureCases, relativeL2, tempDir, removeDir, vlmcInProcess, NO_TOKENIZER, expectOnlyWarnings } from './helpers.ts';
import { SafetensorsFile } from '../src/checkpoint/safetensors.ts';
import type { Manifest } from '../src/artifact/format.ts';

const PRESETS = ['stage1', 'stage2', 'full'] as const;

describe.each(fixtureCases())('training parity %s', (name) => {
  const fx = path.join(FIXTURES, name);
  const spec = JSON.parse(readFileSync(path.join(fx, 'case.json'), 'utf8'));
  let work: string;
  beforeAll(() => {
    work = tempDir();
  });
  afterAll(() => removeDir(work));

  it.each(PRESETS.filter((p) => spec.presets_written.includes(p)))('%s: loss and every gradient match the reference', async (preset) => {
    const artifact = path.join(work, preset);
    const b = await vlmcInProcess(['build', '--weights', path.join(fx, 'unified'), '--out', artifact, '--train', '--preset', preset, '--quiet']);
    expectOnlyWarnings(b.stderr, NO_TOKENIZER);
    expect(b.status).toBe(0);
    const out = path.join(work, `${preset}.safetensors`);
    const r = await vlmcInProcess(['run', artifact, '--graph', 'train', '--inputs', path.join(fx, 'inputs.safetensors'), '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);

    const manifest = JSON.parse(readFileSync(path.join(artifact, 'manifest.json'), 'utf8')) as Manifest;
    const got = await SafetensorsFile.open(out);
    const want = await SafetensorsFile.open(path.join(fx, `grads-${preset}.safetensors`));
    const expected = await SafetensorsFile.open(path.join(fx, 'expected.safetensors'));
    try {
      const loss = (await got.readAsFloat32(got.entry('loss')))[0]!;
      const wantLoss = (await expected.readAsFloat32(expected.entry('loss')))[0]!;
      expect(Math.abs(loss - wantLoss)).toBeLessThanOrEqual(1e-5);

      const prefixes: string[] = spec.presets[preset];
      const trainableKeys = manifest.parameters.filter((p) => prefixes.some((q) => p.name.startsWith(q))).map((p) => p.name).sort();
      expect(manifest.train!.trainable.map((t) => t.key).sort()).toEqual(trainableKeys);
      expect(manifest.parameters.filter((p) => p.trainable).map((p) => p.name).sort()).toEqual(trainableKeys);
      expect(trainableKeys.length).toBe(spec.num_params[preset]);
      // Exactly loss and one gradient per trainable parameter: nothing for frozen ones.
      const gradNames = manifest.train!.trainable.map((t) => t.grad).sort();
      expect(got.keys().filter((k) => k !== 'loss').sort()).toEqual(gradNames);
      expect(want.keys().sort()).toEqual(trainableKeys);

      const zero = new Set<string>(spec.zero_grad_params[preset] ?? []);
      for (const t of manifest.train!.trainable) {
        const g = await got.readAsFloat32(got.entry(t.grad));
        expect(got.entry(t.grad).shape).toEqual(want.entry(t.key).shape);
        if (zero.has(t.key)) {
          expect(g.every((v) => v === 0), `${t.key} is exactly zero`).toBe(true);
          continue;
        }
        const err = relativeL2(g, await want.readAsFloat32(want.entry(t.key)));
        expect(err, `${t.key} relative L2 error`).toBeLessThanOrEqual(1e-4);
      }
    } finally {
      await got.close();
      await want.close();
      await expected.close();
    }
  });
});

describe.each(fixtureCases().slice(0, 1))('training graph of a bf16 artifact (%s)', (name) => {
  it('frozen weights stay bf16 initializers, trainable ones are float32 inputs; loss and gradients near the fp32 reference', async () => {
    const fx = path.join(FIXTURES, name);
    const work = tempDir();
    try {
      const artifact = path.join(work, 'bf16');
      expect((await vlmcInProcess(['build', '--weights', path.join(fx, 'unified'), '--out', artifact, '--dtype', 'bf16', '--train', '--preset', 'stage2', '--quiet'])).status).toBe(0);
      const out = path.join(work, 'out.safetensors');
      const r = await vlmcInProcess(['run', artifact, '--graph', 'train', '--inputs', path.join(fx, 'inputs.safetensors'), '--out', out]);
      expect(r.stderr).toBe('');
      const got = await SafetensorsFile.open(out);
      const want = await SafetensorsFile.open(path.join(fx, 'grads-stage2.safetensors'));
      const expected = await SafetensorsFile.open(path.join(fx, 'expected.safetensors'));
      const loss = (await got.readAsFloat32(got.entry('loss')))[0]!;
      expect(Math.abs(loss - (await expected.readAsFloat32(expected.entry('loss')))[0]!)).toBeLessThan(0.05);
      for (const key of want.keys()) {
        const err = relativeL2(await got.readAsFloat32(got.entry(`grad.${key}`)), await want.readAsFloat32(want.entry(key)));
        expect(err, key).toBeLessThan(0.1);
      }
      await Promise.all([got.close(), want.close(), expected.close()]);
    } finally {
      removeDir(work);
    }
  });
});
