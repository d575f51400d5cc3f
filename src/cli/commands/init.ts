/** `vlmc init`: a graph file (and its lock) that reproduces a checkpoint. */
import { Option, type Command } from 'commander';
import { int, positiveNumber } from '../options.ts';
import type { CommandContext } from '../context.ts';

export function registerInit(cli: Command, { say }: CommandContext): void {
  cli
    .command('init')
    .description('write a graph file that reproduces a checkpoint\'s architecture')
    .option('--from <dir>', 'Path A: unified InternVL checkpoint folder')
    .option('--vision <dir>', 'Path B: standalone InternViT checkpoint folder')
    .option('--llm <dir>', 'Path B: standalone LLM checkpoint folder')
    .option('--name <name>', 'graph name (default: the checkpoint\'s own name, from its config or folder)')
    .option('--out <file>', 'graph file to write (default: graphs/<name>.ts)')
    .option('--force', 'overwrite an existing file')
    .option('--downsample-ratio <r>', 'projector pixel-shuffle ratio (Path B)', positiveNumber('--downsample-ratio'))
    .addOption(new Option('--ps-version <v>', 'pixel shuffle version (Path B)').choices(['v1', 'v2']))
    .option('--select-layer <n>', 'ViT hidden state fed to the projector (Path B)', int('--select-layer'))
    .option('--force-image-size <n>', 'tile size fed to the ViT (Path B)', int('--force-image-size'))
    .option('--img-context-token-id <id>', 'id of <IMG_CONTEXT> when the tokenizer files do not name it', int('--img-context-token-id'))
    .action(async (o) => {
      const { init } = await import('../../init/init.ts');
      const file = await init({ ...o, imageSize: o.forceImageSize });
      const { lockPathFor } = await import('../../review/lock.ts');
      say(`wrote ${file}`);
      say(`wrote ${lockPathFor(file)}`);
    });
}
