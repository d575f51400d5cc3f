/** `vlmc view`: a model drawn as one self-contained HTML page. */
import { type Command } from 'commander';
import type { CommandContext } from '../context.ts';

export function registerView(cli: Command, { say }: CommandContext): void {
  cli
    .command('view')
    .description('draw a model as one self-contained HTML page: its module tree as a zoomable treemap sized by parameter count')
    .argument('<model>', 'graph file, artifact folder (single, split or --train), checkpoint folder, .onnx file, or REV:graph')
    .requiredOption('--out <file>', 'the HTML page to write')
    .action(async (model: string, o) => {
      const { writeView } = await import('../../review/view/index.ts');
      const view = await writeView(model, o.out);
      const trainable = view.trainable === undefined ? 'freeze state unknown' : `${view.trainable.toLocaleString('en-US')} trainable`;
      say(`${o.out}: ${view.total.toLocaleString('en-US')} parameters (${trainable}), ${view.tensors} tensors, ${view.panels.length} panel${view.panels.length === 1 ? '' : 's'}`);
    });
}
