/** `vlmc generate`: text from a split artifact, streamed. */
import { type Command } from 'commander';
import { int, nonNegativeNumber, collect, executionProviderOption, withRequestOptions, requestOptionsOf } from '../options.ts';
import type { CommandContext } from '../context.ts';

export function registerGenerate(cli: Command, { io }: CommandContext): void {
  const command = cli
    .command('generate')
    .description('generate text with a split artifact (vlmc build --split) and the KV cache, streamed to stdout: greedy, or sampled with --temperature; a prompt needs no image')
    .argument('<artifact>', 'split artifact folder')
    .option('--inputs <file>', 'safetensors with pixel_values, input_ids, and optionally image_flags (default: every tile counts) and attention_mask (right padding)')
    .option('--prompt <text>', 'the question (an image is optional); repeatable, one batch row each', collect);
  withRequestOptions(command)
    .option('--max-new-tokens <n>', 'tokens to generate at most, per row (stops earlier at the model\'s context length)', int('--max-new-tokens'), 32)
    .option('--ignore-eos', 'do not stop at eos')
    .option('--temperature <t>', 'sample at this temperature (default 0: greedy)', nonNegativeNumber('--temperature'))
    .option('--top-k <k>', 'with --temperature: sample from the k most likely tokens', int('--top-k'))
    .option('--seed <n>', 'with --temperature: sampling seed (default 0)', int('--seed'))
    .option('--out <file>', 'safetensors to write tokens I64 [batch, N] and logits F32 [batch, N, vocab] to')
    .option('--json', 'print one JSON object (steps, tokens, text) instead of streaming')
    .addOption(executionProviderOption())
    .option('--adapter <dir>', 'a PEFT LoRA adapter folder fed to an artifact built with --lora-inputs; repeatable: one per part', collect)
    .action(async (artifact: string, o) => {
      const { generateCommand } = await import('../../generate/cli.ts');
      await generateCommand({
        artifact,
        inputs: o.inputs,
        image: o.image,
        prompt: o.prompt,
        request: requestOptionsOf(o),
        out: o.out,
        json: Boolean(o.json),
        maxNewTokens: o.maxNewTokens,
        ignoreEos: Boolean(o.ignoreEos),
        temperature: o.temperature,
        topK: o.topK,
        seed: o.seed,
        ep: o.ep,
        adapters: o.adapter,
        onNotice: (m) => io.stderr.write(`vlmc: ${m}\n`),
        write: (s) => io.stdout.write(s),
      });
    });
}
