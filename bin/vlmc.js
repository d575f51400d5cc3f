#!/usr/bin/env node
// Entry point: registers tsx so vlmc's TypeScript sources and the user's graph files load directly.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
