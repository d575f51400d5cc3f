/**
 * The flag parsers and option groups the commands share: one message per bad value, naming the flag.
 */
import { Command, Option } from 'commander';
import { UserError } from '../errors.ts';
import type { ParamDType } from '../ir/dtype.ts';

export const DTYPES: Record<string, ParamDType> = { fp32: 'float32', fp16: 'float16', bf16: 'bfloat16' };

export function int(name: string) {
  return (v: string): number => {
    if (!/^-?\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new UserError(`${name} must be an integer (got '${v}')`);
    return Number(v);
  };
}

export function positiveNumber(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new UserError(`${name} must be a positive number (got '${v}')`);
    return n;
  };
}

export function nonNegativeNumber(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new UserError(`${name} must be a number >= 0 (got '${v}')`);
    return n;
  };
}

/**
 * How `vlmc inputs` and `vlmc generate` build a request from images and questions: the same flags,
 * meaning the same (src/inputs).
 */
export function withRequestOptions(command: Command): Command {
  return command
    .option('--image <file>', 'image file (PNG, JPEG, WebP, GIF); repeatable: with one --prompt all belong to it, with several one per prompt', collect)
    .option('--history <file>', 'JSON array of earlier [question, answer] turns (one prompt only)')
    .option('--max-num <n>', 'max tiles per image (default: max_dynamic_patch of config.json)', int('--max-num'))
    .option('--no-thumbnail', 'no thumbnail tile (default: use_thumbnail of config.json)')
    .option('--system-message <text>', 'system message (default: config.json system_message, else the template\'s)')
    .option('--template <name>', 'conversation template (default: template of config.json)');
}

/** withRequestOptions' values; --max-num below 1 is refused here, for both commands. */
export function requestOptionsOf(o: { history?: string; maxNum?: number; thumbnail?: boolean; systemMessage?: string; template?: string }) {
  if (o.maxNum !== undefined && o.maxNum < 1) throw new UserError(`--max-num must be at least 1 (got ${o.maxNum})`);
  return { history: o.history, maxNum: o.maxNum, useThumbnail: o.thumbnail === false ? false : undefined, systemMessage: o.systemMessage, template: o.template };
}

export const collect = (v: string, prev: string[] = []) => [...prev, v];

export function collectRule(action: 'freeze' | 'unfreeze', into: { action: 'freeze' | 'unfreeze'; pattern: string }[]) {
  return (v: string, prev: string[] = []): string[] => {
    into.push({ action, pattern: v });
    return [...prev, v];
  };
}

/** --ep: the onnxruntime execution provider (EXECUTION_PROVIDERS in src/runtime/providers.ts, not imported: it loads the ONNX protobuf classes; docs/cli.md says what each needs). */
export function executionProviderOption(): Option {
  return new Option('--ep <provider>', 'onnxruntime execution provider: cpu, cuda (its libraries installed) or webgpu (a Vulkan GPU driver)').choices(['cpu', 'cuda', 'webgpu']).default('cpu');
}
