/** What every command gets from the invocation it runs in. */
import type { TextOut } from './progress.ts';

/** Where one invocation's text goes. */
export interface CliIO {
  stdout: TextOut;
  stderr: TextOut;
}

/** One invocation's outcome that commands set besides throwing: `lock --check` and `diff` exit 1 on a difference. */
export interface Invocation {
  exitCode: number;
}

export interface CommandContext {
  io: CliIO;
  /** One line on standard output. */
  say: (line: string) => void;
  invocation: Invocation;
}
