/** `vlmc train`: the training loop over an artifact built with --train. */
import { type Command } from 'commander';
import { int, positiveNumber, nonNegativeNumber, executionProviderOption } from '../options.ts';
import type { CommandContext } from '../context.ts';

export function registerTrain(cli: Command, { io, say }: CommandContext): void {
  cli
    .command('train')
    .description('train an artifact built with --train: train.onnx + optimizer.onnx (AdamW) over InternVL jsonl data')
    .argument('<artifact>', 'artifact folder from vlmc build --train')
    .requiredOption('--data <jsonl>', 'training samples: {"image": ..., "conversations": [{"from": "human"|"gpt", "value": ...}]} per line')
    .requiredOption('--steps <n>', 'optimizer steps', int('--steps'))
    .requiredOption('--out <dir>', 'where checkpoints go (checkpoint-<step>/, trainer_state.json)')
    .option('--lr <x>', 'learning rate', positiveNumber('--lr'), 1e-4)
    .option('--weight-decay <x>', 'AdamW weight decay (>= 0)', nonNegativeNumber('--weight-decay'), 0)
    .option('--beta1 <x>', 'AdamW beta1 (0 <= beta1 < 1)', nonNegativeNumber('--beta1'), 0.9)
    .option('--beta2 <x>', 'AdamW beta2 (0 <= beta2 < 1)', nonNegativeNumber('--beta2'), 0.999)
    .option('--eps <x>', 'AdamW eps (>= 0)', nonNegativeNumber('--eps'), 1e-8)
    .option('--grad-accum <n>', 'micro-batches per step (gradients averaged)', int('--grad-accum'), 1)
    .option('--batch-size <n>', 'samples per micro-batch', int('--batch-size'), 1)
    .option('--save-every <n>', 'checkpoint every N steps (and after the last)', int('--save-every'))
    .option('--image-root <dir>', 'folder image names are relative to (default: the jsonl\'s)')
    .option('--resume', 'continue from the last checkpoint in --out (an earlier run\'s folder is refused without it)')
    .option('--quiet', 'no progress output')
    .addOption(executionProviderOption())
    .action(async (artifact: string, o) => {
      const { train } = await import('../../train/loop.ts');
      const tty = Boolean(io.stderr.isTTY) && !o.quiet;
      const result = await train({
        artifact,
        data: o.data,
        steps: o.steps,
        out: o.out,
        lr: o.lr,
        weightDecay: o.weightDecay,
        beta1: o.beta1,
        beta2: o.beta2,
        eps: o.eps,
        gradAccum: o.gradAccum,
        batchSize: o.batchSize,
        saveEvery: o.saveEvery,
        resume: Boolean(o.resume),
        imageRoot: o.imageRoot,
        ep: o.ep,
        onStep: (step, steps, loss) => {
          if (tty) io.stderr.write(`\rstep ${step}/${steps} loss ${loss.toFixed(4)}${step === steps ? '\n' : ''}`);
        },
      });
      if (!o.quiet) {
        result.losses.forEach((l, i) => say(`step ${result.startStep + i + 1} loss ${l.toFixed(6)}`));
        say(`saved ${result.checkpoint}`);
      }
    });
}
