/** `vlmc diff`: two models compared (text, Markdown, JSON or an HTML page). */
import { Option, type Command } from 'commander';
import { UserError } from '../../errors.ts';
import type { CommandContext } from '../context.ts';

export function registerDiff(cli: Command, { io, invocation }: CommandContext): void {
  cli
    .command('diff')
    .description('compare two graphs: graph files, REV:path, artifact folders (single, split, --train), checkpoint folders or .onnx files (exit 0 same, 1 different)')
    .argument('<a>', 'graph file, git revision of one (HEAD~1:graphs/x.ts), artifact folder, checkpoint folder, or .onnx file')
    .argument('<b>', 'the same kinds')
    .addOption(new Option('--format <format>', 'output format: text, markdown (a PR comment, with a Mermaid diagram), json, or html (both pictures with the changes marked)').choices(['text', 'markdown', 'json', 'html']).default('text'))
    .option('--out <file>', 'with --format html: the page to write (default: standard output)')
    .option('--nodes', 'include node-level detail')
    .option('--weights', 'compare tensor hashes (reads the weights)')
    .action(async (a: string, b: string, o) => {
      const { diffExitCode, diffSummaries, renderJson, renderMarkdown, renderText, resolveOperand } = await import('../../review/index.ts');
      if (o.out !== undefined && o.format !== 'html') throw new UserError(`--out writes the page of --format html; redirect the ${o.format} output instead`);
      const { checkOutputPath } = await import('../../fs/output-path.ts');
      if (o.out !== undefined) checkOutputPath(o.out, { kind: 'diff', flag: '--out', inputs: [a, b] });
      const left = await resolveOperand(a, { weights: Boolean(o.weights) });
      const right = await resolveOperand(b, { weights: Boolean(o.weights) });
      const d = diffSummaries(left.summary, right.summary, { nodes: Boolean(o.nodes), labels: [a, b] });
      invocation.exitCode = diffExitCode(d);
      if (o.format !== 'html') {
        const render = { text: renderText, markdown: renderMarkdown, json: renderJson }[o.format as 'text' | 'markdown' | 'json'];
        io.stdout.write(render(d));
        return;
      }
      const { diffPage, diffView } = await import('../../review/view/index.ts');
      const page = diffPage(diffView(left, right, d), renderText(d));
      if (o.out === undefined) io.stdout.write(page);
      else await (await import('../../fs/atomic.ts')).writeFileAtomic(o.out, page);
    });
}
