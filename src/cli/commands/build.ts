/** `vlmc build`: a graph file (or one derived from the checkpoint) compiled and bound into an artifact. */
import { Option, type Command } from 'commander';
import { UserError } from '../../errors.ts';
import { progressBar } from '../progress.ts';
import { int, positiveNumber, collect, collectRule, DTYPES } from '../options.ts';
import type { CommandContext } from '../context.ts';

export function registerBuild(cli: Command, { io, say }: CommandContext): void {
  // --freeze / --unfreeze in the order given: the last rule matching a parameter decides.
  const freezeRules: { action: 'freeze' | 'unfreeze'; pattern: string }[] = [];
  cli
    .command('build')
    .description('compile a graph and bind weights into an artifact (model.onnx + model.onnx.data + manifest.json)')
    .argument('[graph]', 'graph file (graphs/<variant>.ts); derived from the checkpoint config when omitted')
    .option('--weights <dir>', 'Path A: unified InternVL checkpoint folder')
    .option('--vision <dir>', 'Path B: standalone InternViT checkpoint folder')
    .option('--llm <dir>', 'Path B: standalone LLM checkpoint folder')
    .option('--projector <file>', 'Path B: take mlp1.* from this safetensors file instead of initialising it')
    .requiredOption('--out <dir>', 'artifact folder to write')
    .option('--seed <n>', 'seed for parameters that are initialised, not loaded', int('--seed'), 0)
    .addOption(new Option('--dtype <dtype>', 'stored parameter dtype').choices(['fp32', 'fp16', 'bf16']).default('fp32'))
    .option('--opset <n>', 'ONNX opset (17 to 24)', int('--opset'))
    .addOption(new Option('--target <target>', 'portable: standard ONNX ops; gpu: ONNX Runtime fused ops; webgpu: the fused ops the WebGPU provider runs').choices(['portable', 'gpu', 'webgpu']).default('portable'))
    .option('--fuse <list>', 'with --target gpu: none, all (default) or a comma list of fusions (gqa, vit-attention, gelu, skip-layernorm, rmsnorm)')
    .addOption(new Option('--quant <scheme>', 'with --target gpu: weight-only quantisation of the LLM linears (MatMulNBits)').choices(['int4', 'int8']))
    .addOption(new Option('--quant-block <n>', 'with --quant: quantisation block size along K (default 32)').choices(['16', '32', '64', '128', '256']))
    .option('--quant-zero-points', 'with --quant: asymmetric quantisation with a zero point per block (default: symmetric)')
    .option('--img-context-token-id <id>', 'id of <IMG_CONTEXT> when the graph does not set it', int('--img-context-token-id'))
    .option('--downsample-ratio <r>', 'projector pixel-shuffle ratio (derived graphs)', positiveNumber('--downsample-ratio'))
    .addOption(new Option('--ps-version <v>', 'pixel shuffle version (derived graphs)').choices(['v1', 'v2']))
    .option('--select-layer <n>', 'ViT hidden state fed to the projector (derived graphs)', int('--select-layer'))
    .option('--force-image-size <n>', 'tile size fed to the ViT, position embeddings resized as InternVL does (derived graphs)', int('--force-image-size'))
    .option('--allow-missing <glob>', 'parameters that may be missing (take their init); repeatable', collect)
    .option('--ignore-unexpected <glob>', 'checkpoint keys that may stay unused; repeatable', collect)
    .addOption(new Option('--init <how>', 'without weights: initialise every parameter (else the artifact is structure-only)').choices(['random']))
    .option('--quiet', 'no progress bar (the summary line is still printed)')
    .option('--train', 'also write train.onnx (loss + gradients) and optimizer.onnx (AdamW)')
    .addOption(new Option('--preset <preset>', 'freeze preset applied after the graph\'s own rules').choices(['stage1', 'stage2', 'full', 'inference', 'lora']))
    .option('--freeze <glob>', 'freeze parameters matching the glob (after --preset, in command-line order with --unfreeze); repeatable', collectRule('freeze', freezeRules))
    .option('--unfreeze <glob>', 'unfreeze parameters matching the glob (after --preset, in command-line order with --freeze); repeatable', collectRule('unfreeze', freezeRules))
    .option('--split', 'write vision.onnx, embedding.onnx and decoder.onnx (KV cache) with pipeline.json and the tokenizer files, for vlmc generate')
    .option('--use-backbone-lora <r>', 'LoRA of rank r on the vision backbone (InternVL\'s --use_backbone_lora; alpha 2r); 0: none', int('--use-backbone-lora'))
    .option('--use-llm-lora <r>', 'LoRA of rank r on the LLM (InternVL\'s --use_llm_lora; alpha 2r); 0: none', int('--use-llm-lora'))
    .option('--keep-lora', 'keep the LoRA of a checkpoint saved with LoRA unmerged, or of --adapter, as separate parameters (default: merged at bind)')
    .option('--adapter <dir>', 'a PEFT LoRA adapter folder applied onto the base weights (merged at bind unless --keep-lora); repeatable: one per part', collect)
    .option('--lora-inputs', 'the declared LoRA\'s adapters become graph inputs of any rank, chosen at run time (vlmc run / generate --adapter DIR)')
    .action(async (graph: string | undefined, o) => {
      const quantOnly = [o.quantBlock !== undefined && '--quant-block', o.quantZeroPoints && '--quant-zero-points'].filter(Boolean);
      if (!o.quant && quantOnly.length > 0) throw new UserError(`${quantOnly.join(' and ')} ${quantOnly.length === 1 ? 'shapes' : 'shape'} --quant int4|int8, which was not given: add it, or drop the flag`);
      const { build } = await import('../../build.ts');
      const progress = progressBar('binding', Boolean(o.quiet), io.stderr);
      const { manifest } = await build({
        graph,
        weights: o.weights,
        vision: o.vision,
        llm: o.llm,
        projector: o.projector,
        out: o.out,
        seed: o.seed,
        dtype: DTYPES[o.dtype],
        opset: o.opset,
        target: o.target,
        fuse: o.fuse,
        quant: o.quant ? { bits: o.quant === 'int4' ? 4 : 8, blockSize: Number(o.quantBlock ?? 32), symmetric: !o.quantZeroPoints } : undefined,
        imgContextTokenId: o.imgContextTokenId,
        downsampleRatio: o.downsampleRatio,
        psVersion: o.psVersion,
        selectLayer: o.selectLayer,
        forceImageSize: o.forceImageSize,
        allowMissing: o.allowMissing,
        ignoreUnexpected: o.ignoreUnexpected,
        init: o.init,
        onProgress: progress,
        train: Boolean(o.train),
        preset: o.preset,
        rules: freezeRules,
        split: Boolean(o.split),
        useBackboneLora: o.useBackboneLora,
        useLlmLora: o.useLlmLora,
        keepLora: Boolean(o.keepLora),
        adapters: o.adapter,
        loraInputs: Boolean(o.loraInputs),
        onWarning: (m) => io.stderr.write(`vlmc: warning: ${m}\n`),
      });
      progress?.finish();
      const { buildSummary } = await import('../build-summary.ts');
      for (const line of buildSummary(o.out, manifest)) say(line);
      if (manifest.train) {
        const { pruningLine } = await import('../../train/artifact.ts');
        say(pruningLine(manifest.train));
      }
    });
}
