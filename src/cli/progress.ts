/** A one-line progress bar on stderr (bytes, rate, ETA); silent off a TTY, under CI, or --quiet. */
/** A stream the CLI writes text to: process.stdout / process.stderr, or a collector (runCli). */
export interface TextOut {
  write(text: string): unknown;
  /** A terminal: progress lines are drawn only there. */
  isTTY?: boolean;
}

export type Progress = ((done: number, total: number) => void) & { finish(): void };

export function progressBar(label: string, quiet: boolean, stderr: TextOut = process.stderr): Progress | undefined {
  if (quiet || !stderr.isTTY || process.env.CI) return undefined;
  const start = performance.now();
  let last = 0;
  const draw = (done: number, total: number, force = false) => {
    const now = performance.now();
    if (!force && now - last < 100) return;
    last = now;
    const secs = (now - start) / 1000;
    const frac = total > 0 ? done / total : 1;
    const width = 24;
    const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
    stderr.write(`\r${label} [${bar}] ${size(done)}/${size(total)}${timing(done, total, secs)} `);
  };
  let lastTotal = 0;
  let lastDone = 0;
  const p = ((done: number, total: number) => {
    lastDone = done;
    lastTotal = total;
    draw(done, total);
  }) as Progress;
  p.finish = () => {
    draw(lastDone, lastTotal, true);
    stderr.write('\n');
  };
  return p;
}

/** Bytes in the unit that shows them: a tiny model reads 180.6 KB, not 0.00 GB. */
export function size(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${(bytes / 1e3).toFixed(1)} KB`;
}

/**
 * Rate and ETA once they mean something: after a second of work, with bytes done. Before that the
 * rate is dominated by start-up and the ETA would be noise (`ETA 222s` for a model that takes 0.1 s).
 */
export function timing(done: number, total: number, secs: number): string {
  if (done >= total && total > 0) return `  ${secs.toFixed(1)}s`;
  if (secs < 1 || done === 0) return '';
  const rate = done / secs;
  return `  ${size(rate)}/s  ETA ${((total - done) / rate).toFixed(0)}s`;
}
