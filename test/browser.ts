/**
 * A real headless browser for the page tests: Debian's Chromium (`apt-get install chromium`, which
 * .ci/run does) driven by puppeteer-core; nothing is downloaded. Without it the tests fail with the
 * install line, they do not skip.
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { ROOT } from './helpers.ts';

/** The browser; VLMC_CHROMIUM points elsewhere (another Chromium or Chrome). */
export const CHROMIUM = process.env.VLMC_CHROMIUM ?? '/usr/bin/chromium';

export const missingChromium = (file: string): string =>
  `the browser tests need Chromium at ${file}: install it with \`apt-get install -y chromium\` (Debian/Ubuntu), or set VLMC_CHROMIUM to a Chromium or Chrome executable`;

/** Where the tests keep their screenshots (git-ignored); VLMC_UPDATE_DOCS_IMAGES=1 also copies the README's to docs/img. */
export const SCREENSHOTS = path.join(ROOT, 'test-results', 'screenshots');

export async function launchChromium(file = CHROMIUM): Promise<Browser> {
  if (!existsSync(file)) throw new Error(missingChromium(file));
  // --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start.
  return puppeteer.launch({ executablePath: file, headless: true, args: ['--no-sandbox', '--disable-gpu', '--font-render-hinting=none'] });
}

/** One page, reused by every test of a file, recording console errors and every request it makes. */
export interface Tab {
  page: Page;
  errors: string[];
  requests: string[];
  /** Loads a local page and waits until its script has drawn it; returns the milliseconds that took. */
  open(file: string): Promise<number>;
  /** Saves a screenshot as `<name>.png` under SCREENSHOTS; `docs`: one the README shows (docs/img). */
  screenshot(name: string, options?: { docs?: boolean }): Promise<string>;
}

export async function openTab(browser: Browser, viewport = { width: 1280, height: 760 }): Promise<Tab> {
  const page = await browser.newPage();
  await page.setViewport(viewport);
  const tab: Tab = {
    page,
    errors: [],
    requests: [],
    async open(file) {
      tab.errors.length = 0;
      tab.requests.length = 0;
      const start = Date.now();
      await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
      await page.waitForSelector('html[data-rendered]', { timeout: 10_000 });
      return Date.now() - start;
    },
    async screenshot(name, options = {}) {
      mkdirSync(SCREENSHOTS, { recursive: true });
      const file = path.join(SCREENSHOTS, `${name}.png`);
      await page.screenshot({ path: file as `${string}.png` });
      if (options.docs && process.env.VLMC_UPDATE_DOCS_IMAGES === '1') copyFileSync(file, path.join(ROOT, 'docs', 'img', `${name}.png`));
      return file;
    },
  };
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warn') tab.errors.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => tab.errors.push(`pageerror: ${String(e)}`));
  page.on('requestfailed', (r) => tab.errors.push(`request failed: ${r.url()}`));
  page.on('request', (r) => tab.requests.push(r.url()));
  return tab;
}
