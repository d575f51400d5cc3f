/**
 * The `vlmc` command line: a thin layer over the library (src/index.ts). Exit codes: 0 success,
 * 2 bad input (the message names the problem), 1 internal error.
 *
 * Each command imports its implementation when it runs, so a command loads only what it needs:
 * `build` never loads ts-morph (init), onnxruntime-node (run, demo) or the review tools, which
 * would add about half a second to every start.
 */
import { Command, CommanderError, Option } from 'commander';
import { UserError } from '../errors.ts';
import { fileSystemUserError } from '../fs/errors.ts';
import { existsSync, readdirSync } from 'node:fs';
import * as nodePath from 'node:path';
import { progressBar, type TextOut } from './progress.ts';
import { VLMC_VERSION } from '../version.ts';
import type { ParamDType } from '../ir/dtype.ts';

const DTYPES: Record<string, ParamDType> = { fp32: 'float32', fp16: 'float16', bf16: 'bfloat16' };

function int(name: string) {
  return (v: string): number => {
    if (!/^-?\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new UserError(`${name} must be an integer (got '${v}')`);
    return Number(v);
  };
}

function positiveNumber(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new UserError(`${name} must be a positive number (got '${v}')`);
    return n;
  };
}

function nonNegativeNumber(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new UserError(`${name} must be a number >= 0 (got '${v}')`);
    return n;
  };
}

/**
 * How `vlmc inputs` and `vlmc generate` build a request from images and questions: the same flags,
 * meaning the same (src/inputs).
 */
function withRequestOptions(command: Command): Command {
  return command
    .option('--image <file>', 'image file (PNG, JPEG, WebP, GIF); repeatable: with one --prompt all belong to it, with several one per prompt', collect)
    .option('--history <file>', 'JSON array of earlier [question, answer] turns (one prompt only)')
    .option('--max-num <n>', 'max tiles per image (default: max_dynamic_patch of config.json)', int('--max-num'))
    .option('--no-thumbnail', 'no thumbnail tile (default: use_thumbnail of config.json)')
    .option('--system-message <text>', 'system message (default: config.json system_message, else the template\'s)')
    .option('--template <name>', 'conversation template (default: template of config.json)');
}

/** withRequestOptions' values; --max-num below 1 is refused here, for both commands. */
function requestOptionsOf(o: { history?: string; maxNum?: number; thumbnail?: boolean; systemMessage?: string; template?: string }) {
  if (o.maxNum !== undefined && o.maxNum < 1) throw new UserError(`--max-num must be at least 1 (got ${o.maxNum})`);
  return { history: o.history, maxNum: o.maxNum, useThumbnail: o.thumbnail === false ? false : undefined, systemMessage: o.systemMessage, template: o.template };
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

function collectRule(action: 'freeze' | 'unfreeze', into: { action: 'freeze' | 'unfreeze'; pattern: string }[]) {
  return (v: string, prev: string[] = []): string[] => {
    into.push({ action, pattern: v });
    return [...prev, v];
  };
}

/** Where one invocation's text goes. */
export interface CliIO {
  stdout: TextOut;
  stderr: TextOut;
}

/** One invocation's outcome that commands set besides throwing: `lock --check` and `diff` exit 1 on a difference. */
interface Invocation {
  exitCode: number;
}

/** --ep: the onnxruntime execution provider (EXECUTION_PROVIDERS in src/runtime/providers.ts, not imported: it loads the ONNX protobuf classes; docs/cli.md says what each needs). */
function executionProviderOption(): Option {
  return new Option('--ep <provider>', 'onnxruntime execution provider: cpu, cuda (its libraries installed) or webgpu (a Vulkan GPU driver)').choices(['cpu', 'cuda', 'webgpu']).default('cpu');
}

export function program(io: CliIO = { stdout: process.stdout, stderr: process.stderr }, invocation: Invocation = { exitCode: 0 }): Command {
  // --freeze / --unfreeze in the order given: the last rule matching a parameter decides.
  const freezeRules: { action: 'freeze' | 'unfreeze'; pattern: string }[] = [];
  const say = (line: string) => io.stdout.write(`${line}\n`);
  const cli = new Command('vlmc')
    .description('Compile InternVL-style vision-language models from a TypeScript DSL to ONNX')
    .version(VLMC_VERSION)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    });

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
      const { build } = await import('../build.ts');
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
      const { buildSummary } = await import('./build-summary.ts');
      for (const line of buildSummary(o.out, manifest)) say(line);
      if (manifest.train) {
        const { pruningLine } = await import('../train/artifact.ts');
        say(pruningLine(manifest.train));
      }
    });

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
      const { runArtifact } = await import('../run.ts');
      const outputs = await runArtifact(artifact, o.inputs, o.out, o.graph, o.ep, o.adapter ?? []);
      for (const [name, t] of Object.entries(outputs)) say(`${name} ${t.dtype}[${t.shape.join(', ')}]`);
    });

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
      const { train } = await import('../train/loop.ts');
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

  const generateCommand = cli
    .command('generate')
    .description('generate text with a split artifact (vlmc build --split) and the KV cache, streamed to stdout: greedy, or sampled with --temperature; a prompt needs no image')
    .argument('<artifact>', 'split artifact folder')
    .option('--inputs <file>', 'safetensors with pixel_values, input_ids, and optionally image_flags (default: every tile counts) and attention_mask (right padding)')
    .option('--prompt <text>', 'the question (an image is optional); repeatable, one batch row each', collect);
  withRequestOptions(generateCommand)
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
      const { generateCommand } = await import('../generate/cli.ts');
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
      const { init } = await import('../init/init.ts');
      const file = await init({ ...o, imageSize: o.forceImageSize });
      const { lockPathFor } = await import('../review/lock.ts');
      say(`wrote ${file}`);
      say(`wrote ${lockPathFor(file)}`);
    });

  cli
    .command('lock')
    .description('write graphs/<x>.graph.lock beside each graph (all of graphs/ by default)')
    .argument('[graphs...]', 'graph files')
    .option('--check', 'write nothing; exit 1 when any lock is stale or missing')
    .action(async (graphs: string[], o) => {
      const { checkLocks, writeLock } = await import('../review/index.ts');
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

  cli
    .command('diff')
    .description('compare two graphs: graph files, REV:path, artifact folders (single, split, --train), checkpoint folders or .onnx files (exit 0 same, 1 different)')
    .argument('<a>', 'graph file, git revision of one (HEAD~1:graphs/x.ts), artifact folder, checkpoint folder, or .onnx file')
    .argument('<b>', 'the same kinds')
    .addOption(new Option('--format <format>', 'output format: text, markdown (a PR comment, with a Mermaid diagram), json, or html (both pictures with the changes marked)').choices(['text', 'markdown', 'json', 'html']).default('text'))
    .option('--out <file>', 'with --format html: the page to write (default: standard output)')
    .option('--nodes', 'include node-level detail')
    .option('--weights', 'compare tensor hashes (reads the weights)')
    .action(async (a: string, b: string, o) => {
      const { diffExitCode, diffSummaries, renderJson, renderMarkdown, renderText, resolveOperand } = await import('../review/index.ts');
      if (o.out !== undefined && o.format !== 'html') throw new UserError(`--out writes the page of --format html; redirect the ${o.format} output instead`);
      const { checkOutputPath } = await import('../fs/output-path.ts');
      if (o.out !== undefined) checkOutputPath(o.out, { kind: 'diff', flag: '--out', inputs: [a, b] });
      const left = await resolveOperand(a, { weights: Boolean(o.weights) });
      const right = await resolveOperand(b, { weights: Boolean(o.weights) });
      const d = diffSummaries(left.summary, right.summary, { nodes: Boolean(o.nodes), labels: [a, b] });
      invocation.exitCode = diffExitCode(d);
      if (o.format !== 'html') {
        const render = { text: renderText, markdown: renderMarkdown, json: renderJson }[o.format as 'text' | 'markdown' | 'json'];
        io.stdout.write(render(d));
        return;
      }
      const { diffPage, diffView } = await import('../review/view/index.ts');
      const page = diffPage(diffView(left, right, d), renderText(d));
      if (o.out === undefined) io.stdout.write(page);
      else await (await import('../fs/atomic.ts')).writeFileAtomic(o.out, page);
    });

  cli
    .command('view')
    .description('draw a model as one self-contained HTML page: its module tree as a zoomable treemap sized by parameter count')
    .argument('<model>', 'graph file, artifact folder (single, split or --train), checkpoint folder, .onnx file, or REV:graph')
    .requiredOption('--out <file>', 'the HTML page to write')
    .action(async (model: string, o) => {
      const { writeView } = await import('../review/view/index.ts');
      const view = await writeView(model, o.out);
      const trainable = view.trainable === undefined ? 'freeze state unknown' : `${view.trainable.toLocaleString('en-US')} trainable`;
      say(`${o.out}: ${view.total.toLocaleString('en-US')} parameters (${trainable}), ${view.tensors} tensors, ${view.panels.length} panel${view.panels.length === 1 ? '' : 's'}`);
    });

  const inputsCommand = cli
    .command('inputs')
    .description('image(s) + question -> the tensors vlmc run / generate take (InternVL preprocessing, template, tokenizer)')
    .requiredOption('--checkpoint <dir>', 'checkpoint folder, artifact, or a folder with config.json and the tokenizer files')
    .requiredOption('--prompt <text>', 'the question; repeatable (one batch row each, right-padded)', collect);
  withRequestOptions(inputsCommand)
    .requiredOption('--out <file>', 'safetensors file to write')
    .action(async (o) => {
      const { readHistoryFile, writeInputs } = await import('../inputs/index.ts');
      const { history, ...request } = requestOptionsOf(o);
      const r = await writeInputs({ checkpoint: o.checkpoint, images: o.image, prompts: o.prompt, history: history === undefined ? undefined : readHistoryFile(history), ...request, out: o.out });
      const [rows, seq] = r.inputs.input_ids.shape;
      say(`${o.out}: input_ids [${rows}, ${seq}], pixel_values [${r.inputs.pixel_values.shape.join(', ')}], template ${r.config.template.name}, eos ${r.eosTokenId}`);
      for (const im of r.images) say(`  ${im.file}: ${im.width}x${im.height} -> ${im.grid[0]}x${im.grid[1]} grid, ${im.tiles} tiles`);
    });

  cli
    .command('demo')
    .description('the default run: random tiny checkpoint -> build graphs/internvl-tiny.ts -> one forward')
    .option('--out <dir>', 'where to put the checkpoint and artifact', 'out')
    .action(async (o) => {
      const { demo } = await import('../demo.ts');
      const report = await demo(o.out);
      for (const line of report.lines) say(line);
    });

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
        const { exportMergedLora } = await import('../export/merge-lora.ts');
        const r = await exportMergedLora({ checkpoint, adapters: o.adapter, out: o.out });
        say(`${r.out}: ${r.tensors} tensors, LoRA merged into ${r.merged} weights`);
        return;
      }
      const { exportHF } = await import('../export/hf.ts');
      const r = await exportHF({ checkpoint, out: o.out, spelling: o.spelling });
      say(`${r.out}: ${r.tensors} tensors in the Hugging Face layout (${o.spelling} keys)`);
    });

  return cli;
}

/** The project's own graph files (graphs/*.ts). */
function projectGraphs(): string[] {
  if (!existsSync('graphs')) throw new UserError('no graph files given, and there is no graphs/ folder here to take them from');
  return readdirSync('graphs')
    .filter((f) => f.endsWith('.ts'))
    .sort()
    .map((f) => nodePath.join('graphs', f));
}

/** Runs one command line, writing to `io` (the process's streams by default); returns the exit code. */
export async function main(argv: string[], io: CliIO = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const invocation: Invocation = { exitCode: 0 };
  try {
    await program(io, invocation).parseAsync(argv, { from: 'user' });
    return invocation.exitCode;
  } catch (e) {
    return exitCodeFor(e, io.stderr);
  }
}

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

/**
 * `vlmc <argv>` inside this process, its output collected instead of written: for tests and hosts
 * that would otherwise spawn bin/vlmc.js. Nothing is drawn (no terminal) and process.exitCode is left
 * alone. `cwd` changes the process's working folder for the call (commands resolve paths against
 * it), so calls must not overlap; graph files load through the host's module loader (bin/vlmc.js
 * registers tsx and the graph-file hooks; a host must do the same or have its own, as vitest does).
 */
export async function runCli(argv: string[], options: { cwd?: string } = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const io: CliIO = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } };
  const home = process.cwd();
  if (options.cwd) process.chdir(options.cwd);
  try {
    const status = await main(argv, io);
    return { status, stdout, stderr };
  } finally {
    if (options.cwd) process.chdir(home);
  }
}

function exitCodeFor(e: unknown, stderr: TextOut): number {
  if (e instanceof CommanderError) {
    // --help / --version end with code 0; usage errors are bad input.
    return e.exitCode === 0 ? 0 : 2;
  }
  if (e instanceof UserError) {
    stderr.write(`vlmc: ${e.message}\n`);
    return 2;
  }
  const fsError = fileSystemUserError(e);
  if (fsError) {
    stderr.write(`vlmc: ${fsError.message}\n`);
    return 2;
  }
  stderr.write(`vlmc: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
  return 1;
}
