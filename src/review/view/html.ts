/**
 * The HTML pages: one self-contained file each (styles and script inline, a Content-Security-Policy
 * that forbids every fetch, so nothing is loaded at view time). The data the page draws is in the
 * page as JSON, `<script type="application/json" id="vlmc-view">` (or `id="vlmc-diff"`), for
 * automation as much as for the drawing script. The same input gives the same bytes.
 */
import { readFileSync } from 'node:fs';
import { PAGE_MARKS } from '../../fs/output-path.ts';
import type { GraphDiff } from '../types.ts';
import type { View } from './model.ts';

export const DIFF_VIEW_FORMAT = 'vlmc-diff-view/1';

/** What a diff page draws: both sides' pictures, marked, and the diff itself. */
export interface DiffView {
  format: typeof DIFF_VIEW_FORMAT;
  a: View;
  b: View;
  diff: GraphDiff;
}

export function viewPage(view: View): string {
  return page('view', `vlmc view: ${view.name}`, jsonScript('vlmc-view', view), '');
}

/** `text`: the diff as `vlmc diff` prints it, shown beside the pictures. */
export function diffPage(data: DiffView, text: string): string {
  const aside = `<aside id="vlmc-diff-text"><h2>Summary (vlmc diff)</h2><pre>${escapeHtml(text === '' ? 'No differences.\n' : text)}</pre></aside>\n`;
  return page('diff', `vlmc diff: ${data.a.source.label} → ${data.b.source.label}`, jsonScript('vlmc-diff', data), aside);
}

/** No network at all: inline styles and scripts only; images only as data: URLs. */
const CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:";

function page(kind: keyof typeof PAGE_MARKS, title: string, data: string, body: string): string {
  return [
    `${PAGE_MARKS[kind]}: written by vlmc; \`vlmc ${kind}\` may replace this file -->`,
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="${CSP}">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(title)}</title>`,
    `<style>\n${asset('page.css')}</style>`,
    '</head>',
    '<body>',
    `${body}${data}`,
    `<script>\n${asset('page.js')}</script>`,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

/** JSON inside a script element: `<` escaped, so no string in the data can end the element. */
function jsonScript(id: string, data: unknown): string {
  return `<script type="application/json" id="${id}">${JSON.stringify(data).replace(/</g, '\\u003c')}</script>\n`;
}

function asset(name: string): string {
  return readFileSync(new URL(`./${name}`, import.meta.url), 'utf8');
}

export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
