/**
 * Checkpoint layouts as data: how a graph's parameter names (its module paths, which are the
 * unified checkpoint's keys) become one checkpoint's keys. A layout is a list of prefix maps, each
 * with rename rules; a rule with several keys is a concatenation along axis 0, done while
 * streaming. The binder (src/bind/plan.ts) reads every source through its layout and knows no
 * family; the families supply their layouts (src/models/*.names.ts).
 */

/** Checkpoint keys of one graph parameter: one key, or several concatenated along axis 0. */
export type KeySource = string | string[];

/** A rename inside a part: `{n}` stands for a layer index. `to` lists several keys for a concat. */
export interface RenameRule {
  from: string;
  to: string | string[];
}

/** Keys that are the graph's own names below the prefix: the remainder is kept as it is. */
export const IDENTITY_RULES: RenameRule[] = [{ from: '{rest}', to: '{rest}' }];

/** A graph-name prefix, the checkpoint-key prefix it becomes, and the renames below it. */
export interface PrefixMap {
  graph: string;
  checkpoint: string;
  rules: RenameRule[];
}

/** Resolves graph parameter names to checkpoint keys and back through a list of prefix maps. */
export class KeyLayout {
  private readonly compiled: { prefix: PrefixMap; template: string; from: RegExp; to: string[] }[];

  constructor(
    /** Shown in reports and the manifest (`hf:transformers-4`). */
    readonly name: string,
    maps: PrefixMap[],
    /**
     * True for the original InternVL layouts (Path A's unified checkpoint, Path B's parts under a
     * prefix): the manifest names such parameters by their graph name and records no layout.
     */
    readonly original = false,
  ) {
    this.compiled = maps.flatMap((prefix) =>
      prefix.rules.map((r) => ({ prefix, template: r.from, from: patternOf(r.from), to: Array.isArray(r.to) ? r.to : [r.to] })),
    );
  }

  /** The checkpoint key(s) holding graph parameter `name`; undefined when no rule covers it. */
  keysFor(name: string): KeySource | undefined {
    for (const { prefix, from, to } of this.compiled) {
      if (!name.startsWith(prefix.graph)) continue;
      const m = from.exec(name.slice(prefix.graph.length));
      if (!m) continue;
      const keys = to.map((t) => prefix.checkpoint + fill(t, m.groups ?? {}));
      return keys.length === 1 ? keys[0]! : keys;
    }
    return undefined;
  }

  /** The quantised pair holding graph parameter `name`, where the checkpoint stores it so (PackedKeyLayout). */
  packedKeysFor(_name: string): PackedKeys | undefined {
    return undefined;
  }

  /** The graph parameter a checkpoint key feeds (all parts of a concat name the fused parameter). */
  nameFor(key: string): string | undefined {
    for (const { prefix, template, to } of this.compiled) {
      if (!key.startsWith(prefix.checkpoint)) continue;
      const rest = key.slice(prefix.checkpoint.length);
      for (const t of to) {
        const m = patternOf(t).exec(rest);
        if (m) return prefix.graph + fill(template, m.groups ?? {});
      }
    }
    return undefined;
  }
}

const patterns = new Map<string, RegExp>();

/** `encoder.layers.{n}.ls1` -> /^encoder\.layers\.(?<n>\d+)\.ls1$/; `{rest}` matches anything. */
function patternOf(template: string): RegExp {
  let re = patterns.get(template);
  if (!re) {
    const body = template
      .replace(/[.+?^$()|[\]\\]/g, '\\$&')
      .replace(/\{n\}/g, '(?<n>\\d+)')
      .replace(/\{rest\}/g, '(?<rest>.+)');
    re = new RegExp(`^${body}$`);
    patterns.set(template, re);
  }
  return re;
}

function fill(template: string, groups: Record<string, string>): string {
  return template.replace(/\{(n|rest)\}/g, (_, g: string) => groups[g] ?? '');
}

/** A source whose keys are the graph's names (Path A's unified checkpoint). */
export function identityLayout(): KeyLayout {
  return new KeyLayout('original', [{ graph: '', checkpoint: '', rules: IDENTITY_RULES }], true);
}

/** A source that holds one part of the graph, its keys without the part's prefix (Path B). */
export function partLayout(graphPrefix: string, checkpointPrefix = ''): KeyLayout {
  return new KeyLayout(`original:${graphPrefix}`, [{ graph: graphPrefix, checkpoint: checkpointPrefix, rules: IDENTITY_RULES }], true);
}

/** A parameter stored quantised as a pair of checkpoint tensors and decoded while binding. */
export interface PackedKeys {
  format: 'mxfp4';
  blocks: string;
  scales: string;
}

/**
 * A layout whose checkpoint stores some parameters quantised: where the base layout's key `k` is
 * absent and `k_blocks` / `k_scales` are there (the Hugging Face MXFP4 convention: GPT-OSS's
 * `experts.gate_up_proj_blocks`), the parameter is read from the pair and dequantised at bind.
 * Every other parameter resolves exactly as in the base layout.
 */
export class PackedKeyLayout extends KeyLayout {
  constructor(
    private readonly base: KeyLayout,
    readonly format: PackedKeys['format'],
    private readonly stored: (key: string) => boolean,
  ) {
    super(`${base.name}+${format}`, [], base.original);
  }

  override keysFor(name: string): KeySource | undefined {
    return this.base.keysFor(name);
  }

  override packedKeysFor(name: string): PackedKeys | undefined {
    const key = this.base.keysFor(name) ?? (this.original ? name : undefined);
    if (typeof key !== 'string' || this.stored(key)) return undefined;
    const [blocks, scales] = [`${key}_blocks`, `${key}_scales`];
    return this.stored(blocks) || this.stored(scales) ? { format: this.format, blocks, scales } : undefined;
  }

  override nameFor(key: string): string | undefined {
    const dense = /_(blocks|scales)$/.test(key) && !this.stored(key.replace(/_(blocks|scales)$/, '')) ? key.replace(/_(blocks|scales)$/, '') : key;
    return this.base.nameFor(dense);
  }
}
