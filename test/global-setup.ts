/** Runs once before the suite: without the shared fixtures it stops with one clear message. */
import { existsSync } from 'node:fs';
import { FIXTURES, MISSING_FIXTURES } from './helpers.ts';

export default function checkFixtures(): void {
  if (!existsSync(FIXTURES)) throw new Error(MISSING_FIXTURES);
}
