/** A one-line progress bar on stderr (bytes, rate, ETA); silent off a TTY, under CI, or --quiet. */
export type Progress = ((done: number, total: number) => void) & { finish(): void };

export function progressBar(label: string, quiet: boolean): Progress | undefined {
  if (quiet || !process.stderr.isTTY || process.env.CI) return undefined;
  const start = performance.now();
  let last = 0;
  const draw = (done: number, total: number, force = false) => {
    const now = performance.now();
    if (!force && now - last < 100) return;
    last = now;
    const secs = (now - start) / 1000;
    const rate = secs > 0 ? done / secs : 0;
    const eta = rate > 0 ? (total - done) / rate : 0;
    const frac = total > 0 ? done / total : 1;
    const width = 24;
    const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
    process.stderr.write(`\r${label} [${bar}] ${gb(done)}/${gb(total)} GB  ${gb(rate)} GB/s  ETA ${eta.toFixed(0)}s `);
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
    process.stderr.write('\n');
  };
  return p;
}

function gb(bytes: number): string {
  return (bytes / 1e9).toFixed(2);
}
