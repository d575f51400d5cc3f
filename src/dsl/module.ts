/**
 * Modules: the unit of authoring. A module's parameters and children are its own properties, and
 * a property's name is the next segment of its path, so the path of every parameter *is* its key in
 * the unified checkpoint (`language_model.model.layers.0.self_attn.q_proj.weight`).
 */
import { Param, type Init, type ParamRole, type Site, type Value } from '../ir/graph.ts';
import type { ParamDType } from '../ir/dtype.ts';
import { captureSite } from '../ir/site.ts';
import { activeBuilder } from '../ir/builder.ts';

export type Tensor = Value;

export abstract class Module {
  /** Dotted path from the root, assigned by `assignPaths` once the tree is built. */
  path = '';
  /** Where the module was declared (the graph file's line), for error messages. */
  readonly site: Site = captureSite();

  /** Declare a parameter; its name is set from the property it is stored in. */
  protected param(shape: number[], init: Init, dtype: ParamDType = 'float32', role: ParamRole = 'weight'): Param {
    for (const d of shape) {
      if (!Number.isInteger(d) || d <= 0) throw new Error(`parameter shape [${shape.join(', ')}] must have positive integer dims`);
    }
    return new Param('', [...shape], dtype, init, role);
  }

  /** Run `forward` inside this module's scope, so nodes and errors carry its path. */
  call<A extends unknown[], R>(this: Module & { forward(...args: A): R }, ...args: A): R {
    return activeBuilder().withScope(this.path, this.site, () => this.forward(...args));
  }

  /** Run `fn` inside this module's scope (a method other than `forward`, e.g. a cached decode). */
  within<R>(fn: () => R): R {
    return activeBuilder().withScope(this.path, this.site, fn);
  }
}

/** An indexed list of modules (`layers.0`, `layers.1`, ...). */
export class ModuleList<T extends Module> extends Module {
  readonly items: T[];
  constructor(items: T[]) {
    super();
    this.items = items;
  }
  get length(): number {
    return this.items.length;
  }
  at(i: number): T {
    const m = this.items[i];
    if (!m) throw new Error(`${this.path}: index ${i} out of range (length ${this.items.length})`);
    return m;
  }
}

const SKIP = new Set(['path', 'site', 'items']);

/**
 * Names every module and parameter of the tree by its property path. The names follow from the
 * tree alone, so naming it again (every compile does) changes nothing.
 */
export function assignPaths(root: Module, prefix = ''): void {
  root.path = prefix;
  const join = (name: string) => (prefix ? `${prefix}.${name}` : name);
  if (root instanceof ModuleList) root.items.forEach((m, i) => assignPaths(m, join(String(i))));
  for (const [name, value] of Object.entries(root)) {
    if (SKIP.has(name)) continue;
    if (value instanceof Module) assignPaths(value, join(name));
    else if (value instanceof Param) value.nameOnce(join(name));
  }
}

/** Every parameter under a module, in declaration order. */
export function collectParams(root: Module): Param[] {
  const out: Param[] = [];
  const visit = (m: Module) => {
    if (m instanceof ModuleList) m.items.forEach(visit);
    for (const [name, value] of Object.entries(m)) {
      if (SKIP.has(name)) continue;
      if (value instanceof Module) visit(value);
      else if (value instanceof Param) out.push(value);
    }
  };
  visit(root);
  return out;
}

/** Every module under (and including) root, depth first. */
export function collectModules(root: Module): Module[] {
  const out: Module[] = [];
  const visit = (m: Module) => {
    out.push(m);
    if (m instanceof ModuleList) m.items.forEach(visit);
    for (const [name, value] of Object.entries(m)) if (!SKIP.has(name) && value instanceof Module) visit(value);
  };
  visit(root);
  return out;
}

/** Throw a GraphError that names the current module and the graph file's line. */
export function fail(message: string): never {
  throw activeBuilder().error(message);
}
