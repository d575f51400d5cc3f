/**
 * The pages of `vlmc view` and `vlmc diff --format html` in a real headless Chromium (issue 20): no
 * console errors and no request but the page itself, the totals drawn are the manifest's, hover
 * and zoom work, the 78B graph draws in under 2 s from a page under 2 MB; screenshots are kept
 * (test-results/screenshots; the README's come from here with VLMC_UPDATE_DOCS_IMAGES=1). One
 * browser and one page for the whole file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser } from 'puppeteer-core';
import { build } from '../src/build.ts';
import type { Manifest } from '../src/artifact/format.ts';
import { diffSummaries, renderText, resolveOperand } from '../src/review/index.ts';
import { buildView, diffPage, diffView, viewPage, writeView, type View } from '../src/review/view/index.ts';
import { writeFileAtomic } from '../src/fs/atomic.ts';
import { FIXTURES, ROOT, removeDir, tempDir } from './helpers.ts';
import { launchChromium, missingChromium, openTab, type Tab } from './browser.ts';

const work = tempDir('vlmc-view-browser-');
const unified = path.join(FIXTURES, 'qwen2-tiny', 'unified');
const dirs = { single: path.join(work, 'single'), split: path.join(work, 'split'), train: path.join(work, 'train'), int4: path.join(work, 'int4'), lora: path.join(work, 'lora') };
const pages = { single: '', split: '', train: '', checkpoint: '', large: '', diff: '', lora: '' };
let browser: Browser | undefined;
let tab: Tab;

beforeAll(async () => {
  browser = await launchChromium();
  tab = await openTab(browser);
  await build({ weights: unified, out: dirs.single });
  await build({ weights: unified, out: dirs.split, split: true });
  await build({ weights: unified, out: dirs.train, train: true, preset: 'stage1' });
  // Unpacked projections (every fusion but pack-projections): the diff shows each logical weight retyped.
  await build({ weights: unified, out: dirs.int4, target: 'gpu', fuse: 'gqa,vit-attention,gelu,skip-layernorm,rmsnorm', quant: { bits: 4, blockSize: 32, symmetric: true } });
  await build({ weights: unified, out: dirs.lora, useLlmLora: 4, train: true, preset: 'lora' });
  // Labelled as a user would name them, so the screenshots do not show temporary folders.
  const page = async (file: string, spec: string, label: string, cwd?: string) => {
    await writeFileAtomic(file, viewPage(buildView({ ...(await resolveOperand(spec, { cwd })), label })));
    return file;
  };
  for (const kind of ['single', 'split', 'train', 'lora'] as const) pages[kind] = await page(path.join(work, `${kind}.html`), dirs[kind], `out/qwen2-tiny-${kind}`);
  pages.checkpoint = await page(path.join(work, 'checkpoint.html'), unified, 'qwen2-tiny/unified');
  pages.large = path.join(work, 'large.html');
  await writeView('graphs/internvl2_5-78b.ts', pages.large, { cwd: ROOT });
  const a = await resolveOperand(dirs.single);
  const b = await resolveOperand(dirs.int4);
  const d = diffSummaries(a.summary, b.summary, { labels: ['out/qwen2-tiny', 'out/qwen2-tiny-int4'] });
  pages.diff = path.join(work, 'diff.html');
  await writeFileAtomic(pages.diff, diffPage(diffView({ ...a, label: 'out/qwen2-tiny' }, { ...b, label: 'out/qwen2-tiny-int4' }, d), renderText(d)));
});

afterAll(async () => {
  await browser?.close();
  removeDir(work);
});

const manifestOf = (dir: string): Manifest => JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;

/** The page's own JSON, as the page holds it. */
const pageData = <T>(id: string): Promise<T> => tab.page.$eval(`#${id}`, (e) => JSON.parse(e.textContent!) as unknown) as Promise<T>;

/** Per panel: the focus cell's counts and the sums over the cells drawn directly inside it. */
function drawnTotals(): Promise<{ panel: string; focus: string; params: number; trainable: number | undefined; inside: number; insideTrainable: number }[]> {
  return tab.page.$$eval('.panel', (panels) =>
    panels.map((p) => {
      const cells = [...p.querySelectorAll<HTMLElement>('.cell')];
      const focus = cells.find((c) => c.dataset.depth === '0')!;
      const inside = cells.filter((c) => c.dataset.depth === '1');
      return {
        panel: (p as HTMLElement).dataset.panel!,
        focus: focus.dataset.path!,
        params: Number(focus.dataset.params),
        trainable: focus.dataset.trainable === undefined ? undefined : Number(focus.dataset.trainable),
        inside: inside.reduce((n, c) => n + Number(c.dataset.params), 0),
        insideTrainable: inside.reduce((n, c) => n + Number(c.dataset.trainable ?? 0), 0),
      };
    }),
  );
}

/** Nothing but the page itself was loaded, and nothing went to the console. */
function expectClean(file: string): void {
  expect(tab.errors).toEqual([]);
  expect(tab.requests).toEqual([pathToFileURL(file).href]);
}

const headerTotal = (): Promise<string> => tab.page.$eval('header .total', (e) => e.textContent!);

async function centre(selector: string): Promise<{ x: number; y: number }> {
  const box = await (await tab.page.$(selector))!.boundingBox();
  expect(box, selector).not.toBeNull();
  return { x: box!.x + box!.width / 2, y: box!.y + box!.height / 2 };
}

describe('vlmc view in Chromium', () => {
  it('LoRA adapters are drawn in a hue of their own, with a legend entry (issue 18)', async () => {
    await tab.open(pages.lora);
    const hues = await tab.page.$$eval('.cell', (cs) => (cs as HTMLElement[]).map((c) => [c.dataset.path!, c.style.getPropertyValue('--h')] as const));
    const adapters = hues.filter(([p]) => /\.lora_[AB](\.|$)/.test(p));
    expect(adapters.length).toBeGreaterThan(0);
    expect(adapters.every(([, h]) => h === '290')).toBe(true);
    expect(hues.filter(([p]) => p.startsWith('language_model') && !/lora_[AB]/.test(p)).every(([, h]) => h !== '290')).toBe(true);
    expect(await tab.page.$$eval('.legend span', (ss) => ss.map((s) => s.textContent))).toContain('LoRA adapter (lora_A, lora_B)');
    expectClean(pages.lora);
  });

  it('an artifact: the drawn totals are the manifest\'s counts', async () => {
    await tab.open(pages.single);
    const m = manifestOf(dirs.single);
    expect(await headerTotal()).toBe('95,024 parameters · 95,024 trainable (100%) · 64 tensors · 371.2 KiB');
    expect(m.counts).toEqual({ total: 95024, trainable: 95024 });
    expect(await drawnTotals()).toEqual([{ panel: 'model', focus: '', params: m.counts.total, trainable: m.counts.trainable, inside: m.counts.total, insideTrainable: m.counts.trainable }]);
    const data = await pageData<View>('vlmc-view');
    expect([data.total, data.trainable]).toEqual([m.counts.total, m.counts.trainable]);
    expectClean(pages.single);
    await tab.screenshot('view-artifact');
  });

  it('hovering a parameter shows its path, counts, shape, bytes and checkpoint key', async () => {
    await tab.open(pages.single);
    const at = await centre('.cell[data-path="mlp1.1.weight"]');
    await tab.page.mouse.move(at.x, at.y);
    await tab.page.waitForSelector('#tip.on');
    const lines = await tab.page.$$eval('#tip div', (ds) => ds.map((d) => d.textContent));
    expect(lines).toEqual(['mlp1.1.weight', 'parameters: 6,144', 'shape [48, 128] · float32', 'bytes: 24.0 KiB', 'trainable: 6,144 (100%)', 'checkpoint key: mlp1.1.weight']);
    await tab.page.mouse.move(1, 1);
    expect(await tab.page.$eval('#tip', (e) => e.className)).toBe('');
    expectClean(pages.single);
  });

  it('clicking a module zooms into it, the breadcrumb zooms back out', async () => {
    await tab.open(pages.single);
    const cell = (await tab.page.$('.cell[data-path="language_model.model"]'))!;
    const box = (await cell.boundingBox())!;
    await tab.page.mouse.click(box.x + 8, box.y + 6);
    const zoomed = (await drawnTotals())[0]!;
    expect(zoomed).toMatchObject({ focus: 'language_model.model', params: 49584, inside: 49584 });
    expect(await tab.page.$$eval('.crumbs button', (bs) => bs.map((b) => b.textContent))).toEqual(['qwen2-tiny', 'language_model', 'model']);
    expect(await tab.page.$('.cell[data-path="language_model.model.layers.{0,1}.mlp.up_proj.weight"]')).not.toBeNull();
    await tab.page.click('.crumbs button[data-path=""]');
    expect((await drawnTotals())[0]).toMatchObject({ focus: '', params: 95024 });
    expectClean(pages.single);
  });

  it('a split artifact: its three graphs side by side, each drawing its own parameters', async () => {
    await tab.open(pages.split);
    const m = manifestOf(dirs.split);
    const data = await pageData<View>('vlmc-view');
    expect(data.total).toBe(m.counts.total);
    expect(await headerTotal()).toContain(`${m.counts.total.toLocaleString('en-US')} parameters`);
    const drawn = await drawnTotals();
    expect(drawn.map((d) => d.panel)).toEqual(['vision', 'embedding', 'decoder']);
    expect(drawn.map((d) => [d.params, d.inside])).toEqual(data.panels.map((p) => [p.root!.params, p.root!.params]));
    expectClean(pages.split);
    await tab.screenshot('view-split');
  });

  it('a training artifact: what the gradient graph covers beside the model', async () => {
    await tab.open(pages.train);
    await tab.screenshot('view-train', { docs: true });
    const m = manifestOf(dirs.train);
    expect((await drawnTotals()).map((d) => [d.panel, d.params, d.trainable])).toEqual([
      ['model', m.counts.total, m.counts.trainable],
      ['train', m.counts.total, m.counts.trainable],
    ]);
    // Zoomed into the projector, every parameter train.onnx computes a gradient for is drawn, marked.
    const mlp1 = (await (await tab.page.$('.panel[data-panel="train"] .cell[data-path="mlp1"]'))!.boundingBox())!;
    await tab.page.mouse.click(mlp1.x + 8, mlp1.y + 6);
    const grads = await tab.page.$$eval('.panel[data-panel="train"] .cell.g', (cs) => cs.map((c) => (c as HTMLElement).dataset.path));
    expect(grads.sort()).toEqual(m.train!.trainable.map((t) => t.name).sort());
    expect((await drawnTotals()).map((d) => d.focus)).toEqual(['', 'mlp1']);
    expect(await tab.page.$eval('header', (h) => h.textContent)).toContain('train.onnx computes gradients for 6 tensors (8,800 parameters)');
    expectClean(pages.train);
  });

  it('a checkpoint folder draws what the artifact built from it draws', async () => {
    await tab.open(pages.checkpoint);
    const fromCheckpoint = await drawnTotals();
    expectClean(pages.checkpoint);
    await tab.open(pages.single);
    expect(fromCheckpoint).toEqual(await drawnTotals());
  });

  it('the 78B release graph: under 2 MB, drawn in under 2 s, 80 LLM layers as one folded node', async () => {
    expect(statSync(pages.large).size).toBeLessThan(2 * 1024 * 1024);
    const ms = await tab.open(pages.large);
    const rendered = await tab.page.evaluate(() => performance.getEntriesByName('vlmc-rendered')[0]!.startTime);
    expect(rendered).toBeLessThan(2000);
    expect(ms).toBeLessThan(2000);
    const data = await pageData<View>('vlmc-view');
    expect([data.total, data.trainable]).toEqual([78408318336, 72871822336]);
    expect((await drawnTotals())[0]).toMatchObject({ params: data.total, inside: data.total, trainable: data.trainable, insideTrainable: data.trainable });
    expect(await tab.page.$('.cell[data-path="language_model.model.layers.{0..79}"]')).not.toBeNull();
    expectClean(pages.large);
    await tab.screenshot('view-internvl2_5-78b', { docs: true });
  });
});

describe('vlmc diff --format html in Chromium', () => {
  it('both pictures with the changes marked, the text beside them, zoom moving both', async () => {
    await tab.open(pages.diff);
    const data = await pageData<{ a: View; b: View }>('vlmc-diff');
    expect(await drawnTotals()).toEqual([
      { panel: 'a', focus: '', params: data.a.total, trainable: data.a.trainable, inside: data.a.total, insideTrainable: data.a.trainable },
      { panel: 'b', focus: '', params: data.b.total, trainable: data.b.trainable, inside: data.b.total, insideTrainable: data.b.trainable },
    ]);
    expect(await tab.page.$$eval('.panel[data-panel="b"] .cell.m-added', (cs) => cs.map((c) => (c as HTMLElement).dataset.path))).toEqual(['language_model.model.embed_tokens.lm_head']);
    expect(await tab.page.$$eval('.panel[data-panel="b"] .cell.m-retyped', (cs) => cs.length)).toBe(7);
    expect(await tab.page.$eval('#vlmc-diff-text pre', (e) => e.textContent)).toMatch(/^vlmc diff: out\/qwen2-tiny -> out\/qwen2-tiny-int4\n/);
    const at = await centre('.panel[data-panel="b"] .cell[data-path="language_model.model.layers.{0,1}.mlp.up_proj.weight"]');
    await tab.page.mouse.move(at.x, at.y);
    await tab.page.waitForSelector('#tip.on');
    expect(await tab.page.$eval('#tip', (e) => e.textContent)).toContain('stored float32 → float32 as int4-symmetric, block 32');
    await tab.screenshot('diff', { docs: true });
    const layer = (await (await tab.page.$('.panel[data-panel="a"] .cell[data-path="language_model.model"]'))!.boundingBox())!;
    await tab.page.mouse.click(layer.x + 8, layer.y + 6);
    expect((await drawnTotals()).map((d) => d.focus)).toEqual(['language_model.model', 'language_model.model']);
    expectClean(pages.diff);
  });
});

describe('the browser itself', () => {
  it('missing, the tests fail saying how to install it', async () => {
    await expect(launchChromium('/nonexistent/chromium')).rejects.toThrow(missingChromium('/nonexistent/chromium'));
    expect(missingChromium('/x')).toContain('apt-get install -y chromium');
  });
});
