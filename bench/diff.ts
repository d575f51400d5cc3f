/**
 * `vlmc diff` benchmark on the largest InternVL: two structure-only InternVL2-76B-like graphs
 * (InternViT-6B + a Llama-3-70B-sized LLM; parameters are shapes, never allocated) that differ by a
 * freeze rule and one extra LLM layer. Reports compile + summary time per graph, and the time of the
 * diff itself and of its renderers (median of N runs).
 *
 *   npx tsx bench/diff.ts [--runs 7]
 *
 * Exits 1 when the floor (median diff < 1 s) is missed.
 */
import { cpus } from 'node:os';
import { compile, freeze, internvl, internViT, llama, preset, type Model } from '../src/index.ts';
import { summaryFromGraph } from '../src/review/summary.ts';
import { diffSummaries, renderJson, renderMarkdown, renderText } from '../src/review/diff.ts';
import { lockText } from '../src/review/lock.ts';
import type { GraphSummary } from '../src/review/types.ts';

const FLOOR_SECONDS = 1;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function internvl76b(llmLayers: number, extraFreeze: boolean): Model {
  return internvl({
    name: 'internvl2-76b-like',
    vision: internViT({ hidden: 3200, heads: 25, layers: 45, intermediate: 12800, imageSize: 448, patchSize: 14, norm: 'rms_norm', qkvBias: false, qkNorm: true, eps: 1e-6 }),
    llm: llama({ hidden: 8192, heads: 64, kvHeads: 8, layers: llmLayers, intermediate: 28672, vocab: 128262, rmsNormEps: 1e-5, ropeTheta: 500_000, maxPositions: 8192, tieEmbeddings: false }),
    downsampleRatio: 0.5,
    psVersion: 'v2',
    selectLayer: -1,
    imgContextTokenId: 128258,
    train: extraFreeze ? [...preset('stage2'), ...freeze('llm.layers.0-39')] : preset('stage2'),
  });
}

const seconds = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e9;

function timed<T>(fn: () => T): [T, number] {
  const t0 = process.hrtime.bigint();
  const out = fn();
  return [out, seconds(t0)];
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function summarize(model: Model): { summary: GraphSummary; compileS: number; summaryS: number; nodes: number } {
  const [graph, compileS] = timed(() => compile(model, { structureOnly: true }));
  const [summary, summaryS] = timed(() => summaryFromGraph(graph));
  return { summary, compileS, summaryS, nodes: graph.nodes.length };
}

const runs = Number(arg('runs') ?? 7);
const a = summarize(internvl76b(80, false));
const b = summarize(internvl76b(81, true));

const diffTimes: number[] = [];
let diff = diffSummaries(a.summary, b.summary);
for (let i = 0; i < runs; i++) {
  const [d, s] = timed(() => diffSummaries(a.summary, b.summary));
  diff = d;
  diffTimes.push(s);
}
const nodeDiffTimes: number[] = [];
for (let i = 0; i < runs; i++) nodeDiffTimes.push(timed(() => diffSummaries(a.summary, b.summary, { nodes: true }))[1]);
const renderTimes = { text: [] as number[], markdown: [] as number[], json: [] as number[] };
for (let i = 0; i < runs; i++) {
  renderTimes.text.push(timed(() => renderText(diff))[1]);
  renderTimes.markdown.push(timed(() => renderMarkdown(diff))[1]);
  renderTimes.json.push(timed(() => renderJson(diff))[1]);
}
const [lock, lockS] = timed(() => lockText(b.summary));

const params = (s: GraphSummary) => s.modules.find((m) => m.path === '')!.params;
const ms = (s: number) => `${(s * 1000).toFixed(1)} ms`;
const diffMedian = median(diffTimes);

console.log(`graphs: A ${a.summary.name}, 80 LLM layers (${a.nodes} nodes, ${a.summary.params.length} tensors, ${params(a.summary)} params); B 81 layers + freeze llm.layers.0-39 (${b.nodes} nodes, ${params(b.summary)} params)`);
console.log(`machine: ${cpus()[0]?.model ?? 'unknown cpu'}, node ${process.version}, runs ${runs}`);
console.log('');
console.log('| step | time |');
console.log('|---|---|');
console.log(`| compile A / B | ${ms(a.compileS)} / ${ms(b.compileS)} |`);
console.log(`| summary A / B | ${ms(a.summaryS)} / ${ms(b.summaryS)} |`);
console.log(`| diff (median of ${runs}) | ${ms(diffMedian)} |`);
console.log(`| diff with node detail (median) | ${ms(median(nodeDiffTimes))} |`);
console.log(`| render text / markdown / json (median) | ${ms(median(renderTimes.text))} / ${ms(median(renderTimes.markdown))} / ${ms(median(renderTimes.json))} |`);
console.log(`| lock text (B, ${lock.split('\n').length} lines) | ${ms(lockS)} |`);
console.log('');
console.log(renderText(diff).split('\n').slice(0, 16).join('\n'));
console.log(`floor: diff < ${FLOOR_SECONDS} s: ${diffMedian < FLOOR_SECONDS ? 'met' : 'MISSED'}`);
if (diffMedian >= FLOOR_SECONDS) process.exitCode = 1;
