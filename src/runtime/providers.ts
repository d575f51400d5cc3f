/**
 * Execution providers: which onnxruntime-node provider a session runs on (`--ep cpu|cuda|webgpu`),
 * the session options each one needs, and the one clear message when it cannot run here.
 *
 * - cpu: always there.
 * - cuda: listed by onnxruntime-node on linux x64, but its libraries are downloaded at install time
 *   (`ONNXRUNTIME_NODE_INSTALL=cuda12`); without them session creation fails inside ONNX Runtime.
 * - webgpu: built into the linux x64 binary (Dawn over Vulkan); it needs a Vulkan driver with a
 *   device (a GPU's, or SwiftShader's on the CPU). Without one there is no adapter.
 *
 * WebGPU computes Sin and Cos on the CPU: WGSL promises them only to 2^-11 absolute error inside
 * [-π, π] and nothing outside, and the rotary angles are position x frequency radians (thousands
 * for long sequences). On the device they moved the fixtures' logits by 2e-3; on the CPU, 4e-6.
 *
 * Outputs that are fed back as inputs (the decoder's KV cache) stay on the device with webgpu:
 * onnxruntime-node 1.30 binds outputs named in `preferredOutputLocation` as 'gpu-buffer' tensors,
 * which can be passed to the next run and disposed, but not downloaded (`getData()` aborts the
 * process), so only values that never come back to the host are kept there.
 */
import { readFileSync } from 'node:fs';
import type ort from 'onnxruntime-node';
import { UserError } from '../errors.ts';
import { onnx } from '../onnx/proto.ts';

export const EXECUTION_PROVIDERS = ['cpu', 'cuda', 'webgpu'] as const;
export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number];

type Ort = typeof ort;
type OrtSessionOptions = ort.InferenceSession.SessionOptions;

/**
 * The provider list of a session: the chosen one first, the CPU for the nodes it has no kernel
 * for (ONNX Runtime also keeps shape arithmetic there on purpose).
 */
export function providerList(runtime: Ort, ep: ExecutionProvider): string[] {
  if (ep === 'cpu') return ['cpu'];
  const available = runtime.listSupportedBackends().map((b) => b.name);
  if (!available.includes(ep)) {
    throw new UserError(`--ep ${ep}: this onnxruntime-node build has no ${ep} execution provider (it has: ${available.join(', ')}); ${installHint(ep)}, or use --ep cpu`);
  }
  // ONNX Runtime would also log a failed provider load itself; providerFailure says it once.
  runtime.env.logLevel = 'fatal';
  return [ep, 'cpu'];
}

export interface ProviderSessionOptions {
  /** Let ORT repack weights for its CPU kernels (see docs/performance.md, Inference). */
  prepackWeights: boolean;
  /**
   * Keep the pool threads spinning after a run (ORT's default). Off for a split artifact's vision
   * and embedding graphs: they run right before a decoder run, and their threads spinning on would
   * take the cores the decoder needs (on 2 cores a decode step measured up to 1.7x slower behind
   * another session's spinning pool).
   */
  spin?: boolean;
  /** Outputs to leave on the device (only honoured where the provider has device memory). */
  deviceOutputs?: readonly string[];
  /** The .onnx file the session is for (webgpu reads its node names; see cpuOnlyNodes). */
  model?: string;
}

/** Session options for a provider list from providerList(). */
export function sessionOptionsFor(providers: readonly string[], o: ProviderSessionOptions): OrtSessionOptions {
  const webgpu = providers[0] === 'webgpu';
  const onDevice = webgpu && o.deviceOutputs?.length ? o.deviceOutputs : [];
  const onCpu = webgpu && o.model ? cpuOnlyNodes(o.model) : [];
  return {
    executionProviders: onCpu.length > 0 ? [{ name: 'webgpu', forceCpuNodeNames: onCpu }, ...providers.slice(1)] : [...providers],
    // Parameters past select_layer are unused initializers by design; keep ORT quiet about them.
    // Another provider's failures arrive as exceptions (explained by providerFailure and
    // deviceRunFailure), so its error log would only say them twice.
    logSeverityLevel: providers[0] === 'cpu' ? 3 : 4,
    ...extraSessionOptions(o),
    ...(onDevice.length > 0 ? { preferredOutputLocation: Object.fromEntries(onDevice.map((name) => [name, 'gpu-buffer' as const])) } : {}),
  };
}

/** ORT's session config entries for the prepacking and spinning choices (none when both are ORT's defaults). */
function extraSessionOptions(o: ProviderSessionOptions): Pick<OrtSessionOptions, 'extra'> {
  const session = { ...(o.prepackWeights ? {} : { disable_prepacking: '1' }), ...(o.spin === false ? { intra_op: { allow_spinning: '0' } } : {}) };
  return Object.keys(session).length > 0 ? { extra: { session } } : {};
}

/** Ops the WebGPU device computes too loosely for vlmc's parity (see the file comment). */
const WEBGPU_CPU_OPS = new Set(['Sin', 'Cos']);

/** The names of a model's nodes that must stay on the CPU under webgpu. */
export function cpuOnlyNodes(modelFile: string): string[] {
  // The weights are external data, so model.onnx is the graph alone: small and quick to decode.
  const graph = onnx.ModelProto.decode(readFileSync(modelFile)).graph;
  return (graph?.node ?? []).filter((n) => !n.domain && WEBGPU_CPU_OPS.has(n.opType ?? '') && n.name).map((n) => n.name!);
}

/**
 * A session-creation failure that means "this provider cannot run here", as a UserError naming the
 * provider and what to do; undefined for any other failure.
 */
export function providerFailure(providers: readonly string[], err: unknown): UserError | undefined {
  const ep = providers[0];
  const message = (err as Error)?.message ?? String(err);
  // ORT may already run f16 kernels while it creates a session (weights transposed at load).
  const device = deviceRunFailure(err);
  if (device) return device;
  if (ep === 'webgpu' && /Failed to get a WebGPU adapter|RequestAdapter/i.test(message)) {
    return new UserError(
      '--ep webgpu: ONNX Runtime found no WebGPU adapter (Dawn needs the Vulkan loader libvulkan.so.1 and a Vulkan driver with a device: ' +
        "install the GPU's Vulkan driver and libvulkan1, or point VK_ICD_FILENAMES at the driver's ICD json); use --ep cpu to run on the CPU",
    );
  }
  if (ep === 'cuda' && /Failed to load (shared )?library|providers_shared|providers_cuda|libcudart|libcublas|libcudnn/i.test(message)) {
    return new UserError(`--ep cuda: onnxruntime-node could not load its CUDA provider (${firstLine(message)}); ${installHint('cuda')}, or use --ep cpu`);
  }
  return undefined;
}

/**
 * A run failure that means the device lacks a feature the graph needs, as a UserError; undefined
 * for any other failure. (WebGPU adapters without shader-f16, such as SwiftShader's, cannot run
 * fp16 graphs; ONNX Runtime finds out only when it compiles the first f16 kernel.)
 */
export function deviceRunFailure(err: unknown): UserError | undefined {
  const message = (err as Error)?.message ?? String(err);
  if (/requires f16 but the device does not support it/.test(message)) {
    return new UserError('--ep webgpu: this WebGPU adapter has no 16-bit float shaders (shader-f16), and the artifact computes in float16; run it with --ep cpu, on a GPU whose driver has f16, or build it with --dtype fp32');
  }
  return undefined;
}

/** session.run, with device-feature failures explained (deviceRunFailure). */
export async function runOnDevice(session: ort.InferenceSession, feeds: ort.InferenceSession.FeedsType): Promise<ort.InferenceSession.ReturnType> {
  try {
    return await session.run(feeds);
  } catch (e) {
    throw deviceRunFailure(e) ?? e;
  }
}

function installHint(ep: string): string {
  if (ep === 'cuda') return 'with network access, reinstall onnxruntime-node with its CUDA 12 libraries (ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node; CUDA 12 and cuDNN 9 must be installed)';
  if (ep === 'webgpu') return "npm's onnxruntime-node has WebGPU on linux x64, windows and macOS";
  return `install an onnxruntime-node build with ${ep}`;
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.trim();
}

/**
 * Tensors a session left on the device (webgpu outputs named in deviceOutputs): each is released
 * once it has been fed to the run that consumes it, and whatever is left when the session closes.
 */
export class DeviceTensors {
  private readonly held = new Set<ort.Tensor>();

  /** Remember the outputs of a run that are on the device. */
  keep(outputs: Iterable<ort.Tensor>): void {
    for (const t of outputs) if (t.location === 'gpu-buffer') this.held.add(t);
  }

  /** Release device tensors a run has consumed (the caller must not use them again). */
  consumed(inputs: Iterable<ort.Tensor>): void {
    for (const t of inputs) {
      if (this.held.delete(t)) t.dispose();
    }
  }

  releaseAll(): void {
    for (const t of this.held) t.dispose();
    this.held.clear();
  }
}
