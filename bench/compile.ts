/**
 * Compile-time benchmark: traces and compiles (src/compile.ts) the structure of the largest graph in
 * graphs/ (InternVL2.5/3-78B) N times and reports the median wall time per compile and the peak RSS of
 * the process. Only shapes exist: parameters are never allocated.
 *
 *   npx tsx bench/compile.ts [--graph internvl3-78b] [--runs 7]
 *
 * Prints a markdown table row; exits 1 when the floor (median < 3 s, peak RSS < 1 GB) is missed.
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';
import { collectParams, compile, type Model } from '../src/index.ts';

const FLOOR_SECONDS = 3;
const FLOOR_RSS_BYTES = 1e9;
const GRAPHS_DIR = fileURLToPath(new URL('../graphs/', import.meta.url));

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const countParams = (m: Model): number => collectParams(m).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);

async function load(name: string): Promise<Model> {
  return ((await import(`${GRAPHS_DIR}${name}.ts`)) as { default: Model }).default;
}

/** The graph with the most parameters (ties: the first by name). */
async function largestGraph(): Promise<string> {
  let best = { name: '', params: -1 };
  for (const file of readdirSync(GRAPHS_DIR).filter((f) => f.endsWith('.ts')).sort()) {
    const name = file.replace(/\.ts$/, '');
    const params = countParams(await load(name));
    if (params > best.params) best = { name, params };
  }
  return best.name;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const name = arg('graph') ?? (await largestGraph());
const runs = Number(arg('runs') ?? 7);
const model = await load(name);
const params = countParams(model);

const times: number[] = [];
let nodes = 0;
for (let i = 0; i < runs; i++) {
  const t0 = performance.now();
  const graph = compile(model);
  times.push(performance.now() - t0);
  nodes = graph.nodes.length;
}
// maxRSS is in kilobytes (KiB).
const peakRss = process.resourceUsage().maxRSS * 1024;
const med = median(times);
const ok = med < FLOOR_SECONDS * 1000 && peakRss < FLOOR_RSS_BYTES;

const fmt = (ms: number) => `${(ms / 1000).toFixed(3)} s`;
console.log(`| graph | params | nodes | compiles | median | min | max | peak RSS | node | cpu | floor (< ${FLOOR_SECONDS} s, < 1 GB) |`);
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
console.log(
  `| ${name} | ${(params / 1e9).toFixed(2)}B | ${nodes} | ${runs} | ${fmt(med)} | ${fmt(Math.min(...times))} | ${fmt(Math.max(...times))} | ` +
    `${(peakRss / 2 ** 20).toFixed(0)} MiB | ${process.version} | ${cpus()[0]?.model.trim() ?? '?'} | ${ok ? 'pass' : 'FAIL'} |`,
);
if (!ok) process.exitCode = 1;
