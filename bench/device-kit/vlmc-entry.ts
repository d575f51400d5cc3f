/** The kit's vlmc: the CLI without the tsx loader (the kit builds derived graphs only, no graph files). */
import { main } from '../../src/cli/main.ts';

process.exitCode = await main(process.argv.slice(2));
