/**
 * Module hooks for graph files (registered by src/loader/register.ts): `import ... from 'vlmc'`
 * resolves to the vlmc that is running, wherever the graph file lies (outside any project, or in a
 * project with its own copy of vlmc), so one zoo builds the graph; and TypeScript graph files and
 * their helpers load as ES modules even in a folder whose package.json does not say
 * `"type": "module"` (the default of `npm init`). Plain JavaScript: hooks run on the loader thread.
 */
let vlmcEntry;

export function initialize(data) {
  vlmcEntry = data.vlmcEntry;
}

export async function resolve(specifier, context, nextResolve) {
  if (specifier === 'vlmc') return { url: vlmcEntry, format: 'module', shortCircuit: true };
  const resolved = await nextResolve(specifier, context);
  if (isOwnTypeScript(resolved.url) && resolved.format !== 'module') return { ...resolved, format: 'module' };
  return resolved;
}

/** A .ts / .mts file outside node_modules: a graph file or one of its helpers. */
function isOwnTypeScript(url) {
  return url.startsWith('file:') && /\.m?ts$/.test(new URL(url).pathname) && !url.includes('/node_modules/');
}
