/**
 * The `vlmc` command line: a thin layer over the library (src/index.ts). Exit codes: 0 success,
 * 2 bad input (the message names the problem), 1 internal error.
 *
 * Each command imports its implementation when it runs, so a command loads only what it needs:
 * `build` never loads ts-morph (init), onnxruntime-node (run, demo) or the review tools, which
 * would add about half a second to every start.
 */
import { Command, CommanderError } from 'commander';
import { UserError } from '../errors.ts';
import { fileSystemUserError } from '../fs/errors.ts';
import type { TextOut } from './progress.ts';
import { VLMC_VERSION } from '../version.ts';
import type { CliIO, CommandContext, Invocation } from './context.ts';
import { registerBuild } from './commands/build.ts';
import { registerRun } from './commands/run.ts';
import { registerTrain } from './commands/train.ts';
import { registerGenerate } from './commands/generate.ts';
import { registerInit } from './commands/init.ts';
import { registerLock } from './commands/lock.ts';
import { registerDiff } from './commands/diff.ts';
import { registerView } from './commands/view.ts';
import { registerInputs } from './commands/inputs.ts';
import { registerDemo } from './commands/demo.ts';
import { registerExport } from './commands/export.ts';

export type { CliIO } from './context.ts';

/** The commands in the order `vlmc --help` lists them; each lives in src/cli/commands/<name>.ts. */
const COMMANDS = [registerBuild, registerRun, registerTrain, registerGenerate, registerInit, registerLock, registerDiff, registerView, registerInputs, registerDemo, registerExport];

export function program(io: CliIO = { stdout: process.stdout, stderr: process.stderr }, invocation: Invocation = { exitCode: 0 }): Command {
  const context: CommandContext = { io, say: (line) => io.stdout.write(`${line}\n`), invocation };
  const cli = new Command('vlmc')
    .description('Compile InternVL-style vision-language models from a TypeScript DSL to ONNX')
    .version(VLMC_VERSION)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    });
  for (const register of COMMANDS) register(cli, context);
  return cli;
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
