/**
 * `npm run device-kit`: writes the device kit, a folder (at most 60 MiB) that measures vlmc on a GPU
 * machine with no network and no Node (bench/device-kit/README.md):
 *
 *   run.sh  README.md  payload.tar.gz
 *     bin/node                     this machine's Node (a self-contained binary: libc and libstdc++ only), stripped
 *     app/vlmc.mjs, app/kit.mjs    vlmc's CLI and the measurement, bundled with esbuild (no TypeScript toolchain)
 *     node_modules/onnxruntime-*   onnxruntime-node's JavaScript and its Linux x64 binary only
 *     lib/libvulkan.so.1           the Vulkan loader (Debian's libvulkan1, fetched with apt-get download)
 *     package.json                 vlmc's version and commit
 *
 *   npx tsx bench/device-kit/build.ts [--out out/device-kit] [--node PATH] [--libvulkan PATH] [--fast]
 *
 * --fast (the tests): no strip, an uncompressed payload.tar, any libvulkan.so.1 found here. The same
 * inputs give a byte-identical payload (tar with fixed owners and times, gzip -n).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { build as esbuild } from 'esbuild';
import { withTempSibling } from '../../src/fs/atomic.ts';
import { UserError } from '../../src/errors.ts';
import { VLMC_VERSION } from '../../src/version.ts';

const HERE = nodePath.dirname(fileURLToPath(import.meta.url));
const ROOT = nodePath.resolve(HERE, '..', '..');
const MAX_BYTES = 60 * 1024 * 1024;
const ORT_BINARY_DIR = 'bin/napi-v6/linux/x64';
/** Loaded only by commands the kit does not run (images: sharp; graph files: tsx; init: ts-morph). */
const NOT_BUNDLED = ['onnxruntime-node', 'sharp', 'ts-morph', 'typescript', 'tsx', 'tsx/*', 'esbuild', 'wabt'];

interface Options {
  out: string;
  node: string;
  libvulkan?: string;
  fast: boolean;
}

function parseOptions(argv: string[]): Options {
  const value = (flag: string) => {
    const at = argv.indexOf(flag);
    return at >= 0 ? argv[at + 1] : undefined;
  };
  return { out: nodePath.resolve(value('--out') ?? nodePath.join(ROOT, 'out', 'device-kit')), node: value('--node') ?? process.execPath, libvulkan: value('--libvulkan'), fast: argv.includes('--fast') };
}

/** The kit folder replaces only an earlier kit, never another folder. */
function checkOut(out: string): void {
  if (!existsSync(out)) return;
  const isKit = statSync(out).isDirectory() && existsSync(nodePath.join(out, 'run.sh')) && readdirSync(out).some((f) => f.startsWith('payload.tar'));
  if (!isKit) throw new UserError(`--out ${out}: exists and is not a device kit; give a new path`);
}

function run(command: string, args: string[], cwd?: string): string {
  const r = spawnSync(command, args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new UserError(`${command} ${args.join(' ')} failed: ${(r.stderr || r.error?.message || '').trim()}`);
  return r.stdout;
}

async function bundleApp(stage: string): Promise<void> {
  await esbuild({
    entryPoints: { vlmc: nodePath.join(HERE, 'vlmc-entry.ts'), kit: nodePath.join(HERE, 'measure.ts') },
    outdir: nodePath.join(stage, 'app'),
    outExtension: { '.js': '.mjs' },
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    external: NOT_BUNDLED,
    // The bundled CommonJS dependencies (protobufjs, commander) call require.
    banner: { js: "import { createRequire as __kitCreateRequire } from 'node:module'; const require = __kitCreateRequire(import.meta.url);" },
    logLevel: 'warning',
  });
}

/** onnxruntime-node's JavaScript and its Linux x64 binary; nothing for other platforms, no install scripts. */
function copyOnnxRuntime(stage: string): void {
  const from = nodePath.join(ROOT, 'node_modules');
  const to = nodePath.join(stage, 'node_modules');
  for (const [pkg, parts] of [
    ['onnxruntime-node', ['package.json', 'dist', ORT_BINARY_DIR]],
    ['onnxruntime-common', ['package.json', 'dist/cjs']],
  ] as const) {
    for (const part of parts) cpSync(nodePath.join(from, pkg, part), nodePath.join(to, pkg, part), { recursive: true });
  }
}

function copyNode(stage: string, o: Options): void {
  const target = nodePath.join(stage, 'bin', 'node');
  mkdirSync(nodePath.dirname(target), { recursive: true });
  copyFileSync(o.node, target);
  chmodSync(target, 0o755);
  // Node ships with its symbols: 99 -> 86 MB, 36 -> 32 MB compressed.
  if (!o.fast) run('strip', ['--strip-all', target]);
  const libs = run('ldd', [target]);
  const foreign = libs.split('\n').filter((l) => /=>/.test(l) && !/lib(c|m|dl|pthread|rt|stdc\+\+|gcc_s)\.so/.test(l));
  if (foreign.length > 0) throw new UserError(`${o.node}: not self-contained enough for the kit (it links ${foreign.map((l) => l.trim().split(' ')[0]).join(', ')}); give --node a Node binary that links only libc and libstdc++`);
}

/** Debian's Vulkan loader (libvulkan1), unpacked from `apt-get download`; --libvulkan or --fast: a given / local one. */
function copyVulkanLoader(stage: string, o: Options): void {
  const target = nodePath.join(stage, 'lib', 'libvulkan.so.1');
  mkdirSync(nodePath.dirname(target), { recursive: true });
  const given = o.libvulkan ?? (o.fast ? localVulkanLoader() : undefined);
  if (given) {
    copyFileSync(given, target);
    return;
  }
  const tmp = mkdtempSync(nodePath.join(tmpdir(), 'vlmc-kit-deb-'));
  try {
    run('apt-get', ['download', 'libvulkan1'], tmp);
    const deb = readdirSync(tmp).find((f) => f.endsWith('.deb'))!;
    run('dpkg-deb', ['-x', deb, 'x'], tmp);
    const lib = run('find', [nodePath.join(tmp, 'x'), '-name', 'libvulkan.so.1.*', '-type', 'f']).trim().split('\n')[0];
    if (!lib) throw new UserError(`${deb}: has no libvulkan.so.1.*`);
    copyFileSync(lib, target);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function localVulkanLoader(): string {
  const listed = spawnSync('/sbin/ldconfig', ['-p'], { encoding: 'utf8' }).stdout ?? '';
  const system = /libvulkan\.so\.1 \(.*\) => (\S+)/.exec(listed)?.[1];
  const found = [system, '/usr/lib/chromium/libvulkan.so.1'].find((f) => f && existsSync(f));
  if (!found) throw new UserError('no libvulkan.so.1 on this machine to put in a --fast kit; give --libvulkan <file>');
  return found;
}

function gitCommit(): string {
  const r = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'unknown';
}

/** payload.tar(.gz) of the staged tree, with fixed owners and times so the bytes depend on the contents only. */
function packPayload(stage: string, dir: string, fast: boolean): string {
  const file = nodePath.join(dir, fast ? 'payload.tar' : 'payload.tar.gz');
  const tar = ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-C', stage];
  run('tar', [...tar, ...(fast ? [] : ['--use-compress-program=gzip -9 -n']), '-cf', file, '.']);
  return file;
}

function folderBytes(dir: string): number {
  return readdirSync(dir).reduce((sum, f) => sum + statSync(nodePath.join(dir, f)).size, 0);
}

export async function buildKit(o: Options): Promise<{ out: string; bytes: number }> {
  checkOut(o.out);
  const stage = mkdtempSync(nodePath.join(tmpdir(), 'vlmc-kit-stage-'));
  try {
    await bundleApp(stage);
    copyOnnxRuntime(stage);
    copyNode(stage, o);
    copyVulkanLoader(stage, o);
    writeFileSync(nodePath.join(stage, 'package.json'), `${JSON.stringify({ name: 'vlmc-device-kit', version: VLMC_VERSION, private: true, vlmc_commit: gitCommit() }, null, 2)}\n`);
    const bytes = await withTempSibling(o.out, async (dir) => {
      packPayload(stage, dir, o.fast);
      copyFileSync(nodePath.join(HERE, 'run.sh'), nodePath.join(dir, 'run.sh'));
      chmodSync(nodePath.join(dir, 'run.sh'), 0o755);
      copyFileSync(nodePath.join(HERE, 'README.md'), nodePath.join(dir, 'README.md'));
      return folderBytes(dir);
    });
    if (!o.fast && bytes > MAX_BYTES) throw new Error(`the kit is ${(bytes / 2 ** 20).toFixed(1)} MiB, over the 60 MiB it may take`);
    return { out: o.out, bytes };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  try {
    const { out, bytes } = await buildKit(parseOptions(process.argv.slice(2)));
    console.log(`${out}: device kit, ${(bytes / 2 ** 20).toFixed(1)} MiB (copy the folder to the GPU machine and run ./run.sh there)`);
    return 0;
  } catch (e) {
    if (e instanceof UserError) {
      process.stderr.write(`device-kit: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`device-kit: ${(e as Error)?.stack ?? String(e)}\n`);
    return 1;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === nodePath.resolve(process.argv[1])) process.exitCode = await main();
