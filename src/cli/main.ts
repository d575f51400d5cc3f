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
import { readdirSync } from 'node:fs';
import * as nodePath from 'node:path';
import { progressBar } from './progress.ts';
import { VLMC_VERSION } from '../version.ts';
import type { ParamDType } from '../ir/dtype.ts';

const DTYPES: Record<string, ParamDType> = { fp32: 'float32', fp16: 'float16', bf16: 'bfloat16' };

function int(name: string) {
  return (v: string): number => {
    if (!/^-?\d+$/.test(v)) throw new UserError(`${name} must be an integer (got '${v}')`);
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

export function program(): Command {
  const cli = new Command('vlmc')
    .description('Compile InternVL-style vision-language models from a TypeScript DSL to ONNX')
    .version(VLMC_VERSION)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

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
    .addOption(new Option('--target <target>', 'portable: standard ONNX ops; gpu: ONNX Runtime fused ops').choices(['portable', 'gpu']).default('portable'))
    .option('--fuse <list>', 'with --target gpu: none, all (default) or a comma list of fusions (gqa, vit-attention, gelu, skip-layernorm, rmsnorm)')
    .addOption(new Option('--quant <scheme>', 'with --target gpu: weight-only quantisation of the LLM linears (MatMulNBits)').choices(['int4', 'int8']))
    .addOption(new Option('--quant-block <n>', 'quantisation block size along K').choices(['16', '32', '64', '128', '256']).default('32'))
    .option('--quant-zero-points', 'asymmetric quantisation with a zero point per block (default: symmetric)')
    .option('--img-context-token-id <id>', 'id of <IMG_CONTEXT> when the graph does not set it', int('--img-context-token-id'))
    .option('--downsample-ratio <r>', 'projector pixel-shuffle ratio (derived graphs)', positiveNumber('--downsample-ratio'))
    .addOption(new Option('--ps-version <v>', 'pixel shuffle version (derived graphs)').choices(['v1', 'v2']))
    .option('--select-layer <n>', 'ViT hidden state fed to the projector (derived graphs)', int('--select-layer'))
    .option('--allow-missing <glob>', 'parameters that may be missing (take their init); repeatable', collect)
    .option('--ignore-unexpected <glob>', 'checkpoint keys that may stay unused; repeatable', collect)
    .option('--quiet', 'no progress output')
    .option('--split', 'write vision.onnx, embedding.onnx and decoder.onnx (KV cache) with pipeline.json and the tokenizer files, for vlmc generate')
    .action(async (graph: string | undefined, o) => {
      const { build } = await import('../build.ts');
      const progress = progressBar('binding', Boolean(o.quiet));
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
        allowMissing: o.allowMissing,
        ignoreUnexpected: o.ignoreUnexpected,
        onProgress: progress,
        split: Boolean(o.split),
      });
      progress?.finish();
      if (!o.quiet) {
        const c = manifest.counts;
        console.log(`${o.out}: ${manifest.parameters.length} tensors, ${c.total.toLocaleString('en-US')} parameters (${c.trainable.toLocaleString('en-US')} trainable), path ${manifest.build.path}, ${manifest.build.dtype}`);
      }
    });

  cli
    .command('run')
    .description('run one forward pass of an artifact with onnxruntime-node')
    .argument('<artifact>', 'artifact folder from vlmc build')
    .requiredOption('--inputs <file>', 'safetensors with pixel_values, input_ids, image_flags')
    .requiredOption('--out <file>', 'safetensors to write the outputs to')
    .action(async (artifact: string, o) => {
      const { runArtifact } = await import('../runtime/run.ts');
      const outputs = await runArtifact(artifact, o.inputs, o.out);
      for (const [name, t] of Object.entries(outputs)) console.log(`${name} ${t.dtype}[${t.shape.join(', ')}]`);
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
    .addOption(new Option('--ep <provider>', 'onnxruntime execution provider').choices(['cpu', 'cuda']).default('cpu'))
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
      });
    });

  cli
    .command('init')
    .description('write a graph file that reproduces a checkpoint\'s architecture')
    .option('--from <dir>', 'Path A: unified InternVL checkpoint folder')
    .option('--vision <dir>', 'Path B: standalone InternViT checkpoint folder')
    .option('--llm <dir>', 'Path B: standalone LLM checkpoint folder')
    .option('--name <name>', 'graph name (default: the checkpoint folder name)')
    .option('--out <file>', 'graph file to write (default: graphs/<name>.ts)')
    .option('--force', 'overwrite an existing file')
    .option('--downsample-ratio <r>', 'projector pixel-shuffle ratio (Path B)', positiveNumber('--downsample-ratio'))
    .addOption(new Option('--ps-version <v>', 'pixel shuffle version (Path B)').choices(['v1', 'v2']))
    .option('--select-layer <n>', 'ViT hidden state fed to the projector (Path B)', int('--select-layer'))
    .option('--img-context-token-id <id>', 'id of <IMG_CONTEXT> when the tokenizer files do not name it', int('--img-context-token-id'))
    .action(async (o) => {
      const { init } = await import('../init/init.ts');
      const file = await init(o);
      console.log(`wrote ${file}`);
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
        for (const f of stale) console.log(`stale    ${f}`);
        for (const f of missing) console.log(`missing  ${f}`);
        if (stale.length + missing.length > 0) {
          console.log('run `npx vlmc lock` and commit the result');
          process.exitCode = 1;
        } else console.log(`${files.length} lock${files.length === 1 ? '' : 's'} up to date`);
        return;
      }
      for (const f of files) {
        const { path, changed } = await writeLock(f);
        console.log(`${changed ? 'wrote    ' : 'unchanged'} ${path}`);
      }
    });

  cli
    .command('diff')
    .description('compare two graphs: graph files, REV:path, artifact folders or .onnx files (exit 0 same, 1 different)')
    .argument('<a>', 'graph file, git revision of one (HEAD~1:graphs/x.ts), artifact folder, or .onnx file')
    .argument('<b>', 'the same kinds')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'markdown', 'json']).default('text'))
    .option('--nodes', 'include node-level detail')
    .option('--weights', 'compare tensor hashes (reads the weights)')
    .action(async (a: string, b: string, o) => {
      const { diffExitCode, diffSummaries, renderJson, renderMarkdown, renderText, resolveOperand } = await import('../review/index.ts');
      const left = await resolveOperand(a, { weights: Boolean(o.weights) });
      const right = await resolveOperand(b, { weights: Boolean(o.weights) });
      const d = diffSummaries(left.summary, right.summary, { nodes: Boolean(o.nodes), labels: [a, b] });
      const render = { text: renderText, markdown: renderMarkdown, json: renderJson }[o.format as 'text' | 'markdown' | 'json'];
      process.stdout.write(render(d));
      process.exitCode = diffExitCode(d);
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
      console.log(`${o.out}: input_ids [${rows}, ${seq}], pixel_values [${r.inputs.pixel_values.shape.join(', ')}], template ${r.config.template.name}, eos ${r.eosTokenId}`);
      for (const im of r.images) console.log(`  ${im.file}: ${im.width}x${im.height} -> ${im.grid[0]}x${im.grid[1]} grid, ${im.tiles} tiles`);
    });

  cli
    .command('demo')
    .description('the default run: random tiny checkpoint -> build graphs/internvl-tiny.ts -> one forward')
    .option('--out <dir>', 'where to put the checkpoint and artifact', 'out')
    .action(async (o) => {
      const { demo } = await import('../demo.ts');
      const report = await demo(o.out);
      for (const line of report.lines) console.log(line);
    });

  return cli;
}

/** The project's own graph files (graphs/*.ts). */
function projectGraphs(): string[] {
  return readdirSync('graphs')
    .filter((f) => f.endsWith('.ts'))
    .sort()
    .map((f) => nodePath.join('graphs', f));
}

export async function main(argv: string[]): Promise<number> {
  try {
    process.exitCode = 0;
    await program().parseAsync(argv, { from: 'user' });
    return Number(process.exitCode ?? 0);
  } catch (e) {
    return exitCodeFor(e);
  }
}

function exitCodeFor(e: unknown): number {
  if (e instanceof CommanderError) {
    // --help / --version end with code 0; usage errors are bad input.
    return e.exitCode === 0 ? 0 : 2;
  }
  if (e instanceof UserError) {
    process.stderr.write(`vlmc: ${e.message}\n`);
    return 2;
  }
  process.stderr.write(`vlmc: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
  return 1;
}
