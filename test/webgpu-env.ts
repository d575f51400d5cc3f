/**
 * A WebGPU adapter on a machine without a GPU, for the tests: SwiftShader's Vulkan driver, which
 * Debian's chromium package ships beside the browser (with its own libvulkan.so.1). Pointing
 * VK_ICD_FILENAMES at it makes onnxruntime-node's WebGPU provider (Dawn over Vulkan) run real WGSL
 * kernels on the CPU. The environment must be set before the process starts (the dynamic loader
 * reads LD_LIBRARY_PATH then), so everything that uses it runs vlmc in a child process.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ROOT, type CliResult } from './helpers.ts';

const SWIFTSHADER_ICDS = ['/usr/lib/chromium/vk_swiftshader_icd.json', '/usr/lib64/chromium/vk_swiftshader_icd.json', '/usr/lib/chromium-browser/vk_swiftshader_icd.json'];

/** SwiftShader's ICD file, if chromium is installed (.ci/run installs it). */
export const SWIFTSHADER_ICD = SWIFTSHADER_ICDS.find((f) => existsSync(f));

/** Why the WebGPU parity tests are skipped here, when they are. */
export const NO_SWIFTSHADER = `no SwiftShader Vulkan driver (looked for ${SWIFTSHADER_ICDS.join(', ')}; apt-get install chromium): the WebGPU parity tests are skipped`;

function systemHasVulkanLoader(): boolean {
  const r = spawnSync('/sbin/ldconfig', ['-p'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('libvulkan.so.1');
}

/** The environment that gives a child process SwiftShader's adapter. */
export function swiftshaderEnv(): NodeJS.ProcessEnv {
  if (!SWIFTSHADER_ICD) throw new Error(NO_SWIFTSHADER);
  const env: NodeJS.ProcessEnv = { VK_ICD_FILENAMES: SWIFTSHADER_ICD };
  // chromium carries a Vulkan loader beside the driver; use it where the system has none.
  if (!systemHasVulkanLoader()) env.LD_LIBRARY_PATH = [path.dirname(SWIFTSHADER_ICD), process.env.LD_LIBRARY_PATH].filter(Boolean).join(':');
  return env;
}

/** An environment in which Vulkan finds no driver, so WebGPU has no adapter. */
export const NO_ADAPTER_ENV: NodeJS.ProcessEnv = { VK_ICD_FILENAMES: '/nonexistent/vlmc-no-such-icd.json' };

/** The CLI (bin/vlmc.js) in a child process with extra environment variables. */
export function vlmcWithEnv(env: NodeJS.ProcessEnv, args: string[]): CliResult {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/vlmc.js'), ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, CI: '1', ...env } });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The last line vlmc wrote to stderr (Dawn prints its own Vulkan warnings before it). */
export function lastLine(stderr: string): string {
  return stderr.trimEnd().split('\n').at(-1) ?? '';
}
