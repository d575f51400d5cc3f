/**
 * src/tensor/convert-wasm.generated.ts must be what codegen/generate-wasm.ts makes of
 * codegen/wasm/convert.wat now, so an edit to the kernels cannot ship without their binary.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONVERT_WASM_PATH, HEADER, REPO_ROOT, generateWasmSources } from '../codegen/generate-wasm.ts';
import { CONVERT_WASM_BASE64 } from '../src/tensor/convert-wasm.generated.ts';

describe('generated WebAssembly kernels', () => {
  it('are up to date with codegen/wasm/convert.wat and codegen/generate-wasm.ts', async () => {
    const sources = await generateWasmSources();
    expect([...sources.keys()]).toEqual([CONVERT_WASM_PATH]);
    for (const [path, expected] of sources) {
      const committed = readFileSync(path, 'utf8');
      if (committed !== expected) {
        throw new Error(
          `${relative(REPO_ROOT, path)} is stale: it differs from what codegen/generate-wasm.ts assembles now. ` +
            'Run `npm run codegen` and commit the result.',
        );
      }
      expect(committed.startsWith(HEADER + '\n')).toBe(true);
    }
  });

  it('assembles deterministically', async () => {
    const a = await generateWasmSources();
    const b = await generateWasmSources();
    expect([...a.entries()]).toEqual([...b.entries()]);
  });

  it('is a valid module in this runtime, exporting one kernel per conversion', () => {
    const bytes = Buffer.from(CONVERT_WASM_BASE64, 'base64');
    expect(WebAssembly.validate(bytes)).toBe(true);
    const module = new WebAssembly.Module(bytes);
    expect(WebAssembly.Module.imports(module)).toEqual([{ module: 'env', name: 'memory', kind: 'memory' }]);
    expect(WebAssembly.Module.exports(module).map((e) => e.name).sort()).toEqual(
      ['bf16_to_f16', 'bf16_to_f32', 'f16_to_bf16', 'f16_to_f32', 'f32_to_bf16', 'f32_to_f16'],
    );
  });
});
