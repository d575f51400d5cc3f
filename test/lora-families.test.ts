/**
 * LoRA on the families and parts the shared LoRA fixture does not cover (InternLM2's packed wqkv,
 * Phi-3's packed qkv_proj / gate_up_proj, the vision backbone, both towers at once), checked for
 * consistency: a LoRA checkpoint written here in InternVL's unmerged layout, with PEFT adapters
 * holding the same LoRA at another alpha, and the merged checkpoint computed here in float64 by a
 * plain triple loop, give the same logits in every form (merged at bind, kept separate, adapters),
 * and `vlmc export --merge-lora` reproduces the float64 merge.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { FIXTURES, tempDir, removeDir } from './helpers.ts';
import { build, type BuildOptions } from '../src/build.ts';
import { openSession, run } from '../src/runtime/session.ts';
import { readInputs } from '../src/runtime/tensor-files.ts';
import { exportMergedLora } from '../src/export/merge-lora.ts';
import { SafetensorsFile } from '../src/checkpoint/safetensors.ts';
import { writeSafetensors, type TensorToWrite } from '../src/checkpoint/safetensors-write.ts';
import { internvlFromConfig } from '../src/models/from-config.ts';
import { isTargeted } from '../src/dsl/lora.ts';

interface Case {
  name: string;
  unified: string;
  inputs: string;
  /** Config changes that let this branch build the base (the window is not what is checked here). */
  config?: (c: Record<string, any>) => void;
  ranks: { vision_model?: number; language_model?: number };
}

const CASES: Case[] = [
  { name: 'InternLM2 (packed wqkv) and the vision backbone at once', unified: path.join(FIXTURES, 'internlm2-tiny/unified'), inputs: path.join(FIXTURES, 'internlm2-tiny/inputs.safetensors'), ranks: { vision_model: 2, language_model: 3 } },
  {
    name: 'Phi-3 (packed qkv_proj and gate_up_proj)',
    unified: path.join(FIXTURES, 'families/phi3-sliding/original'),
    inputs: path.join(FIXTURES, 'families/phi3-sliding/inputs.safetensors'),
    config: (c) => void (c.llm_config.sliding_window = null),
    ranks: { language_model: 4 },
  },
];

/** A small deterministic generator (the values only need to be fixed and non-zero). */
function values(n: number, seed: number, scale: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s / 2 ** 32) * 2 - 1) * scale;
  });
}

const bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * The base copied into `work`, and from it: `lora-unified` (InternVL's save: wrapped keys,
 * use_*_lora = r, alpha 2r), `adapter-<part>` (PEFT adapters: lora_alpha r, so lora_B is doubled
 * to give the same update) and `merged-unified` (W + 2 B A in float64, rounded once).
 */
async function makeLoraCase(c: Case, work: string): Promise<{ wrapped: number }> {
  const base = path.join(work, 'base-unified');
  cpSync(c.unified, base, { recursive: true });
  const config = JSON.parse(readFileSync(path.join(base, 'config.json'), 'utf8'));
  c.config?.(config);
  writeFileSync(path.join(base, 'config.json'), JSON.stringify(config));
  const model = internvlFromConfig(config, 'test');
  const parts = Object.values(model.loraParts());
  const st = await SafetensorsFile.open(path.join(base, 'model.safetensors'));
  const loraT: TensorToWrite[] = [];
  const mergedT: TensorToWrite[] = [];
  const adapters = new Map<string, TensorToWrite[]>();
  let wrapped = 0;
  try {
    for (const [i, key] of st.keys().entries()) {
      const e = st.entry(key);
      const w = await st.readAsFloat32(e);
      const part = parts.find((p) => key.startsWith(`${p.module}.`) && (c.ranks as Record<string, number>)[p.module]);
      if (!part) {
        loraT.push({ name: key, dtype: 'F32', shape: e.shape, data: bytes(w) });
        mergedT.push({ name: key, dtype: 'F32', shape: e.shape, data: bytes(w) });
        continue;
      }
      const r = (c.ranks as Record<string, number>)[part.module]!;
      const rest = key.slice(part.module.length + 1);
      const wrappedKey = `${part.module}.base_model.model.${rest}`;
      const module = /^(.+)\.(weight|bias)$/.exec(rest);
      const target = module && isTargeted(module[1]!, part.targets);
      if (!target) {
        loraT.push({ name: wrappedKey, dtype: 'F32', shape: e.shape, data: bytes(w) });
        mergedT.push({ name: key, dtype: 'F32', shape: e.shape, data: bytes(w) });
        continue;
      }
      const m = module![1]!;
      loraT.push({ name: `${part.module}.base_model.model.${m}.base_layer.${module![2]}`, dtype: 'F32', shape: e.shape, data: bytes(w) });
      if (module![2] === 'bias') {
        mergedT.push({ name: key, dtype: 'F32', shape: e.shape, data: bytes(w) });
        continue;
      }
      wrapped++;
      const [out, inF] = e.shape as [number, number];
      const a = values(r * inF, 7 * i + 1, 1 / Math.sqrt(inF));
      const b = values(out * r, 7 * i + 2, 0.2);
      loraT.push({ name: `${part.module}.base_model.model.${m}.lora_A.default.weight`, dtype: 'F32', shape: [r, inF], data: bytes(a) });
      loraT.push({ name: `${part.module}.base_model.model.${m}.lora_B.default.weight`, dtype: 'F32', shape: [out, r], data: bytes(b) });
      const list = adapters.get(part.module) ?? [];
      list.push({ name: `base_model.model.${m}.lora_A.weight`, dtype: 'F32', shape: [r, inF], data: bytes(a) });
      list.push({ name: `base_model.model.${m}.lora_B.weight`, dtype: 'F32', shape: [out, r], data: bytes(b.map((v) => v * 2)) });
      adapters.set(part.module, list);
      const merged = new Float32Array(w.length);
      for (let o = 0; o < out; o++) {
        for (let j = 0; j < inF; j++) {
          let d = 0;
          for (let k = 0; k < r; k++) d += b[o * r + k]! * a[k * inF + j]!;
          merged[o * inF + j] = w[o * inF + j]! + 2 * d;
        }
      }
      mergedT.push({ name: key, dtype: 'F32', shape: e.shape, data: bytes(merged) });
    }
  } finally {
    await st.close();
  }
  const write = async (dir: string, file: string, tensors: TensorToWrite[], json: [string, unknown]) => {
    cpSync(base, dir, { recursive: true });
    await writeSafetensors(path.join(dir, file), tensors);
    writeFileSync(path.join(dir, json[0]), JSON.stringify(json[1]));
  };
  const ranks = { use_backbone_lora: c.ranks.vision_model ?? 0, use_llm_lora: c.ranks.language_model ?? 0 };
  await write(path.join(work, 'lora-unified'), 'model.safetensors', loraT, ['config.json', { ...config, ...ranks }]);
  await write(path.join(work, 'merged-unified'), 'model.safetensors', mergedT, ['config.json', config]);
  for (const [module, tensors] of adapters) {
    const dir = path.join(work, `adapter-${module}`);
    mkdirSync(dir);
    await writeSafetensors(path.join(dir, 'adapter_model.safetensors'), tensors);
    const r = (c.ranks as Record<string, number>)[module]!;
    writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r, lora_alpha: r, lora_dropout: 0.05, bias: 'none', use_rslora: false, target_modules: [...new Set(tensors.map((t) => t.name.replace(/^.*layers\.\d+\./, '').replace(/\.lora_[AB]\.weight$/, '')))].sort() }));
  }
  return { wrapped };
}

async function logits(options: BuildOptions, inputsFile: string): Promise<Float32Array> {
  await build(options);
  const session = await openSession(options.out);
  try {
    return (await run(session, await readInputs(inputsFile, session.inputNames))).logits!.data as Float32Array;
  } finally {
    await session.release();
  }
}

describe.each(CASES)('LoRA on $name', (c) => {
  let work: string;
  let wrapped: number;
  let want: Float32Array;
  beforeAll(async () => {
    work = tempDir('vlmc-lora-families-');
    ({ wrapped } = await makeLoraCase(c, work));
    want = await logits({ weights: path.join(work, 'merged-unified'), out: path.join(work, 'a-merged') }, c.inputs);
  });
  afterAll(() => removeDir(work));

  it('the LoRA changes the logits (so the checks below can tell)', async () => {
    const base = await logits({ weights: path.join(work, 'base-unified'), out: path.join(work, 'base') }, c.inputs);
    expect(base.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i]!)), 0)).toBeGreaterThan(1e-2);
  });

  const adapterDirs = () => Object.keys(c.ranks).map((m) => path.join(work, `adapter-${m}`));
  it.each([
    ['the unmerged checkpoint, merged at bind', () => ({ weights: path.join(work, 'lora-unified') })],
    ['the unmerged checkpoint, kept separate', () => ({ weights: path.join(work, 'lora-unified'), keepLora: true })],
    ['the base + adapters (alpha r), kept separate', () => ({ weights: path.join(work, 'base-unified'), adapters: adapterDirs(), keepLora: true })],
  ])('%s gives the merged checkpoint\'s logits', async (label, options) => {
    const got = await logits({ ...options(), out: path.join(work, label.replace(/\W+/g, '-')) }, c.inputs);
    let err = 0;
    for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i]! - want[i]!));
    expect(err).toBeLessThanOrEqual(1e-4);
  });

  it('vlmc export --merge-lora reproduces the float64 merge, every element', async () => {
    const out = path.join(work, 'exported');
    expect((await exportMergedLora({ checkpoint: path.join(work, 'lora-unified'), out })).merged).toBe(wrapped);
    const got = await SafetensorsFile.open(path.join(out, 'model.safetensors'));
    const ref = await SafetensorsFile.open(path.join(work, 'merged-unified/model.safetensors'));
    try {
      expect(got.keys()).toEqual(ref.keys());
      let differing = 0;
      for (const k of ref.keys()) {
        const [a, b] = [await got.readAsFloat32(got.entry(k)), await ref.readAsFloat32(ref.entry(k))];
        for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) differing++;
      }
      expect(differing).toBe(0);
    } finally {
      await got.close();
      await ref.close();
    }
  });
});
