/**
 * `--ep webgpu` (src/runtime/providers.ts): ONNX Runtime's WebGPU provider (Dawn over Vulkan).
 * Without an adapter every command that would use it stops with exit 2 and one message naming it.
 * With SwiftShader's Vulkan driver (Debian's chromium; .ci/run installs it) the provider runs its
 * real WGSL kernels on the CPU, so exactness on WebGPU is checked here on both fixtures' split
 * artifacts: greedy tokens identical to the CPU provider's, next-token logits within
 *   fp32 (portable, fused): 1e-4;
 *   int4: 5% of the largest logit (ONNX Runtime's CPU MatMulNBits quantises activations to int8,
 *         accuracy_level 4; the WebGPU kernel does not here: 2.5-2.8% measured on the fixtures);
 *   fp16: 0.05 (as split-gpu.test.ts holds fp16 to the reference); SwiftShader has no 16-bit float
 *         shaders, so there fp16 must be refused with exit 2 instead.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as path from 'node:path';
import { existsSync } from 'node:fs';
import { FIXTURES, ROOT, fixtureCases, maxAbsError, tempDir, removeDir, vlmcInProcess, readGeneration, type CliResult, NO_TOKENIZER, expectOnlyWarnings } from './helpers.ts';
import { DeviceTensors, cpuOnlyNodes, deviceRunFailure, providerFailure, sessionOptionsFor } from '../src/runtime/providers.ts';
import { NO_ADAPTER_ENV, NO_SWIFTSHADER, SWIFTSHADER_ICD, lastLine, swiftshaderEnv, vlmcWithEnv } from './webgpu-env.ts';

const NEW_TOKENS = '3';
const VARIANTS: Record<string, string[]> = { portable: [], fp32: ['--target', 'gpu'], fp16: ['--target', 'gpu', '--dtype', 'fp16'], int4: ['--target', 'gpu', '--quant', 'int4'] };
const NO_ADAPTER = "vlmc: --ep webgpu: ONNX Runtime found no WebGPU adapter (Dawn needs the Vulkan loader libvulkan.so.1 and a Vulkan driver with a device: install the GPU's Vulkan driver and libvulkan1, or point VK_ICD_FILENAMES at the driver's ICD json); use --ep cpu to run on the CPU";
const NO_F16 = 'vlmc: --ep webgpu: this WebGPU adapter has no 16-bit float shaders (shader-f16), and the artifact computes in float16; run it with --ep cpu, on a GPU whose driver has f16, or build it with --dtype fp32';

async function build(fx: string, out: string, extra: string[]): Promise<string> {
  const r = await vlmcInProcess(['build', '--weights', path.join(fx, 'unified'), '--out', out, '--quiet', ...extra]);
  // The fixtures have no tokenizer.json: split and training builds say what generate / train will lack.
  if (extra.includes('--split') || extra.includes('--train')) expectOnlyWarnings(r.stderr, NO_TOKENIZER);
  else expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return out;
}

describe('--ep webgpu with no adapter (VK_ICD_FILENAMES names no driver): exit 2, one message naming the provider', () => {
  const fx = path.join(FIXTURES, 'qwen2-tiny');
  let work: string;
  beforeAll(async () => {
    work = tempDir();
    await build(fx, path.join(work, 'split'), ['--split']);
    await build(fx, path.join(work, 'single'), []);
  });
  afterAll(() => removeDir(work));

  it.each([
    ['run, split artifact', ['run', 'split', '--inputs', path.join(fx, 'inputs.safetensors'), '--out', 'out.safetensors']],
    ['run, single graph', ['run', 'single', '--inputs', path.join(fx, 'inputs.safetensors'), '--out', 'out.safetensors']],
    ['generate', ['generate', 'split', '--inputs', path.join(fx, 'gen_inputs.safetensors'), '--max-new-tokens', '2', '--out', 'out.safetensors']],
  ])('%s', (_, args) => {
    const r = vlmcWithEnv(NO_ADAPTER_ENV, [...args.map((a) => (a === 'split' || a === 'single' || a === 'out.safetensors' ? path.join(work, a) : a)), '--ep', 'webgpu']);
    expect(r.status).toBe(2);
    // Dawn prints its own Vulkan warnings first; vlmc's message is the last line.
    expect(lastLine(r.stderr)).toBe(NO_ADAPTER);
    expect(r.stdout).toBe('');
    expect(existsSync(path.join(work, 'out.safetensors'))).toBe(false);
  });

  const cudaLibrary = path.join(ROOT, 'node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so');
  it.skipIf(existsSync(cudaLibrary))('--ep cuda without its libraries: exit 2 saying how to install them', async () => {
    const r = await vlmcInProcess(['run', path.join(work, 'split'), '--inputs', path.join(fx, 'inputs.safetensors'), '--out', path.join(work, 'out.safetensors'), '--ep', 'cuda']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^vlmc: --ep cuda: onnxruntime-node could not load its CUDA provider \(.*\); with network access, reinstall onnxruntime-node with its CUDA 12 libraries \(ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node; CUDA 12 and cuDNN 9 must be installed\), or use --ep cpu\n$/);
  });
});

describe('providers.ts: session options and failure messages (no device needed)', () => {
  const fx = path.join(FIXTURES, 'qwen2-tiny');
  let work: string;
  beforeAll(async () => {
    work = tempDir();
    await build(fx, path.join(work, 'split'), ['--split']);
  });
  afterAll(() => removeDir(work));

  it('webgpu: the KV cache outputs stay on the device, the rotary Sin/Cos run on the CPU, ORT logs only fatal errors', () => {
    const decoder = path.join(work, 'split', 'decoder.onnx');
    expect(cpuOnlyNodes(decoder)).toEqual(['/language_model/Cos', '/language_model/Sin']);
    const o = sessionOptionsFor(['webgpu', 'cpu'], { prepackWeights: false, model: decoder, deviceOutputs: ['present.0.key', 'present.0.value'] });
    expect(o.executionProviders).toEqual([{ name: 'webgpu', forceCpuNodeNames: ['/language_model/Cos', '/language_model/Sin'] }, 'cpu']);
    expect(o.preferredOutputLocation).toEqual({ 'present.0.key': 'gpu-buffer', 'present.0.value': 'gpu-buffer' });
    expect(o.logSeverityLevel).toBe(4);
    // The vision graph has no trigonometry: the plain provider name.
    expect(sessionOptionsFor(['webgpu', 'cpu'], { prepackWeights: false, model: path.join(work, 'split', 'vision.onnx') }).executionProviders).toEqual(['webgpu', 'cpu']);
  });

  it('cpu: no device outputs, no forced nodes, prepacking as asked (the options vlmc always used)', () => {
    const o = sessionOptionsFor(['cpu'], { prepackWeights: false, model: path.join(work, 'split', 'decoder.onnx'), deviceOutputs: ['present.0.key'] });
    expect(o).toEqual({ executionProviders: ['cpu'], logSeverityLevel: 3, extra: { session: { disable_prepacking: '1' } } });
    expect(sessionOptionsFor(['cpu'], { prepackWeights: true })).toEqual({ executionProviders: ['cpu'], logSeverityLevel: 3 });
  });

  it('a device tensor is released once a run has consumed it, the rest when the session closes; host tensors are left alone', () => {
    const released: string[] = [];
    const tensor = (name: string, location: string) => ({ location, dispose: () => released.push(name) }) as unknown as import('onnxruntime-node').Tensor;
    const [a, b, host] = [tensor('a', 'gpu-buffer'), tensor('b', 'gpu-buffer'), tensor('host', 'cpu')];
    const held = new DeviceTensors();
    held.keep([a, b, host]);
    held.consumed([a, host]);
    expect(released).toEqual(['a']);
    held.consumed([a]);
    held.releaseAll();
    expect(released).toEqual(['a', 'b']);
  });

  it('failures: no adapter, no shader-f16, missing CUDA libraries become the one message; others pass through', () => {
    const adapter = new Error('webgpu_context.cc:136 ... adapter_result.status == wgpu::RequestAdapterStatus::Success was false. Failed to get a WebGPU adapter: No supported adapters');
    expect(`vlmc: ${providerFailure(['webgpu', 'cpu'], adapter)!.message}`).toBe(NO_ADAPTER);
    expect(providerFailure(['cpu'], adapter)).toBeUndefined();
    expect(providerFailure(['webgpu', 'cpu'], new Error('Load model from x failed: Protobuf parsing failed'))).toBeUndefined();
    expect(providerFailure(['cuda', 'cpu'], new Error('OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library'))!.message).toMatch(/^--ep cuda: .*ONNXRUNTIME_NODE_INSTALL=cuda12/);
    expect(`vlmc: ${deviceRunFailure(new Error("Non-zero status code returned while running Cast node. Name:'/Cast' Status Message: shader_helper.cc:416 GenerateSourceCode Program Cast requires f16 but the device does not support it."))!.message}`).toBe(NO_F16);
    expect(deviceRunFailure(new Error('out of memory'))).toBeUndefined();
    // ORT may run an f16 kernel while it creates the session (weights transposed at load).
    expect(`vlmc: ${providerFailure(['webgpu', 'cpu'], new Error('Exception during initialization: shader_helper.cc:416 GenerateSourceCode Program Transpose requires f16 but the device does not support it.'))!.message}`).toBe(NO_F16);
  });
});

if (!SWIFTSHADER_ICD) console.warn(`webgpu.test.ts: ${NO_SWIFTSHADER}`);

describe.skipIf(!SWIFTSHADER_ICD).each(SWIFTSHADER_ICD ? fixtureCases() : [])('fixture %s: split artifacts on WebGPU (SwiftShader) give the CPU provider\'s tokens and logits', (name) => {
  const fx = path.join(FIXTURES, name);
  let work: string;
  beforeAll(async () => {
    work = tempDir();
    for (const [variant, flags] of Object.entries(VARIANTS)) await build(fx, path.join(work, variant), ['--split', ...flags]);
  });
  afterAll(() => removeDir(work));

  const generate = async (variant: string, ep: 'cpu' | 'webgpu') => {
    const out = path.join(work, `${variant}-${ep}.safetensors`);
    const args = ['generate', path.join(work, variant), '--inputs', path.join(fx, 'gen_inputs.safetensors'), '--max-new-tokens', NEW_TOKENS, '--ignore-eos', '--out', out, '--json', '--ep', ep];
    // WebGPU needs its environment when the process starts (webgpu-env.ts); the CPU runs in-process.
    const r: CliResult = ep === 'webgpu' ? vlmcWithEnv(swiftshaderEnv(), args) : await vlmcInProcess(args);
    expect(r.stderr, `${variant} on ${ep}`).toBe('');
    expect(r.status).toBe(0);
    return readGeneration(out);
  };

  it.each([
    ['portable', 1e-4],
    ['fp32', 1e-4],
  ])('%s: same greedy tokens, logits within %s', async (variant, tolerance) => {
    const [cpu, gpu] = [await generate(variant, 'cpu'), await generate(variant, 'webgpu')];
    expect(gpu.tokens).toEqual(cpu.tokens);
    expect(maxAbsError(gpu.logits, cpu.logits)).toBeLessThanOrEqual(tolerance);
  });

  it('int4 (MatMulNBits on WebGPU): same greedy tokens, logits within 5% of the largest logit', async () => {
    const [cpu, gpu] = [await generate('int4', 'cpu'), await generate('int4', 'webgpu')];
    expect(gpu.tokens).toEqual(cpu.tokens);
    const largest = cpu.logits.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(maxAbsError(gpu.logits, cpu.logits)).toBeLessThanOrEqual(0.05 * largest);
  });

  it('fp16: on an adapter without shader-f16 (SwiftShader) exit 2 saying so; with it, CPU tokens and logits within 0.05', async () => {
    const out = path.join(work, 'fp16-webgpu.safetensors');
    const r = vlmcWithEnv(swiftshaderEnv(), ['generate', path.join(work, 'fp16'), '--inputs', path.join(fx, 'gen_inputs.safetensors'), '--max-new-tokens', NEW_TOKENS, '--ignore-eos', '--out', out, '--json', '--ep', 'webgpu']);
    if (r.status === 2) {
      expect(r.stderr).toBe(`${NO_F16}\n`);
      expect(existsSync(out)).toBe(false);
      return;
    }
    expect(r.status).toBe(0);
    const [cpu, gpu] = [await generate('fp16', 'cpu'), await readGeneration(out)];
    expect(gpu.tokens).toEqual(cpu.tokens);
    expect(maxAbsError(gpu.logits, cpu.logits)).toBeLessThanOrEqual(0.05);
  });
});

describe.skipIf(!SWIFTSHADER_ICD)('fixture qwen2-tiny on WebGPU (SwiftShader): bf16, the training graph', () => {
  const fx = path.join(FIXTURES, 'qwen2-tiny');
  let work: string;
  beforeAll(() => {
    work = tempDir();
  });
  afterAll(() => removeDir(work));

  it('bf16 (no WebGPU or CPU kernels): exit 2 naming the op and the build', async () => {
    const artifact = await build(fx, path.join(work, 'bf16'), ['--split', '--target', 'gpu', '--dtype', 'bf16']);
    const r = vlmcWithEnv(swiftshaderEnv(), ['run', artifact, '--inputs', path.join(fx, 'inputs.safetensors'), '--out', path.join(work, 'bf16.safetensors'), '--ep', 'webgpu']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`vlmc: ${artifact}: execution provider webgpu, cpu has no kernel for Expand (built with --target gpu, computing in bfloat16); run it on an execution provider that has one (CUDA)\n`);
  });

  it('train.onnx runs on WebGPU (so vlmc train --ep webgpu does): every gradient within 1e-3 of the largest reference value', async () => {
    const artifact = await build(fx, path.join(work, 'train'), ['--train', '--preset', 'full']);
    const out = path.join(work, 'grads.safetensors');
    const r = vlmcWithEnv(swiftshaderEnv(), ['run', artifact, '--graph', 'train', '--inputs', path.join(fx, 'inputs.safetensors'), '--out', out, '--ep', 'webgpu']);
    expect(r.status, r.stderr).toBe(0);
    const { SafetensorsFile } = await import('../src/checkpoint/safetensors.ts');
    const [got, want] = [await SafetensorsFile.open(out), await SafetensorsFile.open(path.join(fx, 'grads-full.safetensors'))];
    try {
      const keys = [...want.keys()];
      expect(keys.length).toBeGreaterThan(50);
      for (const key of keys) {
        const w = await want.readAsFloat32(want.entry(key));
        const g = await got.readAsFloat32(got.entry(`grad.${key}`));
        const largest = w.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        expect(maxAbsError(g, w), key).toBeLessThanOrEqual(1e-3 * Math.max(largest, 1e-6));
      }
    } finally {
      await got.close();
      await want.close();
    }
  });
});
