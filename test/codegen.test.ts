import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  CONTRIB_HEADER,
  CONTRIB_PATH,
  HEADER,
  REPO_ROOT,
  generateOpsSources,
  loadSchemas,
  type SchemaEntry,
  type SchemaFile,
} from '../codegen/generate-ops.ts';
import {
  ConcatSig,
  GENERATED_OPSET,
  LayerNormalizationSig,
  MatMulSig,
  SKIPPED_OPS,
  SliceSig,
  SplitSig,
  Add,
  Concat,
  LayerNormalization,
  Split,
} from '../src/ops/onnx.generated.ts';
import { DEPRECATED_SINCE, DROP_IN_UPGRADES, MAX_KNOWN_OPSET, OPSET_HISTORY } from '../src/ops/opset-history.generated.ts';
import {
  CONTRIB_OPS,
  GroupQueryAttentionSig,
  MatMulNBitsSig,
  MultiHeadAttentionSig,
  SkipSimplifiedLayerNormalizationSig,
} from '../src/ops/contrib.generated.ts';

function firstDifference(a: string, b: string): string {
  const al = a.split('\n');
  const bl = b.split('\n');
  for (let i = 0; i < Math.max(al.length, bl.length); i++) {
    if (al[i] !== bl[i]) return `line ${i + 1}:\n  committed: ${al[i] ?? '<EOF>'}\n  generated: ${bl[i] ?? '<EOF>'}`;
  }
  return 'no difference';
}

describe('generated ONNX op builders', () => {
  // Generating takes about a second; the freshness and determinism checks share this first run.
  let sources: ReturnType<typeof generateOpsSources>;
  beforeAll(() => {
    sources = generateOpsSources();
  });

  it('are up to date with codegen/schemas/onnx.json and codegen/generate-ops.ts', () => {
    expect(sources.size).toBe(3);
    for (const [path, expected] of sources) {
      const rel = relative(REPO_ROOT, path);
      const committed = readFileSync(path, 'utf8');
      if (committed !== expected) {
        throw new Error(
          `${rel} is stale: it differs from what codegen/generate-ops.ts produces now ` +
            `(first difference at ${firstDifference(committed, expected)}). Run \`npm run codegen\` and commit the result.`,
        );
      }
      expect(committed.startsWith((path === CONTRIB_PATH ? CONTRIB_HEADER : HEADER) + '\n')).toBe(true);
    }
  });

  it('generates deterministically', () => {
    const again = generateOpsSources();
    expect([...again.entries()]).toEqual([...sources.entries()]);
  });

  it('uses the schema version in effect at opset 17', () => {
    expect(GENERATED_OPSET).toBe(17);
    expect(LayerNormalizationSig.since).toBe(17);
    expect(LayerNormalizationSig.inputs.map((f) => f.option)).toEqual(['single', 'single', 'optional']);
    expect(LayerNormalizationSig.attrs.epsilon).toEqual({ type: 'FLOAT', required: false, default: 0.00001 });
    expect(LayerNormalizationSig.attrs.axis?.default).toBe(-1);
    expect(SliceSig.since).toBe(13);
    expect(SliceSig.inputs.map((f) => f.name)).toEqual(['data', 'starts', 'ends', 'axes', 'steps']);
    expect(SliceSig.attrs).toEqual({});
  });

  it('describes inputs, attributes and type constraints', () => {
    expect(MatMulSig.inputs).toEqual([
      { name: 'A', type: 'T', option: 'single' },
      { name: 'B', type: 'T', option: 'single' },
    ]);
    expect(MatMulSig.typeConstraints.T).toContain('float32');
    expect(MatMulSig.typeConstraints.T).toContain('bfloat16');

    expect(ConcatSig.since).toBe(13);
    expect(ConcatSig.inputs).toEqual([{ name: 'inputs', type: 'T', option: 'variadic' }]);
    expect(ConcatSig.attrs.axis).toEqual({ type: 'INT', required: true });
    // complex64/complex128 are dropped: the IR has no such dtypes.
    expect(ConcatSig.typeConstraints.T).not.toContain('complex64');
    expect(ConcatSig.typeConstraints.T).toContain('string');

    expect(SplitSig.outputs).toEqual([{ name: 'outputs', type: 'T', option: 'variadic' }]);
    expect(SplitSig.inputs[1]).toEqual({ name: 'split', type: 'tensor(int64)', option: 'optional' });
  });

  it('exports one builder per op, with the arity of the conventions', () => {
    expect(typeof Add).toBe('function');
    expect(Add.length).toBe(2); // A, B
    expect(Concat.length).toBe(2); // inputs[], attrs (required: axis)
    expect(LayerNormalization.length).toBe(3); // X, Scale, B? (attrs defaults to {})
    expect(Split.length).toBe(4); // input, split | undefined, attrs, numOutputs
  });

  it('skips subgraph, deprecated and sequence ops, saying why', () => {
    expect(Object.keys(SKIPPED_OPS)).toEqual(expect.arrayContaining(['If', 'Loop', 'Scan', 'Upsample', 'Scatter', 'SequenceAt']));
    expect(SKIPPED_OPS.If).toMatch(/subgraph/);
    expect(SKIPPED_OPS.Upsample).toMatch(/deprecated/);
  });

  it('records the opset history of every default-domain op', () => {
    expect(MAX_KNOWN_OPSET).toBe(24);
    expect(OPSET_HISTORY.ReduceMean).toEqual(expect.arrayContaining([1, 13, 18]));
    expect(OPSET_HISTORY.Add).toEqual([1, 6, 7, 13, 14]);
    expect(OPSET_HISTORY.Attention).toEqual([23, 24]);
    expect(OPSET_HISTORY.LayerNormalization).toEqual([17]);
    expect(OPSET_HISTORY.Upsample).toContain(10);
    expect(DEPRECATED_SINCE).toEqual({ GroupNormalization: 18, Scatter: 11, Upsample: 10 });
    for (const versions of Object.values(OPSET_HISTORY)) {
      expect([...versions].sort((a, b) => a - b)).toEqual(versions);
    }
  });

  it('marks drop-in schema upgrades, and not semantic changes', () => {
    expect(DROP_IN_UPGRADES.Reshape).toEqual(expect.arrayContaining([14, 19, 21, 23, 24]));
    expect(DROP_IN_UPGRADES.Split).toContain(18); // num_outputs added, optional
    expect(DROP_IN_UPGRADES.ReduceMean ?? []).not.toContain(18); // axes became an input
    expect(DROP_IN_UPGRADES.Softmax ?? []).not.toContain(13); // axis semantics changed
  });

  it('generates com.microsoft contrib builders from the onnxruntime schemas', () => {
    expect(CONTRIB_OPS.GroupQueryAttention).toBe('com.microsoft');
    expect(CONTRIB_OPS.SimplifiedLayerNormalization).toBe('');
    expect(GroupQueryAttentionSig.domain).toBe('com.microsoft');
    expect(GroupQueryAttentionSig.attrs.kv_num_heads).toEqual({ type: 'INT', required: true });
    expect(GroupQueryAttentionSig.typeConstraints.T).toEqual(['float32', 'float16', 'bfloat16']);
    expect(MatMulNBitsSig.inputs.map((f) => f.name).slice(0, 4)).toEqual(['A', 'B', 'scales', 'zero_points']);
    expect(MultiHeadAttentionSig.attrs.num_heads?.required).toBe(true);
    expect(SkipSimplifiedLayerNormalizationSig.outputs.map((f) => f.name)).toEqual(['output', 'mean', 'inv_std_var', 'input_skip_bias_sum']);
  });

  it('escapes parameter names that are not usable identifiers', () => {
    const real = loadSchemas();
    const fake: SchemaEntry = {
      name: 'FakeOp',
      domain: '',
      sinceVersion: 1,
      deprecated: false,
      doc: 'A made-up op. Comment terminators */ must not end the JSDoc.',
      minInput: 3,
      maxInput: 4,
      minOutput: 1,
      maxOutput: 1,
      inputs: [
        { name: 'var', option: 'single', typeStr: 'T', description: 'reserved word' },
        { name: 'in', option: 'optional', typeStr: 'T', description: 'optional before a required one' },
        { name: 'x.y', option: 'single', typeStr: 'T', description: 'not an identifier' },
        { name: 'default', option: 'optional', typeStr: 'T', description: 'trailing optional' },
      ],
      outputs: [{ name: 'Y', option: 'single', typeStr: 'T', description: 'out' }],
      attributes: [{ name: 'alpha', type: 'FLOAT', required: false, description: 'a float', default: 0.5 }],
      typeConstraints: { T: ['tensor(float)', 'tensor(complex64)'] },
    };
    const schemas: SchemaFile = { ...real, ops: [fake] };
    const text = [...generateOpsSources(schemas).values()][0]!;
    expect(text).toContain(
      [
        'export function FakeOp(',
        '  var_: Value,',
        '  in_: Value | undefined,',
        '  x_y_: Value,',
        '  default_?: Value,',
        '  attrs: FakeOpAttrs = {},',
        '): Value {',
      ].join('\n'),
    );
    expect(text).toContain('return emit(FakeOpSig, [var_, in_, x_y_, default_], attrs)[0]!;');
    expect(text).toContain("typeConstraints: { T: ['float32'] }");
    expect(text).toContain('Comment terminators *\\/ must not');
  });
});
