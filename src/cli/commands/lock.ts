/** `vlmc lock`: graph locks written or checked. */
import { type Command } from 'commander';
import { existsSync, readdirSync } from 'node:fs';
import * as nodePath from 'node:path';
import { UserError } from '../../errors.ts';
import type { CommandContext } from '../context.ts';

export function registerLock(cli: Command, { say, invocation }: CommandContext): void {
  cli
    .command('lock')
    .description('write graphs/<x>.graph.lock beside each graph (all of graphs/ by default)')
    .argument('[graphs...]', 'graph files')
    .option('--check', 'write nothing; exit 1 when any lock is stale or missing')
    .action(async (graphs: string[], o) => {
      const { checkLocks, writeLock } = await import('../../review/index.ts');
      const files = graphs.length > 0 ? graphs : projectGraphs();
      if (o.check) {
        const { stale, missing } = await checkLocks(files);
        for (const f of stale) say(`stale    ${f}`);
        for (const f of missing) say(`missing  ${f}`);
        if (stale.length + missing.length > 0) {
          say('run `npx vlmc lock` and commit the result');
          invocation.exitCode = 1;
        } else say(`${files.length} lock${files.length === 1 ? '' : 's'} up to date`);
        return;
      }
      for (const f of files) {
        const { path, changed } = await writeLock(f);
        say(`${changed ? 'wrote    ' : 'unchanged'} ${path}`);
      }
    });
}

/** The project's own graph files (graphs/*.ts). */
function projectGraphs(): string[] {
  if (!existsSync('graphs')) throw new UserError('no graph files given, and there is no graphs/ folder here to take them from');
  return readdirSync('graphs')
    .filter((f) => f.endsWith('.ts'))
    .sort()
    .map((f) => nodePath.join('graphs', f));
}
