/**
 * The name `vlmc init` gives a graph: the checkpoint's own name, not whatever its folder happens to
 * be called. From the config's `_name_or_path` (`OpenGVLab/InternVL2_5-1B` -> `InternVL2_5-1B`),
 * else from the folder, skipping generic folder names (`unified`, `checkpoint`, a Hugging Face
 * cache snapshot hash ...) for the folder above. Kept as the checkpoint spells it.
 */
import * as nodePath from 'node:path';

/** Folder names that say where a checkpoint is kept, not what it is. */
const GENERIC = new Set(['unified', 'checkpoint', 'checkpoints', 'model', 'models', 'weights', 'hf', 'huggingface', 'snapshots', 'latest', 'final', 'export', 'output', 'out', 'llm', 'vision', 'pretrained', 'main']);

export function checkpointName(dir: string, config: Record<string, unknown>): string {
  const own = typeof config._name_or_path === 'string' ? lastSegment(config._name_or_path) : '';
  const name = own !== '' && !isGeneric(own) ? own : folderName(dir);
  return toGraphName(name);
}

function folderName(dir: string): string {
  let d = nodePath.resolve(dir);
  for (;;) {
    const base = nodePath.basename(d);
    const parent = nodePath.dirname(d);
    // The Hugging Face hub cache: models--<org>--<name>/snapshots/<commit>
    const hub = /^models--[^-].*?--(.+)$/.exec(base);
    if (hub) return hub[1]!;
    if (!isGeneric(base) || parent === d) return base;
    d = parent;
  }
}

function isGeneric(name: string): boolean {
  return GENERIC.has(name.toLowerCase()) || /^[0-9a-f]{40}$/.test(name) || /^checkpoint-\d+$/.test(name);
}

function lastSegment(s: string): string {
  return s.replace(/[\\/]+$/, '').split(/[\\/]/).pop() ?? '';
}

/** Letters, digits, '.', '_', '-' (what `--name` accepts); anything else becomes '-'. */
function toGraphName(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  return cleaned === '' ? 'model' : cleaned;
}
