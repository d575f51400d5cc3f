/**
 * Deterministic parameter initialisation for structure builds and Path B's new projector. Each
 * parameter draws from its own stream seeded by (seed, name), so values do not depend on order and
 * adding a parameter elsewhere changes nothing here. Distributions follow PyTorch's defaults.
 */
import { createHash } from 'node:crypto';
import type { Init } from '../ir/graph.ts';

/** mulberry32: small, fast, good enough for weight init and sampling. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function streamSeed(seed: number, name: string): number {
  return createHash('sha256').update(`${seed}:${name}`).digest().readUInt32LE(0);
}

export function initialValues(init: Init, count: number, seed: number, name: string): Float32Array {
  const out = new Float32Array(count);
  const rand = mulberry32(streamSeed(seed, name));
  switch (init.kind) {
    case 'zeros':
      break;
    case 'ones':
      out.fill(1);
      break;
    case 'constant':
      out.fill(init.value);
      break;
    case 'uniform':
      for (let i = 0; i < count; i++) out[i] = (rand() * 2 - 1) * init.bound;
      break;
    case 'normal':
    case 'trunc_normal': {
      const mean = init.kind === 'normal' ? (init.mean ?? 0) : 0;
      for (let i = 0; i < count; i++) {
        let z = gaussian(rand);
        if (init.kind === 'trunc_normal') while (Math.abs(z) > 2) z = gaussian(rand);
        out[i] = mean + z * init.std;
      }
      break;
    }
  }
  return out;
}

function gaussian(rand: () => number): number {
  const u = 1 - rand();
  const v = rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}
