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
    .addOption(new Option('--quant-block <n>', 'quantisation block size along K').choices(['16', '32', '64', '128', '256']).default('32'))
    .option('--quant-zero-points', 'asymmetric quantisation with a zero point per block (default: symmetric)')
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
    .addOption(new Option('--preset <preset>', 'freeze preset applied after the graph\'s own rules').choices(['stage1', 'stage2', 'full', 'inference']))
    .option('--freeze <glob>', 'freeze parameters matching the glob (after --preset, in command-line order with --unfreeze); repeatable', collectRule('freeze', freezeRules))
    .option('--unfreeze <glob>', 'unfreeze parameters matching the glob (after --preset, in command-line order with --freeze); repeatable', collectRule('unfreeze', freezeRules))
    .option('--split', 'write vision.onnx, embedding.onnx and decoder.onnx (KV cache) with pipeline.json and the tokenizer files, for vlmc generate')
    .action(async (graph: string | undefined, o) => {
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
        quant: o.quant ? { bits: o.quant === 'int4' ? 4 : 8, blockSize: Number(o.quantBlock), symmetric: !o.quantZeroPoints } : undefined,
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
      });
      progress?.finish();
      const c = manifest.counts;
      const kind = manifest.build.structure_only ? ', structure only (no weights; `vlmc run` needs --weights or --init random)' : '';
      say(`${o.out}: ${manifest.parameters.length} tensors, ${c.total.toLocaleString('en-US')} parameters (${c.trainable.toLocaleString('en-US')} trainable), path ${manifest.build.path}, ${manifest.build.dtype}${kind}`);
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
    .action(async (artifact: string, o) => {
      const { runArtifact } = await import('../run.ts');
      const outputs = await runArtifact(artifact, o.inputs, o.out, o.graph, o.ep);
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
    .option('--weight-decay <x>', 'AdamW weight decay', Number, 0)
    .option('--beta1 <x>', 'AdamW beta1', Number, 0.9)
    .option('--beta2 <x>', 'AdamW beta2', Number, 0.999)
    .option('--eps <x>', 'AdamW eps', Number, 1e-8)
    .option('--grad-accum <n>', 'micro-batches per step (gradients averaged)', int('--grad-accum'), 1)
    .option('--batch-size <n>', 'samples per micro-batch', int('--batch-size'), 1)
    .option('--save-every <n>', 'checkpoint every N steps (and after the last)', int('--save-every'))
    .option('--image-root <dir>', 'folder image names are relative to (default: the jsonl\'s)')
    .option('--resume', 'continue from the last checkpoint in --out')
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

  cli
    .command('generate')
    .description('generate text with a split artifact (vlmc build --split): greedy decoding with the KV cache, streamed to stdout')
    .argument('<artifact>', 'split artifact folder')
    .option('--inputs <file>', 'safetensors with pixel_values, input_ids, image_flags and optionally attention_mask (right padding)')
    .option('--image <file>', 'image file (with --prompt); repeatable', collect)
    .option('--prompt <text>', 'the question (with --image)')
    .option('--max-new-tokens <n>', 'tokens to generate at most', int('--max-new-tokens'), 32)
    .option('--ignore-eos', 'do not stop at eos')
    .option('--temperature <t>', 'sample at this temperature (default 0: greedy)', Number)
    .option('--top-k <k>', 'sample from the k most likely tokens', int('--top-k'))
    .option('--seed <n>', 'sampling seed', int('--seed'))
    .option('--out <file>', 'safetensors to write tokens I64 [batch, N] and logits F32 [batch, N, vocab] to')
    .option('--json', 'print one JSON object (steps, tokens, text) instead of streaming')
    .addOption(executionProviderOption())
    .action(async (artifact: string, o) => {
      const { generateCommand } = await import('../generate/cli.ts');
      await generateCommand({
        artifact,
        inputs: o.inputs,
        image: o.image,
        prompt: o.prompt,
        out: o.out,
        json: Boolean(o.json),
        maxNewTokens: o.maxNewTokens,
        ignoreEos: Boolean(o.ignoreEos),
        temperature: o.temperature,
        topK: o.topK,
        seed: o.seed,
        ep: o.ep,
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

  cli
    .command('inputs')
    .description('image(s) + question -> the tensors vlmc run / generate take (InternVL preprocessing, template, tokenizer)')
    .requiredOption('--checkpoint <dir>', 'checkpoint folder, artifact, or a folder with config.json and the tokenizer files')
    .option('--image <file>', 'image file (PNG, JPEG); repeatable', collect)
    .requiredOption('--prompt <text>', 'the question; repeatable (one batch row each, right-padded)', collect)
    .option('--history <file>', 'JSON array of earlier [question, answer] turns')
    .option('--max-num <n>', 'max tiles per image (default: max_dynamic_patch of config.json)', int('--max-num'))
    .option('--no-thumbnail', 'no thumbnail tile (default: use_thumbnail of config.json)')
    .option('--system-message <text>', 'system message (default: config.json system_message, else the template\'s)')
    .option('--template <name>', 'conversation template (default: template of config.json)')
    .requiredOption('--out <file>', 'safetensors file to write')
    .action(async (o) => {
      const { readHistoryFile, writeInputs } = await import('../inputs/index.ts');
      if (o.maxNum !== undefined && o.maxNum < 1) throw new UserError(`--max-num must be at least 1 (got ${o.maxNum})`);
      const r = await writeInputs({
        checkpoint: o.checkpoint,
        images: o.image,
        prompts: o.prompt,
        history: o.history === undefined ? undefined : readHistoryFile(o.history),
        maxNum: o.maxNum,
        useThumbnail: o.thumbnail === false ? false : undefined,
        systemMessage: o.systemMessage,
        template: o.template,
        out: o.out,
      });
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
    .description("rewrite an original-layout InternVL checkpoint in another layout (hf: transformers' InternVLForConditionalGeneration)")
    .argument('<checkpoint>', 'InternVL checkpoint folder in the original layout (InternVLChatModel)')
    .addOption(new Option('--layout <layout>', 'layout to write').choices(['hf']).makeOptionMandatory())
    .addOption(new Option('--spelling <spelling>', 'key spelling of the hf layout').choices(['transformers-4', 'transformers-5']).default('transformers-4'))
    .requiredOption('--out <dir>', 'checkpoint folder to write')
    .action(async (checkpoint: string, o) => {
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
