/**
 * A graph file at a git revision (`vlmc diff HEAD~1:graphs/x.ts ...`), compiled with the project
 * files of that revision: its helper files, and the zoo when the repository is vlmc itself. A change
 * anywhere the graph depends on shows, as `vlmc lock --check` would see it at that revision.
 *
 * `git archive REV` is unpacked into a temporary folder that shares the installed node_modules
 * (the repository's, else this copy's) and is removed afterwards, also when compiling fails. When
 * the revision's tree is the vlmc package itself, its own vlmc compiles the graph, in a child
 * process (one zoo per process: the current one may already be loaded); otherwise the running vlmc
 * compiles it here.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, extname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { UserError } from '../errors.ts';
import type { GraphSummary } from './types.ts';

const GRAPH_EXTENSIONS = new Set(['.ts', '.mts', '.js', '.mjs']);

/** Where this copy of vlmc is installed (the package root). */
const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export async function summaryAtRevision(rev: string, path: string, cwd: string, load: (file: string) => Promise<GraphSummary>): Promise<GraphSummary> {
  const label = `${rev}:${path}`;
  if (rev.startsWith('-')) throw new UserError(`${label}: '${rev}' is not a git revision`);
  if (!GRAPH_EXTENSIONS.has(extname(path))) throw new UserError(`${label}: only graph files (.ts) can be read from a git revision`);
  const top = runGit(['rev-parse', '--show-toplevel'], cwd, label).toString('utf8').trim();
  // git reads `REV:path` relative to the repository root unless it starts with ./ or ../
  const repoPath = /^\.\.?\//.test(path) ? relative(top, resolve(cwd, path)) : path;
  if (repoPath.startsWith('..') || isAbsolute(repoPath)) throw new UserError(`${label}: the path lies outside the git repository`);
  runGit(['cat-file', '-e', `${rev}:${repoPath}`], top, label);
  const tree = mkdtempSync(join(tmpdir(), 'vlmc-rev-'));
  try {
    unpackRevision(rev, top, tree, label);
    linkNodeModules(top, tree);
    const graph = join(tree, repoPath);
    return isVlmcPackage(tree) ? await summaryInChild(tree, graph, label) : await load(graph);
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
}

function unpackRevision(rev: string, top: string, tree: string, label: string): void {
  const tar = runGit(['archive', '--format=tar', rev], top, label);
  const r = spawnSync('tar', ['-x', '-C', tree], { input: tar, stdio: ['pipe', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new UserError(`${label}: could not unpack the revision (tar: ${String(r.stderr ?? r.error).trim()})`);
}

/**
 * The revision's tree uses the installed dependencies: the repository's node_modules, else this
 * copy's. A node_modules folder the revision itself holds stays; a link it tracked (to some
 * checkout's folder, perhaps gone) is replaced.
 */
function linkNodeModules(top: string, tree: string): void {
  const own = join(tree, 'node_modules');
  if (isRealFolder(own)) return;
  rmSync(own, { force: true });
  const installed = [join(top, 'node_modules'), join(PACKAGE_ROOT, 'node_modules')].find((d) => existsSync(d));
  if (installed) symlinkSync(realpathSync(installed), own, 'dir');
}

function isRealFolder(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}

function isVlmcPackage(tree: string): boolean {
  try {
    return (JSON.parse(readFileSync(join(tree, 'package.json'), 'utf8')) as { name?: unknown }).name === 'vlmc';
  } catch {
    return false;
  }
}

/**
 * Compiles the graph with the revision's own vlmc in a child process: tsx and the graph-file hooks,
 * `vlmc` mapped to the revision's entry point, its `loadGraphSummary`; the summary comes back as JSON.
 */
async function summaryInChild(tree: string, graph: string, label: string): Promise<GraphSummary> {
  const entry = pathToFileURL(createRequire(join(tree, 'package.json')).resolve('vlmc')).href;
  const tsx = pathToFileURL(createRequire(join(PACKAGE_ROOT, 'package.json')).resolve('tsx')).href;
  const hooks = new URL('../loader/graph-hooks.mjs', import.meta.url).href;
  const script = [
    "import { register } from 'node:module';",
    `register(${JSON.stringify(hooks)}, { data: { vlmcEntry: ${JSON.stringify(entry)} } });`,
    `const vlmc = await import(${JSON.stringify(entry)});`,
    "if (typeof vlmc.loadGraphSummary !== 'function') { process.stderr.write('this revision of vlmc cannot summarise graphs (no loadGraphSummary)'); process.exit(2); }",
    'try {',
    `  process.stdout.write(JSON.stringify(await vlmc.loadGraphSummary(${JSON.stringify(graph)})));`,
    '} catch (e) {',
    "  process.stderr.write(String(e?.message ?? e).split(String(" + JSON.stringify(tree + '/') + ")).join(''));",
    "  process.exit(e?.name === 'UserError' || e?.name === 'GraphError' || e?.name === 'CheckpointError' ? 2 : 1);",
    '}',
  ].join('\n');
  const r = spawnSync(process.execPath, ['--import', tsx, '--input-type=module', '-e', script], { cwd: tree, encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new UserError(`${label}: could not compile the graph at that revision: ${(r.stderr || String(r.error)).trim()}`);
  return JSON.parse(r.stdout) as GraphSummary;
}

function runGit(args: string[], cwd: string, label: string): Buffer {
  try {
    return execFileSync('git', args, { cwd, maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const stderr = String((e as { stderr?: unknown }).stderr ?? '').trim();
    throw new UserError(`${label}: git ${args[0]} failed${stderr ? `: ${stderr}` : ` (${(e as Error).message})`}`);
  }
}
