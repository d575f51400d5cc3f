/**
 * Cross-checks a graph file's architecture against the checkpoint's config.json, field by field,
 * so a graph that would bind (same shapes) but compute something else (another rope theta, eps or
 * select_layer) is caught before anything is written.
 */
import { CheckpointError } from '../errors.ts';
import type { InternVLChatModel } from '../models/internvl.ts';

type Fields = Record<string, unknown>;

function differences(prefix: string, graph: Fields, config: Fields, configName: string): string[] {
  const out: string[] = [];
  const keys = [...new Set([...Object.keys(graph), ...Object.keys(config)])].sort();
  for (const k of keys) {
    const a = JSON.stringify(graph[k]);
    const b = JSON.stringify(config[k]);
    if (a !== b) out.push(`${prefix}.${k}: graph has ${a ?? 'nothing'}, ${configName} has ${b ?? 'nothing'}`);
  }
  return out;
}

export interface ConfigSides {
  vision?: string;
  llm?: string;
  composite?: string;
}

/** Throws listing every field where the graph and the config-derived model disagree. */
export function checkAgainstConfig(graph: InternVLChatModel, derived: InternVLChatModel, names: ConfigSides): void {
  const problems: string[] = [];
  if (names.vision) problems.push(...differences('vision', visionFields(graph), visionFields(derived), names.vision));
  if (names.llm) {
    const g = { architecture: graph.language_model.architecture, ...normalizeDecoder(graph.language_model.config) };
    const d = { architecture: derived.language_model.architecture, ...normalizeDecoder(derived.language_model.config) };
    problems.push(...differences('llm', g, d, names.llm));
  }
  if (names.composite) {
    const pick = (m: InternVLChatModel) => ({
      downsampleRatio: m.options.downsampleRatio,
      psVersion: m.options.psVersion,
      selectLayer: m.options.selectLayer,
      imageSize: m.options.imageSize,
      imageFlags: m.options.imageFlags,
    });
    problems.push(...differences('internvl', pick(graph), pick(derived), names.composite));
  }
  if (problems.length > 0) {
    throw new CheckpointError(`the graph does not match the checkpoint's config (${problems.length} field${problems.length === 1 ? '' : 's'}):\n  ${problems.join('\n  ')}`);
  }
}

/** Layer-scale init only matters for fresh weights, not for what the graph computes. */
function visionFields(m: InternVLChatModel): Fields {
  const { layerScaleInit: _init, ...rest } = m.vision_model.config;
  return rest;
}

/** Defaults made explicit, so `headDim: undefined` and `headDim: hidden/heads` compare equal. */
function normalizeDecoder(c: InternVLChatModel['language_model']['config']): Fields {
  return {
    ...c,
    headDim: c.headDim ?? c.hidden / c.heads,
    partialRotaryFactor: c.partialRotaryFactor ?? 1,
    qkvBias: c.qkvBias ?? false,
    oBias: c.oBias ?? false,
    mlpBias: c.mlpBias ?? false,
    padTokenId: undefined, // training-only (no-gradient row); not an architecture difference
    ropeScaling: c.ropeScaling ?? null,
  };
}
