/** Arithmetic and comparison on symbolic dims. */
import type { Dim, Shape } from './graph.ts';

let unknownCounter = 0;

/** A fresh name for a dim nothing is known about (e.g. the row count after Compress). */
export function freshDim(hint: string): Dim {
  unknownCounter += 1;
  return `${hint}_${unknownCounter}`;
}

export function resetFreshDims(): void {
  unknownCounter = 0;
}

/** True when the two dims are provably different. */
export function dimsConflict(a: Dim, b: Dim): boolean {
  return typeof a === 'number' && typeof b === 'number' && a !== b;
}

export function dimMul(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a * b;
  if (a === 1) return b;
  if (b === 1) return a;
  return `${wrap(a)}*${wrap(b)}`;
}

export function dimAdd(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (a === 0) return b;
  if (b === 0) return a;
  return `${a}+${b}`;
}

export function dimSub(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (b === 0) return a;
  return `${wrap(a)}-${wrap(b)}`;
}

export function dimDiv(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return Math.trunc(a / b);
  if (b === 1) return a;
  return `${wrap(a)}/${wrap(b)}`;
}

function wrap(d: Dim): string {
  return typeof d === 'string' && /[+\-*/]/.test(d) ? `(${d})` : String(d);
}

export function product(shape: readonly Dim[]): Dim {
  return shape.reduce<Dim>((acc, d) => dimMul(acc, d), 1);
}

/** Number of elements of a static shape. */
export function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

/** Numpy broadcasting of two shapes; throws a message string when they cannot broadcast. */
export function broadcastShapes(a: Shape, b: Shape): Shape {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const da = i < rank - a.length ? 1 : a[i - (rank - a.length)]!;
    const db = i < rank - b.length ? 1 : b[i - (rank - b.length)]!;
    if (da === 1) out.push(db);
    else if (db === 1) out.push(da);
    else if (dimsConflict(da, db)) throw new Error(`shapes ${formatShape(a)} and ${formatShape(b)} do not broadcast`);
    else out.push(typeof da === 'number' ? da : db);
  }
  return out;
}
