/**
 * The device kit (bench/device-kit): a --fast kit built here runs its CPU half on the tiny shape
 * through run.sh, the bundled vlmc and the bundled measurement, as it would on a GPU machine. The
 * WebGPU half meets a fake NVIDIA driver tree (run.sh finds its Vulkan library outside the standard
 * paths and writes an ICD file for it), finds no adapter and says so in every WebGPU cell; WebGPU
 * itself is tested on the fixtures in webgpu.test.ts (SwiftShader is too slow for the kit's runs).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as path from 'node:path';
import { mkdirSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { ROOT, tempDir, removeDir } from './helpers.ts';
import { buildKit } from '../bench/device-kit/build.ts';

const STEPS = 2;

interface Cell {
  tokens?: number[];
  kv_cache?: string;
  decode_ms?: number;
  prefill_s?: number;
  sessions_s?: number;
  peak_rss_mib?: number;
  skipped?: string;
}

describe('device kit: run.sh on the tiny shape, CPU half (WebGPU half: no adapter)', () => {
  let work: string;
  let report: { kit: { commit: string }; vulkan: { icd_files: string[]; icd_source: string }; webgpu: { adapter: boolean; reason: string }; variants: Record<string, { cpu: Cell; webgpu: Cell; vs_portable_cpu?: { cpu: { max_abs: number; greedy_tokens_equal: boolean } }; decode_weight_bytes: number }> };
  let stderr: string;

  beforeAll(async () => {
    work = tempDir();
    const kit = path.join(work, 'kit');
    await buildKit({ out: kit, node: process.execPath, fast: true });
    const fakeDriver = path.join(work, 'fake-nvidia', 'lib');
    mkdirSync(fakeDriver, { recursive: true });
    writeFileSync(path.join(fakeDriver, 'libGLX_nvidia.so.0'), '');
    const env: NodeJS.ProcessEnv = { ...process.env, VLMC_KIT_WORK: path.join(work, 'run'), VLMC_KIT_SEARCH: path.join(work, 'fake-nvidia') };
    delete env.VK_ICD_FILENAMES;
    const r = spawnSync(path.join(kit, 'run.sh'), ['--shape', 'tiny', '--steps', String(STEPS), '--prompt-tokens', '8'], { cwd: ROOT, encoding: 'utf8', env });
    stderr = r.stderr;
    expect(r.status, r.stderr).toBe(0);
    report = JSON.parse(r.stdout);
  });
  afterAll(() => removeDir(work));

  it('carries its own Node, the bundled vlmc and onnxruntime-node, and runs from a fresh folder', () => {
    expect(report.kit.commit).toMatch(/^[0-9a-f]{40}$/);
    for (const f of ['bin/node', 'app/vlmc.mjs', 'app/kit.mjs', 'lib/libvulkan.so.1', 'node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1']) expect(existsSync(path.join(work, 'run', f)), f).toBe(true);
    expect(statSync(path.join(work, 'run', 'result.json')).size).toBeGreaterThan(0);
    expect(stderr).toContain('[kit] report:');
  });

  it('finds the NVIDIA Vulkan library outside the standard paths and writes an ICD file for it', () => {
    expect(report.vulkan.icd_files).toEqual([path.join(work, 'run', 'nvidia_icd.json')]);
    expect(report.vulkan.icd_source).toBe(`written by run.sh for ${path.join(work, 'fake-nvidia', 'lib', 'libGLX_nvidia.so.0')}`);
  });

  it('with no adapter, every WebGPU cell says so and the CPU half still runs', () => {
    expect(report.webgpu.adapter).toBe(false);
    expect(report.webgpu.reason).toMatch(/^--ep webgpu: ONNX Runtime found no WebGPU adapter/);
    expect(Object.keys(report.variants)).toEqual(['portable', 'fp32', 'int4', 'fp16']);
    for (const v of Object.values(report.variants)) expect(v.webgpu).toEqual({ skipped: report.webgpu.reason });
  });

  it('CPU half: every variant measured (sessions, prefill, decode, greedy tokens, cache on the host, RSS)', () => {
    for (const [name, v] of Object.entries(report.variants)) {
      const c = v.cpu;
      expect(c.tokens, name).toHaveLength(STEPS + 2);
      expect(c.kv_cache, name).toBe('cpu');
      for (const k of ['sessions_s', 'prefill_s', 'decode_ms', 'peak_rss_mib'] as const) expect(c[k], `${name} ${k}`).toBeGreaterThan(0);
      expect(v.decode_weight_bytes, name).toBeGreaterThan(0);
    }
    // int4 reads a quarter of fp32's weight bytes and a bit (scales).
    expect(report.variants.int4!.decode_weight_bytes).toBeLessThan(report.variants.fp32!.decode_weight_bytes / 3);
  });

  it('CPU half parity: fused fp32 gives the portable logits (1e-4) and tokens; fp16 within 0.05 of them', () => {
    expect(report.variants.fp32!.vs_portable_cpu!.cpu.max_abs).toBeLessThanOrEqual(1e-4);
    expect(report.variants.fp32!.vs_portable_cpu!.cpu.greedy_tokens_equal).toBe(true);
    expect(report.variants.fp16!.vs_portable_cpu!.cpu.max_abs).toBeLessThanOrEqual(0.05);
  });
});
