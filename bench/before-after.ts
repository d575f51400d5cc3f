/**
 * bench/before-after: this checkout against another (e.g. the main before a change), side by side
 * in the same run, on the InternVL2-1B-shaped BF16 checkpoint of bench/bind.
 *
 *   npx tsx bench/before-after.ts --base /path/to/other/checkout [--runs 5]
 *
 * 1. Artifacts: builds the single-graph and split artifacts (portable fp32, --target gpu, gpu +
 *    int4) with both CLIs and compares every file byte for byte. Equal artifacts load and run the
 *    same (session creation, vision, prefill, decode), so those phases are equal by construction.
 * 2. Build: `vlmc build --weights <ckpt> --dtype fp16` with each CLI in turn, alternating run by
 *    run so both see the same load; wall clock and peak RSS (GNU time %M) per run, medians.
 * 3. Compile: `bench/compile.ts --graph internvl2_5-78b` (trace + passes) in each checkout, alternating.
 * Prints a markdown table with the ratios (this / base).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchModel, ensureCheckpoint, machine } from './bind.ts';

const ROOT = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), '..');
const WORK = nodePath.join(ROOT, 'out', 'bench', 'before-after');

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** One process under GNU time: wall seconds and peak RSS in MiB. */
function timed(cmd: string[], cwd: string): { seconds: number; rssMiB: number; stdout: string } {
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', ...cmd], { cwd, encoding: 'utf8', maxBuffer: 1 << 26 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} (in ${cwd}) exited ${r.status}: ${r.stderr.slice(-2000)}`);
  const kib = Number(r.stderr.trim().split('\n').at(-1));
  return { seconds, rssMiB: kib / 1024, stdout: r.stdout };
}

function filesEqual(a: string, b: string): boolean {
  const names = readdirSync(a).sort();
  if (names.join() !== readdirSync(b).sort().join()) return false;
  // cmp streams: the data files are gigabytes.
  return names.every((n) => spawnSync('cmp', ['-s', nodePath.join(a, n), nodePath.join(b, n)]).status === 0);
}

async function main(): Promise<void> {
  const base = arg('base');
  if (!base || !existsSync(nodePath.join(base, 'bin/vlmc.js'))) throw new Error('--base <checkout with bin/vlmc.js> is required');
  const runs = Number(arg('runs') ?? 5);
  const ckpt = (await ensureCheckpoint((await benchModel()).model)).dir;
  const sides = { this: ROOT, base: nodePath.resolve(base) };
  rmSync(WORK, { recursive: true, force: true });

  const variants: [string, string[]][] = [
    ['single fp32', []],
    ['split fp32', ['--split']],
    ['split gpu', ['--split', '--target', 'gpu']],
    ['split gpu int4', ['--split', '--target', 'gpu', '--quant', 'int4']],
  ];
  const identical: string[] = [];
  for (const [name, flags] of variants) {
    const outs = Object.fromEntries(
      Object.entries(sides).map(([side, dir]) => {
        const out = nodePath.join(WORK, `${name.replace(/ /g, '-')}-${side}`);
        timed(['node', 'bin/vlmc.js', 'build', '--weights', ckpt, '--out', out, '--quiet', ...flags], dir);
        return [side, out];
      }),
    );
    identical.push(`${name}: ${filesEqual(outs['this']!, outs['base']!) ? 'byte-identical' : 'DIFFERENT'}`);
    for (const out of Object.values(outs)) rmSync(out, { recursive: true, force: true });
  }

  const build: Record<string, { seconds: number[]; rss: number[] }> = { this: { seconds: [], rss: [] }, base: { seconds: [], rss: [] } };
  const compileS: Record<string, number[]> = { this: [], base: [] };
  for (let i = 0; i < runs; i++) {
    for (const [side, dir] of i % 2 === 0 ? Object.entries(sides) : Object.entries(sides).reverse()) {
      const out = nodePath.join(WORK, `build-${side}`);
      const r = timed(['node', 'bin/vlmc.js', 'build', '--weights', ckpt, '--out', out, '--dtype', 'fp16', '--quiet'], dir);
      build[side]!.seconds.push(r.seconds);
      build[side]!.rss.push(r.rssMiB);
      rmSync(out, { recursive: true, force: true });
      spawnSync('sync');
      // The same graph on both sides (the largest one changes as the zoo grows).
      const c = timed(['npx', 'tsx', 'bench/compile.ts', '--graph', 'internvl2_5-78b', '--runs', '1'], dir);
      const m = /\|\s*([\d.]+) s\s*\|/.exec(c.stdout);
      compileS[side]!.push(m ? Number(m[1]) : NaN);
    }
  }
  const row = (what: string, a: number, b: number, unit: string) => `| ${what} | ${a.toFixed(2)} ${unit} | ${b.toFixed(2)} ${unit} | ${(a / b).toFixed(2)} |`;
  console.log(`\nartifacts: ${identical.join('; ')}\n`);
  console.log('| median over runs | this | base | this / base |');
  console.log('|---|---|---|---|');
  console.log(row('build 1B BF16 -> fp16, wall', median(build['this']!.seconds), median(build['base']!.seconds), 's'));
  console.log(row('build 1B, peak RSS', median(build['this']!.rss), median(build['base']!.rss), 'MiB'));
  console.log(row('compile 78B graph (bench/compile)', median(compileS['this']!), median(compileS['base']!), 's'));
  console.log(`\n${runs} runs each, alternating; ${machine()}; load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
}

await main();
