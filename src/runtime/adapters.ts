/**
 * LoRA adapters chosen at run time. onnxruntime-node cannot activate ONNX Runtime's own LoRA
 * adapters (`.onnx_adapter`; its run options take a log level and a tag only), so an artifact built
 * with `--lora-inputs` takes every wrapped Linear's lora_A / lora_B as graph inputs, and these
 * feeds come from PEFT adapter folders (`vlmc run --adapter DIR`, `vlmc generate --adapter DIR`):
 * lora_A as saved, lora_B times the adapter's scaling (the graph adds x A^T B^T unscaled), zeros
 * where no adapter covers a Linear (the base model).
 */
import { UserError } from '../errors.ts';
import type { ManifestIO } from '../artifact/format.ts';
import { loraModuleOf, type LoraPartInfo } from '../dsl/lora.ts';
import { openPeftAdapter } from '../bind/lora-sources.ts';
import type { HostTensor } from './session.ts';

/** The inputs of a graph that are LoRA adapters (`<module>.lora_A.weight`, `<module>.lora_B.weight`). */
export function adapterInputs(inputs: readonly ManifestIO[]): ManifestIO[] {
  return inputs.filter((i) => loraModuleOf(i.name) !== undefined);
}

/** The graph's inputs without its adapters: the data a request brings. */
export function dataInputs(inputs: readonly ManifestIO[]): ManifestIO[] {
  return inputs.filter((i) => loraModuleOf(i.name) === undefined);
}

/**
 * Feeds for the adapter inputs among `inputs` from the adapter folders (each adapts the part whose
 * Linears its modules are); every other adapter input gets zeros (rank 1, or the rank of the
 * adapter fed to its part).
 */
export async function adapterFeeds(inputs: readonly ManifestIO[], dirs: readonly string[], where: string): Promise<Record<string, HostTensor>> {
  const specs = adapterInputs(inputs);
  if (dirs.length > 0 && specs.length === 0) throw new UserError(`--adapter: ${where} takes no adapters at run time (it was built without --lora-inputs); merge an adapter into an artifact with vlmc build --adapter DIR`);
  const byName = new Map(specs.map((s) => [s.name, s]));
  const feeds: Record<string, HostTensor> = {};
  const rankOf = new Map<string, number>();
  for (const dir of dirs) {
    const adapter = await openPeftAdapter(dir, partsOf(specs), weightNames(specs));
    try {
      const part = adapter.lora.parts[0]!;
      if (rankOf.has(part.module)) throw new UserError(`--adapter ${dir}: another --adapter already adapts ${part.module}; give one adapter per part`);
      rankOf.set(part.module, part.r);
      for (const module of part.modules) {
        for (const which of ['A', 'B'] as const) {
          const name = `${part.module}.${module}.lora_${which}.weight`;
          const spec = byName.get(name);
          if (!spec) throw new UserError(`--adapter ${dir}: adapts ${part.module}.${module}, which ${where} has no LoRA input for (it takes LoRA on the targets it was built with)`);
          const key = adapter.layout.keysFor(name) as string;
          const values = await adapter.checkpoint.readAsFloat32(key);
          const scaling = which === 'B' ? adapter.lora.scalingFor(name) : 1;
          for (let i = 0; i < values.length && scaling !== 1; i++) values[i]! *= scaling;
          feeds[name] = { dtype: 'float32', shape: [...adapter.checkpoint.entry(key).shape], data: values };
        }
      }
    } finally {
      await adapter.checkpoint.close();
    }
  }
  for (const spec of specs) {
    if (feeds[spec.name]) continue;
    const module = partOf(spec.name);
    const r = rankOf.get(module) ?? 1;
    const shape = spec.shape.map((d) => (typeof d === 'number' ? d : r));
    feeds[spec.name] = { dtype: 'float32', shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) };
  }
  return feeds;
}

/** The part (`language_model`) an adapter input belongs to, from its rank dim `lora_rank_<part>`. */
function partOf(name: string): string {
  return name.split('.')[0]!;
}

/** The LoRA parts the inputs cover, as openPeftAdapter needs them. */
function partsOf(specs: readonly ManifestIO[]): Record<string, LoraPartInfo> {
  const out: Record<string, LoraPartInfo> = {};
  for (const s of specs) {
    const module = partOf(s.name);
    out[module] = { module, targets: [], configField: '', flag: '--adapter' };
  }
  return out;
}

/** The base weights the adapter inputs wrap: what an adapter's modules must name. */
function weightNames(specs: readonly ManifestIO[]): Set<string> {
  return new Set(specs.map((s) => `${loraModuleOf(s.name)!.module}.weight`));
}
