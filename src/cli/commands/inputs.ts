/** `vlmc inputs`: images and questions made into the tensors run and generate take. */
import { type Command } from 'commander';
import { collect, withRequestOptions, requestOptionsOf } from '../options.ts';
import type { CommandContext } from '../context.ts';

export function registerInputs(cli: Command, { say }: CommandContext): void {
  const command = cli
    .command('inputs')
    .description('image(s) + question -> the tensors vlmc run / generate take (InternVL preprocessing, template, tokenizer)')
    .requiredOption('--checkpoint <dir>', 'checkpoint folder, artifact, or a folder with config.json and the tokenizer files')
    .requiredOption('--prompt <text>', 'the question; repeatable (one batch row each, right-padded)', collect);
  withRequestOptions(command)
    .requiredOption('--out <file>', 'safetensors file to write')
    .action(async (o) => {
      const { readHistoryFile, writeInputs } = await import('../../inputs/index.ts');
      const { history, ...request } = requestOptionsOf(o);
      const r = await writeInputs({ checkpoint: o.checkpoint, images: o.image, prompts: o.prompt, history: history === undefined ? undefined : readHistoryFile(history), ...request, out: o.out });
      const [rows, seq] = r.inputs.input_ids.shape;
      say(`${o.out}: input_ids [${rows}, ${seq}], pixel_values [${r.inputs.pixel_values.shape.join(', ')}], template ${r.config.template.name}, eos ${r.eosTokenId}`);
      for (const im of r.images) say(`  ${im.file}: ${im.width}x${im.height} -> ${im.grid[0]}x${im.grid[1]} grid, ${im.tiles} tiles`);
    });
}
