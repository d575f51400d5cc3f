/**
 * vlmc's layers, as data, and the import rules derived from them (checked by
 * test/architecture.test.ts; `npx depcruise src` prints the same report).
 *
 * A module imports only from its own layer and the layers below it, and no import cycle exists
 * anywhere, type-only imports included. The order follows the pipeline: a graph file's DSL is
 * traced into the IR, passes rewrite it, the compiler drives both; emitting, binding and writing
 * make an artifact; the runtime runs it; features (generate, train, diff, init, export) and
 * commands sit on top. docs/architecture.md (Layers) explains each layer.
 *
 * A path ending in '/' is a folder; any other path is one file. A file named here belongs to its
 * layer even where its folder belongs to another (the artifact format sits at the bottom, the
 * artifact writer far above it).
 */
const LAYERS = [
  {
    name: 'base',
    what: 'errors, the version, file-system helpers, the artifact format (file names, manifest schema, its reader)',
    paths: ['src/errors.ts', 'src/version.ts', 'src/fs/', 'src/artifact/format.ts'],
  },
  { name: 'ir', what: 'the IR, its builder and shape inference; the op signature type the builder checks against', paths: ['src/ir/', 'src/ops/signature.ts'] },
  { name: 'tensor', what: 'host buffers in IR dtypes: dtype conversion, block quantisation, MXFP4 dequantisation', paths: ['src/tensor/', 'src/quant/blockwise.ts', 'src/quant/mxfp4.ts'] },
  { name: 'ops', what: 'the generated op builders and the emitter', paths: ['src/ops/'] },
  { name: 'dsl', what: 'modules, parameters, the model root, freeze rules, checkpoint key layouts', paths: ['src/dsl/'] },
  { name: 'nn', what: 'shared building blocks', paths: ['src/nn/'] },
  { name: 'models', what: 'the zoo and its config readers', paths: ['src/models/'] },
  { name: 'passes', what: 'graph passes, autodiff and its gradient rules', paths: ['src/passes/'] },
  { name: 'compiler', what: 'trace + pass pipeline; loading graph files', paths: ['src/compile.ts', 'src/graph-file.ts', 'src/loader/'] },
  { name: 'formats', what: 'ONNX protobuf (emit, read, external data); safetensors, config.json', paths: ['src/onnx/', 'src/checkpoint/'] },
  { name: 'requests', what: 'images, prompts, tokenizers, model inputs', paths: ['src/preprocess/', 'src/prompt/', 'src/tokenizer/', 'src/inputs/'] },
  { name: 'bind', what: 'binding plans: every parameter to its checkpoint key', paths: ['src/bind/'] },
  { name: 'artifact', what: 'writing artifacts (and the quantising write transform)', paths: ['src/artifact/', 'src/quant/'] },
  { name: 'runtime', what: 'ONNX Runtime sessions, host tensors, input checks', paths: ['src/runtime/'] },
  { name: 'features', what: 'the split artifact and generation, training, locks and diff, init, export', paths: ['src/generate/', 'src/train/', 'src/review/', 'src/init/', 'src/export/'] },
  { name: 'commands', what: 'vlmc build, run, demo', paths: ['src/build.ts', 'src/run.ts', 'src/demo.ts'] },
  { name: 'entry', what: 'the library API and the CLI', paths: ['src/index.ts', 'src/cli/'] },
];

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const pattern = (p) => (p.endsWith('/') ? `^${escape(p)}` : `^${escape(p)}$`);
const FILES = LAYERS.flatMap((l) => l.paths.filter((p) => !p.endsWith('/')).map((p) => ({ path: p, layer: l.name })));

/** A layer as a depcruise path filter: its folders and files, less the files named in other layers. */
function filter(layer) {
  const folders = layer.paths.filter((p) => p.endsWith('/'));
  const elsewhere = FILES.filter((f) => f.layer !== layer.name && folders.some((d) => f.path.startsWith(d))).map((f) => pattern(f.path));
  return elsewhere.length > 0 ? { path: layer.paths.map(pattern), pathNot: elsewhere } : { path: layer.paths.map(pattern) };
}

/** One rule per pair of layers (lower, higher): the lower may not import the higher. */
const layerRules = LAYERS.flatMap((lower, i) =>
  LAYERS.slice(i + 1).map((higher) => ({
    name: `layer: ${lower.name} may not import ${higher.name}`,
    comment: `${lower.name} (${lower.what}) sits below ${higher.name} (${higher.what}); move the shared piece down or the importer up`,
    severity: 'error',
    from: filter(lower),
    to: filter(higher),
  })),
);

const everyLayer = LAYERS.flatMap((l) => l.paths.map(pattern));
const UNLAYERED = 'every module under src/ belongs to a layer: add its folder or file to LAYERS in .dependency-cruiser.cjs';

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'no import cycles, type-only imports included: put what both sides need in a module of its own',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...layerRules,
    { name: 'unlayered: imports', comment: UNLAYERED, severity: 'error', from: { path: '^src/', pathNot: everyLayer }, to: {} },
    { name: 'unlayered: imported', comment: UNLAYERED, severity: 'error', from: {}, to: { path: '^src/', pathNot: everyLayer } },
    { name: 'unlayered: alone', comment: UNLAYERED, severity: 'error', from: { orphan: true, path: '^src/', pathNot: everyLayer }, to: {} },
  ],
  options: {
    includeOnly: '^src/',
    // Type-only imports count: a cycle of types is still a cycle for a reader.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.mjs', '.js'] },
    // Written by codegen/ (pinned by test/codegen.test.ts), they import only types from ir/ and
    // ops/signature.ts; imports of them are checked, their 16k lines are not parsed.
    doNotFollow: { path: '\\.generated\\.ts$' },
  },
};

// For test/architecture.test.ts; not enumerable, because dependency-cruiser refuses keys it does not know.
Object.defineProperty(module.exports, 'layers', { value: LAYERS, enumerable: false });
