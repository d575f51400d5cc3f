/** `vlmc run`: one forward pass (or train.onnx / optimizer.onnx) of an artifact. */
import { Option, type Command } from 'commander';
import { collect, executionProviderOption } from '../options.ts';
import type { CommandContext } from '../context.ts';

export function registerRun(cli: Command, { say }: CommandContext): void {
  cli
    .command('run')
    .description('run one forward pass of an artifact with onnxruntime-node')
    .argument('<artifact>', 'artifact folder from vlmc build')
    .requiredOption('--inputs <file>', 'safetensors with pixel_values, input_ids, image_flags')
    .requiredOption('--out <file>', 'safetensors to write the outputs to')
    .addOption(new Option('--graph <graph>', 'which graph: model.onnx, train.onnx (loss and grad.*; trainable values default to the bound weights) or optimizer.onnx').choices(['model', 'train', 'optimizer']).default('model'))
    .addOption(executionProviderOption())
    .option('--adapter <dir>', 'a PEFT LoRA adapter folder fed to an artifact built with --lora-inputs; repeatable: one per part', collect)
    .action(async (artifact: string, o) => {
      const { runArtifact } = await import('../../run.ts');
      const outputs = await runArtifact(artifact, o.inputs, o.out, o.graph, o.ep, o.adapter ?? []);
      for (const [name, t] of Object.entries(outputs)) say(`${name} ${t.dtype}[${t.shape.join(', ')}]`);
    });
}
