/** `vlmc demo` (npm start): the default run on a random tiny checkpoint. */
import { type Command } from 'commander';
import type { CommandContext } from '../context.ts';

export function registerDemo(cli: Command, { say }: CommandContext): void {
  cli
    .command('demo')
    .description('the default run: random tiny checkpoint -> build graphs/internvl-tiny.ts -> one forward')
    .option('--out <dir>', 'where to put the checkpoint and artifact', 'out')
    .action(async (o) => {
      const { demo } = await import('../../demo.ts');
      const report = await demo(o.out);
      for (const line of report.lines) say(line);
    });
}
