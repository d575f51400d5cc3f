/**
 * sha256 of many byte streams on a worker thread, so hashing a tensor's chunks overlaps the
 * caller's own work (dtype conversion) and the file writes instead of queueing behind them.
 *
 * Bytes in a SharedArrayBuffer are read in place, so such a buffer must stay untouched until its
 * `update` has resolved; other bytes are copied when posted. Streams are numbered by the caller;
 * the worker handles messages in order, so a digest covers every update posted before it.
 */
import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const streams = new Map();
parentPort.on('message', ({ seq, stream, bytes }) => {
  let hash = streams.get(stream);
  if (!hash) streams.set(stream, (hash = createHash('sha256')));
  if (bytes) {
    hash.update(bytes);
    parentPort.postMessage({ seq });
  } else {
    streams.delete(stream);
    parentPort.postMessage({ seq, hex: hash.digest('hex') });
  }
});
`;

interface Waiter {
  resolve: (hex: string) => void;
  reject: (err: Error) => void;
}

export class Sha256Worker {
  private readonly worker = new Worker(WORKER_SOURCE, { eval: true });
  private readonly waiting = new Map<number, Waiter>();
  private seq = 0;
  private failure: Error | undefined;

  constructor() {
    this.worker.on('message', ({ seq, hex }: { seq: number; hex?: string }) => this.settle(seq, hex ?? ''));
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('exit', (code) => this.fail(new Error(`sha256 worker exited (code ${code})`)));
  }

  /** Adds `bytes` to `stream`; resolves once the worker has read them. */
  async update(stream: number, bytes: Uint8Array): Promise<void> {
    await this.post(stream, bytes);
  }

  /** The hex digest of everything added to `stream`, which is then forgotten. */
  digest(stream: number): Promise<string> {
    return this.post(stream, undefined);
  }

  async close(): Promise<void> {
    this.fail(new Error('sha256 worker closed'));
    await this.worker.terminate();
  }

  private post(stream: number, bytes: Uint8Array | undefined): Promise<string> {
    if (this.failure) return Promise.reject(this.failure);
    const seq = this.seq++;
    const settled = new Promise<string>((resolve, reject) => this.waiting.set(seq, { resolve, reject }));
    this.worker.postMessage({ seq, stream, bytes });
    return settled;
  }

  private settle(seq: number, hex: string): void {
    this.waiting.get(seq)?.resolve(hex);
    this.waiting.delete(seq);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const waiter of this.waiting.values()) waiter.reject(this.failure);
    this.waiting.clear();
  }
}
