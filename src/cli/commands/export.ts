/** `vlmc export`: an original-layout checkpoint rewritten (Hugging Face layout, or LoRA merged). */
import { Option, type Command } from 'commander';
import { UserError } from '../../errors.ts';
import { collect } from '../options.ts';
import type { CommandContext } from '../context.ts';

export function registerExport(cli: Command, { say }: CommandContext): void {
  cli
    .command('export')
    .description("rewrite an original-layout InternVL checkpoint: in another layout (--layout hf: transformers' InternVLForConditionalGeneration), or with its LoRA merged (--merge-lora)")
    .argument('<checkpoint>', 'InternVL checkpoint folder in the original layout (InternVLChatModel)')
    .addOption(new Option('--layout <layout>', 'layout to write').choices(['hf']))
    .addOption(new Option('--spelling <spelling>', 'key spelling of the hf layout').choices(['transformers-4', 'transformers-5']).default('transformers-4'))
    .option('--merge-lora', 'merge the LoRA of a checkpoint saved with LoRA unmerged (and of --adapter) into plain weights, as tools/merge_lora.py')
    .option('--adapter <dir>', 'with --merge-lora: a PEFT LoRA adapter folder merged as well; repeatable', collect)
    .requiredOption('--out <dir>', 'checkpoint folder to write')
    .action(async (checkpoint: string, o) => {
      if (Boolean(o.mergeLora) === (o.layout !== undefined)) throw new UserError('vlmc export: give either --layout hf or --merge-lora');
      if (o.adapter && !o.mergeLora) throw new UserError('--adapter belongs to --merge-lora (vlmc export --layout hf converts the checkpoint as it is)');
      if (o.mergeLora) {
        const { exportMergedLora } = await import('../../export/merge-lora.ts');
        const r = await exportMergedLora({ checkpoint, adapters: o.adapter, out: o.out });
        say(`${r.out}: ${r.tensors} tensors, LoRA merged into ${r.merged} weights`);
        return;
      }
      const { exportHF } = await import('../../export/hf.ts');
      const r = await exportHF({ checkpoint, out: o.out, spelling: o.spelling });
      say(`${r.out}: ${r.tensors} tensors in the Hugging Face layout (${o.spelling} keys)`);
    });
}
