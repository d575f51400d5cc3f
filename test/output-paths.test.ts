/**
 * Defect 1 of issue 8: a writing command may only write to a missing path or replace an earlier
 * vlmc output of the same kind; anything else exits 2 naming the path and touches nothing.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { FIXTURES, ROOT, removeDir, tempDir, vlmc, vlmcInProcess } from './helpers.ts';
import { checkOutputPath, isInside, realish } from '../src/fs/output-path.ts';
import { TEMP_MARK, removeStaleSiblings, withTempSibling } from '../src/fs/atomic.ts';
import { fileSystemUserError } from '../src/fs/errors.ts';
import { UserError } from '../src/errors.ts';

const work = tempDir('vlmc-outpaths-');
afterAll(() => removeDir(work));
const unified = path.join(FIXTURES, 'qwen2-tiny', 'unified');
const inputs = path.join(FIXTURES, 'qwen2-tiny', 'inputs.safetensors');

/** Every file under `dir` with its bytes, to prove nothing changed. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out[path.relative(dir, p)] = readFileSync(p).toString('base64');
    }
  };
  walk(dir);
  return out;
}

function expectRefused(r: { status: number; stderr: string }, ...parts: string[]): void {
  expect(r.status).toBe(2);
  expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
  expect(r.stderr).not.toContain('internal error');
  for (const p of parts) expect(r.stderr).toContain(p);
}

let artifact: string;
beforeAll(async () => {
  artifact = path.join(work, 'artifact');
  const r = await vlmcInProcess(['build', '--weights', unified, '--out', artifact]);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
});

describe('vlmc build --out', () => {
  it('`--out .` in a checkout is refused and leaves the checkout as it was', async () => {
    const checkout = path.join(work, 'checkout');
    mkdirSync(path.join(checkout, '.git'), { recursive: true });
    writeFileSync(path.join(checkout, '.git', 'HEAD'), 'ref: refs/heads/main\n');
    writeFileSync(path.join(checkout, 'notes.txt'), 'uncommitted work\n');
    const before = snapshot(checkout);
    expectRefused(await vlmcInProcess(['build', '--weights', unified, '--out', '.'], checkout), '--out .', 'not a vlmc artifact', '.git');
    expect(snapshot(checkout)).toEqual(before);
  });

  it('a user folder is refused, its files kept', async () => {
    const folder = path.join(work, 'photos');
    mkdirSync(folder);
    writeFileSync(path.join(folder, 'a.jpg'), 'jpeg bytes');
    expectRefused(await vlmcInProcess(['build', '--weights', unified, '--out', folder]), folder, 'a.jpg');
    expect(snapshot(folder)).toEqual({ 'a.jpg': Buffer.from('jpeg bytes').toString('base64') });
  });

  it('a plain file is refused and stays a file', async () => {
    const file = path.join(work, 'plain.txt');
    writeFileSync(file, 'keep me');
    expectRefused(await vlmcInProcess(['build', '--weights', unified, '--out', file]), file, 'is a file');
    expect(readFileSync(file, 'utf8')).toBe('keep me');
  });

  it('the input checkpoint itself, or a folder inside it, is refused', async () => {
    const ckpt = path.join(work, 'ckpt-copy');
    cpSync(unified, ckpt, { recursive: true });
    const before = snapshot(ckpt);
    expectRefused(await vlmcInProcess(['build', '--weights', ckpt, '--out', ckpt]), 'is the input');
    expectRefused(await vlmcInProcess(['build', '--weights', ckpt, '--out', path.join(ckpt, 'out')]), 'inside the input folder');
    expect(snapshot(ckpt)).toEqual(before);
  });

  it('an output containing the input is refused', async () => {
    const parent = path.join(work, 'holder');
    cpSync(unified, path.join(parent, 'ckpt'), { recursive: true });
    expectRefused(await vlmcInProcess(['build', '--weights', path.join(parent, 'ckpt'), '--out', parent]), 'contains the input');
  });

  it('a symbolic link cannot hide that the output lies inside the input', async () => {
    const ckpt = path.join(work, 'ckpt-linked');
    cpSync(unified, ckpt, { recursive: true });
    const link = path.join(work, 'link-to-ckpt');
    symlinkSync(ckpt, link);
    expectRefused(await vlmcInProcess(['build', '--weights', ckpt, '--out', path.join(link, 'sub')]), 'inside the input folder');
    expectRefused(await vlmcInProcess(['build', '--weights', link, '--out', path.join(ckpt, 'sub')]), 'inside the input folder');
    expect(existsSync(path.join(ckpt, 'sub'))).toBe(false);
  });

  it('a graph file inside the output is refused', async () => {
    const dir = path.join(work, 'graphdir');
    mkdirSync(dir);
    cpSync(path.join(ROOT, 'graphs', 'internvl-tiny.ts'), path.join(dir, 'g.ts'));
    expectRefused(await vlmcInProcess(['build', path.join(dir, 'g.ts'), '--out', dir]), 'contains the input');
  });

  it('an earlier artifact is replaced', async () => {
    const out = path.join(work, 'rebuilt');
    expect((await vlmcInProcess(['build', '--weights', unified, '--out', out])).status).toBe(0);
    const first = readFileSync(path.join(out, 'manifest.json'), 'utf8');
    const r = await vlmcInProcess(['build', '--weights', unified, '--out', out, '--dtype', 'fp16']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(readFileSync(path.join(out, 'manifest.json'), 'utf8')).not.toBe(first);
    expect(readdirSync(out).sort()).toEqual(['manifest.json', 'model.onnx', 'model.onnx.data']);
    expect(readdirSync(work).filter((n) => n.startsWith('rebuilt.'))).toEqual([]);
  });

  it('an earlier artifact that also holds a user file is refused (that file would go)', async () => {
    const out = path.join(work, 'with-extra');
    cpSync(artifact, out, { recursive: true });
    writeFileSync(path.join(out, 'README.md'), 'my notes');
    expectRefused(await vlmcInProcess(['build', '--weights', unified, '--out', out]), 'README.md', 'other files');
    expect(readFileSync(path.join(out, 'README.md'), 'utf8')).toBe('my notes');
  });

  it('a failing build leaves the earlier artifact unchanged', async () => {
    const out = path.join(work, 'kept');
    cpSync(artifact, out, { recursive: true });
    const before = snapshot(out);
    const r = await vlmcInProcess(['build', '--weights', path.join(work, 'no-such-ckpt'), '--out', out]);
    expect(r.status).toBe(2);
    expect(snapshot(out)).toEqual(before);
  });

  it('a parent that is a file, and a name too long, are exit 2 naming the path', async () => {
    const file = path.join(work, 'afile');
    writeFileSync(file, 'x');
    expectRefused(await vlmcInProcess(['build', '--weights', unified, '--out', path.join(file, 'out')]), 'afile is a file, not a folder');
    const long = path.join(work, 'n'.repeat(300));
    expectRefused(await vlmcInProcess(['build', '--weights', unified, '--out', long]), 'name is too long');
  });

  it('a folder vlmc cannot write is exit 2 naming it', async () => {
    // /sys refuses new entries in containers and on hosts alike (EPERM / EACCES / EROFS).
    const target = '/sys/vlmc-test-output';
    const r = await vlmcInProcess(['build', '--weights', unified, '--out', target]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('/sys');
    expect(r.stderr).not.toContain('internal error');
  });
});

describe('vlmc run --out', () => {
  it('writes a marked result file and replaces it on the next run', async () => {
    const out = path.join(work, 'result.safetensors');
    expect((await vlmcInProcess(['run', artifact, '--inputs', inputs, '--out', out])).status).toBe(0);
    expect(readFileSync(out).subarray(8, 200).toString()).toContain('"__metadata__":{"vlmc":"outputs"}');
    // A process of its own: its stderr is the whole process's, onnxruntime's native logging included.
    const r = vlmc(['run', artifact, '--inputs', inputs, '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    // Missing parent folders are created, as for build.
    expect((await vlmcInProcess(['run', artifact, '--inputs', inputs, '--out', path.join(work, 'new', 'sub', 'r.safetensors')])).status).toBe(0);
  });

  it('refuses a file vlmc did not write, a folder, the inputs file and a path inside the artifact', async () => {
    const plain = path.join(work, 'user.safetensors');
    cpSync(inputs, plain);
    const before = readFileSync(plain);
    expectRefused(await vlmcInProcess(['run', artifact, '--inputs', inputs, '--out', plain]), plain, 'vlmc did not write');
    expect(readFileSync(plain).equals(before)).toBe(true);
    const folder = path.join(work, 'a-folder');
    mkdirSync(folder);
    expectRefused(await vlmcInProcess(['run', artifact, '--inputs', inputs, '--out', folder]), 'is a folder');
    const inputsCopy = path.join(work, 'inputs-copy.safetensors');
    cpSync(inputs, inputsCopy);
    expectRefused(await vlmcInProcess(['run', artifact, '--inputs', inputsCopy, '--out', inputsCopy]), 'is the input');
    expectRefused(await vlmcInProcess(['run', artifact, '--inputs', inputs, '--out', path.join(artifact, 'out.safetensors')]), 'inside the input folder');
    expect(readdirSync(artifact).sort()).toEqual(['manifest.json', 'model.onnx', 'model.onnx.data']);
  });
});

describe('vlmc init --out and vlmc lock', () => {
  it('init keeps --force semantics, refuses a folder and the checkpoint folder', async () => {
    const graph = path.join(work, 'g-init.ts');
    writeFileSync(graph, '// mine\n');
    expectRefused(await vlmcInProcess(['init', '--from', unified, '--out', graph]), 'pass --force');
    expect(readFileSync(graph, 'utf8')).toBe('// mine\n');
    expect((await vlmcInProcess(['init', '--from', unified, '--out', graph, '--force'])).status).toBe(0);
    expect(readFileSync(graph, 'utf8')).toContain("from 'vlmc'");
    expectRefused(await vlmcInProcess(['init', '--from', unified, '--out', work, '--force']), 'is a folder');
    const ckpt = path.join(work, 'ckpt-init');
    cpSync(unified, ckpt, { recursive: true });
    expectRefused(await vlmcInProcess(['init', '--from', ckpt, '--out', path.join(ckpt, 'g.ts')]), 'inside the input folder');
  });

  it('issue 16 defect 8: init --out at an existing file that is not .ts names the extension, never asks for --force first', async () => {
    const notes = path.join(work, 'existing.txt');
    writeFileSync(notes, 'mine\n');
    expectRefused(await vlmcInProcess(['init', '--from', unified, '--out', notes]), `--out ${notes}: a graph file is TypeScript; give a path ending in .ts`);
    expectRefused(await vlmcInProcess(['init', '--from', unified, '--out', notes, '--force']), 'give a path ending in .ts');
    expect(readFileSync(notes, 'utf8')).toBe('mine\n');
  });

  it('lock refuses to replace a file that is not a lock', async () => {
    const dir = path.join(ROOT, 'out', `test-outpaths-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    try {
      cpSync(path.join(ROOT, 'graphs', 'internvl-tiny.ts'), path.join(dir, 'g.ts'));
      writeFileSync(path.join(dir, 'g.graph.lock'), 'my own notes\n');
      expectRefused(await vlmcInProcess(['lock', path.join(dir, 'g.ts')]), 'g.graph.lock', 'not a vlmc lock file');
      expect(readFileSync(path.join(dir, 'g.graph.lock'), 'utf8')).toBe('my own notes\n');
    } finally {
      removeDir(dir);
    }
  });
});

describe('issue 16 defect 9: vlmc demo --out', async () => {
  it('checks every path before writing anything: a folder of the user\'s own, or one whose artifact slot holds something else, is refused untouched', async () => {
    const mine = path.join(work, 'demo-mine');
    mkdirSync(mine);
    writeFileSync(path.join(mine, 'notes.txt'), 'mine\n');
    expectRefused(await vlmcInProcess(['demo', '--out', mine]), `--out ${mine}: is a folder vlmc demo did not write (it holds notes.txt)`);
    expect(readdirSync(mine)).toEqual(['notes.txt']);
    // An earlier demo folder whose artifact path now holds a user's folder: nothing is written, the checkpoint included.
    const earlier = path.join(work, 'demo-earlier');
    mkdirSync(earlier);
    writeFileSync(path.join(earlier, '.vlmc-demo'), 'x\n');
    mkdirSync(path.join(earlier, 'internvl-tiny'));
    writeFileSync(path.join(earlier, 'internvl-tiny', 'mine.txt'), 'mine\n');
    const before = snapshot(earlier);
    expectRefused(await vlmcInProcess(['demo', '--out', earlier]), path.join(earlier, 'internvl-tiny'), 'not a vlmc artifact');
    expect(snapshot(earlier)).toEqual(before);
    expect(existsSync(path.join(earlier, 'internvl-tiny-checkpoint'))).toBe(false);
  });

  it('writes a new folder, and writes it again (beside what the walkthrough added)', async () => {
    const out = path.join(work, 'demo-new');
    expect((await vlmcInProcess(['demo', '--out', out])).status).toBe(0);
    writeFileSync(path.join(out, 'in.safetensors'), 'the walkthrough\'s own files may sit beside');
    const first = snapshot(out);
    const again = await vlmcInProcess(['demo', '--out', out]);
    expect(again.stderr).toBe('');
    expect(again.status).toBe(0);
    expect(snapshot(out)).toEqual(first); // same bytes: deterministic
  });
});

describe('vlmc view --out and vlmc diff --format html --out', () => {
  it('a page replaces only a page of its own kind; anything else, and the input, is refused', () => {
    const view = path.join(work, 'view.html');
    const graph = path.join(ROOT, 'graphs', 'internvl-tiny.ts');
    expect(vlmc(['view', graph, '--out', view]).status).toBe(0);
    const mine = path.join(work, 'mine.html');
    writeFileSync(mine, '<!DOCTYPE html>\n<p>mine</p>\n');
    expectRefused(vlmc(['view', graph, '--out', mine]), `--out ${mine}`, 'not a page `vlmc view` wrote');
    expect(readFileSync(mine, 'utf8')).toBe('<!DOCTYPE html>\n<p>mine</p>\n');
    expect(() => checkOutputPath(view, { kind: 'view' })).not.toThrow();
    expect(() => checkOutputPath(view, { kind: 'diff', flag: '--out' })).toThrow(`--out ${view}: is a file, not a page \`vlmc diff\` wrote`);
    expect(() => checkOutputPath(work, { kind: 'view' })).toThrow('is a folder');
    expect(() => checkOutputPath(graph, { kind: 'view', inputs: [graph] })).toThrow('is the input');
  });
});

describe('temporary folders', () => {
  it('stale marked temp folders of dead processes go; unmarked ones and live ones stay', () => {
    const target = path.join(work, 'sweep', 'art');
    mkdirSync(path.dirname(target), { recursive: true });
    const dead = 2 ** 22 + 12345; // above Linux's pid_max default of 4194304: no such process
    const stale = `${target}.tmp-${dead}-abc`;
    const unmarked = `${target}.tmp-${dead}-def`;
    const live = `${target}.tmp-${process.pid}-ghi`;
    for (const d of [stale, unmarked, live]) mkdirSync(d);
    writeFileSync(path.join(stale, TEMP_MARK), `${dead}\n`);
    writeFileSync(path.join(live, TEMP_MARK), `${process.pid}\n`);
    removeStaleSiblings(target);
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(unmarked)).toBe(true);
    expect(existsSync(live)).toBe(true);
  });

  it('an old artifact caught mid-swap goes back into place', () => {
    const target = path.join(work, 'swap', 'art');
    mkdirSync(path.dirname(target), { recursive: true });
    const old = `${target}.old-${2 ** 22 + 999}-x1`;
    cpSync(artifact, old, { recursive: true });
    removeStaleSiblings(target);
    expect(readdirSync(target).sort()).toEqual(['manifest.json', 'model.onnx', 'model.onnx.data']);
    expect(existsSync(old)).toBe(false);
  });

  it('the next build removes what a killed build left', async () => {
    const out = path.join(work, 'after-kill');
    const left = `${out}.tmp-${2 ** 22 + 7}-zz`;
    mkdirSync(left);
    writeFileSync(path.join(left, TEMP_MARK), 'x\n');
    writeFileSync(path.join(left, 'model.onnx.data'), 'partial');
    expect((await vlmcInProcess(['build', '--weights', unified, '--out', out])).status).toBe(0);
    expect(existsSync(left)).toBe(false);
  });

  it('SIGINT and SIGTERM remove the temporary folder', () => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      const target = path.join(work, `sig-${signal}`, 'art');
      const script = [
        `import { withTempSibling } from ${JSON.stringify(path.join(ROOT, 'src/fs/atomic.ts'))};`,
        `await withTempSibling(${JSON.stringify(target)}, async (tmp) => {`,
        `  process.kill(process.pid, '${signal}');`,
        '  await new Promise((r) => setTimeout(r, 5000));',
        '});',
      ].join('\n');
      const file = path.join(work, `sig-${signal}.mts`);
      writeFileSync(file, script);
      const r = spawnSync(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, encoding: 'utf8' });
      expect(r.status).toBe(signal === 'SIGINT' ? 130 : 143);
      expect(readdirSync(path.dirname(target))).toEqual([]);
    }
  });
});

describe('the rules as a library', () => {
  it('checkOutputPath throws UserError and accepts missing paths and earlier artifacts', () => {
    expect(() => checkOutputPath(path.join(work, 'fresh', 'x'), { kind: 'artifact' })).not.toThrow();
    expect(() => checkOutputPath(artifact, { kind: 'artifact' })).not.toThrow();
    expect(() => checkOutputPath(artifact, { kind: 'result' })).toThrow(UserError);
    expect(() => checkOutputPath('', { kind: 'artifact', flag: '--out' })).toThrow('--out: empty path');
  });

  it('withTempSibling leaves nothing behind when filling fails', async () => {
    const target = path.join(work, 'failing', 'art');
    await expect(withTempSibling(target, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(readdirSync(path.dirname(target))).toEqual([]);
  });

  it('file-system errors read as the path and the problem', () => {
    const e = Object.assign(new Error('EROFS: read-only file system'), { code: 'EROFS', syscall: 'mkdir', path: '/x/y' });
    expect(fileSystemUserError(e)?.message).toBe('/x/y: is on a read-only file system (EROFS on mkdir)');
    expect(fileSystemUserError(new Error('plain'))).toBeUndefined();
  });

  it('realish resolves links in the existing prefix', () => {
    const link = path.join(work, 'lnk');
    symlinkSync(artifact, link);
    expect(realish(path.join(link, 'a', 'b'))).toBe(path.join(realish(artifact), 'a', 'b'));
    expect(isInside('/a/b', '/a')).toBe(true);
    expect(isInside('/a', '/a')).toBe(false);
    expect(isInside('/ab', '/a')).toBe(false);
  });
});
