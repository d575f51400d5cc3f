/** Host tensors from and to safetensors files: `vlmc run`'s inputs and outputs, `vlmc generate`'s inputs. */
import * as nodePath from 'node:path';
import { UserError } from '../errors.ts';
import { makeFolders } from '../fs/atomic.ts';
import { explainFs } from '../fs/errors.ts';
import { resultMetadata } from '../fs/output-path.ts';
import { SafetensorsFile } from '../checkpoint/safetensors.ts';
import { writeSafetensors, type TensorToWrite } from '../checkpoint/safetensors-write.ts';
import type { DeclaredTensor } from './check-inputs.ts';
import type { HostTensor } from './session.ts';

/** Reads the tensors of `file` (only those named in `names` when given; extra tensors are ignored). */
export async function readInputs(file: string, names?: readonly string[], check?: (declared: ReadonlyMap<string, DeclaredTensor>) => void): Promise<Record<string, HostTensor>> {
  const st = await SafetensorsFile.open(file);
  try {
    check?.(st.entries);
    const out: Record<string, HostTensor> = {};
    for (const key of names ? names.filter((n) => st.has(n)) : st.keys()) {
      const e = st.entry(key);
      const bytes = await st.readAll(e);
      if (e.dtype === 'I64') out[key] = { dtype: 'int64', shape: [...e.shape], data: new BigInt64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8) };
      else if (e.dtype === 'F32' || e.dtype === 'F16' || e.dtype === 'BF16') out[key] = { dtype: 'float32', shape: [...e.shape], data: await st.readAsFloat32(e) };
      else if (e.dtype === 'I32') out[key] = { dtype: 'int64', shape: [...e.shape], data: BigInt64Array.from(new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), (v) => BigInt(v)) };
      else throw new UserError(`${file}: input '${key}' has dtype ${e.dtype}; inputs must be F32 or I64`);
    }
    return out;
  } finally {
    await st.close();
  }
}

export async function writeOutputs(file: string, outputs: Record<string, HostTensor>): Promise<void> {
  const tensors: TensorToWrite[] = Object.entries(outputs).map(([name, t]) => ({
    name,
    dtype: t.dtype === 'int64' ? 'I64' : 'F32',
    shape: t.shape,
    data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
  }));
  await explainFs(file, async () => {
    await makeFolders(nodePath.dirname(nodePath.resolve(file)));
    await writeSafetensors(file, tensors, resultMetadata('outputs'));
  });
}
