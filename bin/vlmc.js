#!/usr/bin/env node
// Entry point: registers tsx so vlmc's TypeScript sources and the user's graph files load directly,
// then the graph-file hooks (`vlmc` resolves to this copy, wherever the graph file lies).
import { register } from 'tsx/esm/api';

register();
const { registerGraphHooks } = await import('../src/loader/register.ts');
registerGraphHooks();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
