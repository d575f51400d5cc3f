/**
 * Source sites: which line of the user's graph file declared a module, so shape errors point there.
 * A site is an unformatted Error: capturing it is cheap, V8 formats the stack only when read.
 */
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { Site } from './graph.ts';

const SRC_DIR = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

export function captureSite(): Site {
  return { error: new Error('site') };
}

/** `graphs/x.ts:12:5` for the first stack frame outside vlmc's own sources, or undefined. */
export function formatSite(site: Site | undefined): string | undefined {
  const stack = site?.error.stack;
  if (!stack) return undefined;
  for (const line of stack.split('\n').slice(1)) {
    const loc = frameLocation(line);
    if (!loc) continue;
    const file = loc.file.startsWith('file://') ? fileURLToPath(loc.file) : loc.file;
    if (!path.isAbsolute(file) || file.startsWith(SRC_DIR + path.sep) || file.includes(`${path.sep}node_modules${path.sep}`)) continue;
    return `${path.relative(process.cwd(), file)}:${loc.line}:${loc.column}`;
  }
  return undefined;
}

function frameLocation(frame: string): { file: string; line: string; column: string } | undefined {
  const m = /\(?((?:file:\/\/)?[^()\s]+):(\d+):(\d+)\)?\s*$/.exec(frame.trim());
  if (!m || m[1]!.startsWith('node:')) return undefined;
  return { file: m[1]!, line: m[2]!, column: m[3]! };
}
