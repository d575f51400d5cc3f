/**
 * A corpus of broken checkpoints, generated at test time. Each must fail with a CheckpointError
 * whose message names the file, the tensor (where there is one) and the specific problem.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Checkpoint } from '../src/checkpoint/checkpoint.ts';
import { SafetensorsFile } from '../src/checkpoint/safetensors.ts';
import { writeSafetensors, type TensorToWrite } from '../src/checkpoint/safetensors-write.ts';
import { CheckpointError } from '../src/errors.ts';

let tmp: string;
let counter = 0;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'vlmc-corpus-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** 8-byte little-endian length prefix + header text + data, with no validation at all. */
function rawSafetensors(header: string | object, data = new Uint8Array(0), declaredLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, declaredLength ?? BigInt(json.byteLength), true);
  out.set(json, 8);
  out.set(data, 8 + json.byteLength);
  return out;
}

async function writeTemp(bytes: Uint8Array | string): Promise<string> {
  const file = path.join(tmp, `case-${counter++}.safetensors`);
  await writeFile(file, bytes);
  return file;
}

/** Opens `file`, expecting a CheckpointError whose message names the file and contains every part. */
async function expectOpenError(file: string, ...parts: string[]): Promise<void> {
  const error = await SafetensorsFile.open(file).then(
    async (st) => {
      await st.close();
      return undefined;
    },
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(CheckpointError);
  const message = (error as Error).message;
  expect(message).toContain(file);
  for (const part of parts) expect(message).toContain(part);
}

const f32 = (n: number) => ({ dtype: 'F32', shape: [n], data_offsets: [0, 4 * n] });

describe('malformed safetensors files', () => {
  it('truncated file', async () => {
    await expectOpenError(await writeTemp(new Uint8Array(5)), 'file is 5 bytes, too short to hold the 8-byte header length');
  });

  it('header length past the end', async () => {
    const file = await writeTemp(rawSafetensors({ a: f32(1) }, new Uint8Array(4), 1000n));
    await expectOpenError(file, 'header length 1000 runs past the end of the file');
  });

  it('header length 0', async () => {
    await expectOpenError(await writeTemp(rawSafetensors('', new Uint8Array(16), 0n)), 'header length is 0');
  });

  it('header length over the 100 MB cap', async () => {
    await expectOpenError(await writeTemp(rawSafetensors('{}', new Uint8Array(0), 2n ** 40n)), 'exceeds the 104857600-byte limit');
  });

  it('non-JSON header', async () => {
    await expectOpenError(await writeTemp(rawSafetensors('{"a": {"dtype": ')), 'header is not valid JSON');
  });

  it('header that is not UTF-8', async () => {
    const bytes = rawSafetensors('{"a":1}');
    bytes[10] = 0xff;
    await expectOpenError(await writeTemp(bytes), 'header is not valid UTF-8');
  });

  it('header that is not an object', async () => {
    await expectOpenError(await writeTemp(rawSafetensors('[1,2]')), 'header must be a JSON object, got an array');
  });

  it('metadata with a non-string value', async () => {
    await expectOpenError(await writeTemp(rawSafetensors({ __metadata__: { format: 1 } })), '__metadata__ "format" must be a string');
    await expectOpenError(await writeTemp(rawSafetensors({ __metadata__: 'pt' })), '__metadata__ must be an object');
  });

  it('overlapping offsets', async () => {
    const header = {
      'a.weight': { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
      'b.weight': { dtype: 'F32', shape: [4], data_offsets: [8, 24] },
    };
    await expectOpenError(
      await writeTemp(rawSafetensors(header, new Uint8Array(24))),
      'tensor "a.weight" data_offsets [0, 16] overlap tensor "b.weight" data_offsets [8, 24]',
    );
  });

  it('refuses gaps between ranges, as the reference library does', async () => {
    const header = {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [1], data_offsets: [12, 16] },
    };
    await expectOpenError(await writeTemp(rawSafetensors(header, new Uint8Array(16))), 'tensor "b"', 'leave a gap');
  });

  it('accepts empty tensors at the contiguous position', async () => {
    const header = {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      e: { dtype: 'F32', shape: [0], data_offsets: [8, 8] },
      b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
    };
    const st = await SafetensorsFile.open(await writeTemp(rawSafetensors(header, new Uint8Array(12))));
    expect(st.keys()).toEqual(['a', 'b', 'e']);
    await st.close();
  });

  it('out-of-range offsets', async () => {
    const file = await writeTemp(rawSafetensors({ 'a.weight': f32(8) }, new Uint8Array(16)));
    await expectOpenError(file, 'tensor "a.weight"', 'data_offsets [0, 32] run past the data section, which holds 16 bytes');
  });

  it('begin after end', async () => {
    const header = { 'a.weight': { dtype: 'F32', shape: [0], data_offsets: [8, 4] } };
    await expectOpenError(await writeTemp(rawSafetensors(header, new Uint8Array(8))), 'tensor "a.weight"', 'data_offsets must be [begin, end]', '[8,4]');
  });

  it('unknown dtype', async () => {
    const header = { 'a.weight': { dtype: 'F12', shape: [1], data_offsets: [0, 4] } };
    await expectOpenError(await writeTemp(rawSafetensors(header, new Uint8Array(4))), 'tensor "a.weight"', 'unknown dtype "F12"');
  });

  it('shape / byte length mismatch', async () => {
    const header = { 'a.weight': { dtype: 'F32', shape: [5, 6], data_offsets: [0, 100] } };
    await expectOpenError(
      await writeTemp(rawSafetensors(header, new Uint8Array(100))),
      'tensor "a.weight": data_offsets [0, 100] hold 100 bytes but shape [5,6] x F32 needs 120',
    );
  });

  it('negative and non-integer shapes', async () => {
    for (const shape of [[2, -1], [1.5], ['3'], 4]) {
      const header = { 'a.weight': { dtype: 'F32', shape, data_offsets: [0, 4] } };
      await expectOpenError(
        await writeTemp(rawSafetensors(header, new Uint8Array(4))),
        'tensor "a.weight"',
        `shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`,
      );
    }
  });

  it('missing and unexpected entry fields', async () => {
    const missing = { 'a.weight': { dtype: 'F32', shape: [1] } };
    await expectOpenError(await writeTemp(rawSafetensors(missing, new Uint8Array(4))), 'tensor "a.weight": missing field "data_offsets"');
    const extra = { 'a.weight': { ...f32(1), offsets: [0, 4] } };
    await expectOpenError(await writeTemp(rawSafetensors(extra, new Uint8Array(4))), 'tensor "a.weight": unexpected field "offsets"');
  });

  it('reports a missing file', async () => {
    await expectOpenError(path.join(tmp, 'absent.safetensors'), 'cannot open');
  });
});

// ---------------------------------------------------------------------------------------------
// Checkpoint folders

const tensor = (name: string, values: number[]): TensorToWrite => ({
  name,
  dtype: 'F32',
  shape: [values.length],
  data: new Uint8Array(Float32Array.from(values).buffer),
});

interface FolderSpec {
  config?: string | null;
  shards?: Record<string, TensorToWrite[]>;
  weightMap?: Record<string, string>;
  index?: string;
}

async function makeCheckpoint(spec: FolderSpec): Promise<string> {
  const dir = path.join(tmp, `ckpt-${counter++}`);
  await mkdir(dir);
  if (spec.config !== null) await writeFile(path.join(dir, 'config.json'), spec.config ?? '{"model_type": "test"}');
  for (const [name, tensors] of Object.entries(spec.shards ?? {})) await writeSafetensors(path.join(dir, name), tensors);
  if (spec.index !== undefined) await writeFile(path.join(dir, 'model.safetensors.index.json'), spec.index);
  else if (spec.weightMap) {
    await writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: spec.weightMap }));
  }
  return dir;
}

async function expectCheckpointError(dir: string, ...parts: string[]): Promise<void> {
  const error = await Checkpoint.open(dir).then(
    async (c) => {
      await c.close();
      return undefined;
    },
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(CheckpointError);
  for (const part of parts) expect((error as Error).message).toContain(part);
}

const twoShards = {
  'model-00001-of-00002.safetensors': [tensor('a.weight', [1, 2]), tensor('b.weight', [3])],
  'model-00002-of-00002.safetensors': [tensor('c.weight', [4, 5, 6])],
};
const twoShardMap = {
  'a.weight': 'model-00001-of-00002.safetensors',
  'b.weight': 'model-00001-of-00002.safetensors',
  'c.weight': 'model-00002-of-00002.safetensors',
};

describe('checkpoint folders', () => {
  it('opens a valid sharded checkpoint', async () => {
    const ckpt = await Checkpoint.open(await makeCheckpoint({ shards: twoShards, weightMap: twoShardMap }));
    try {
      expect(ckpt.keys()).toEqual(['a.weight', 'b.weight', 'c.weight']);
      expect(ckpt.files).toHaveLength(2);
      expect(ckpt.entry('c.weight').file).toContain('model-00002-of-00002.safetensors');
      expect(Array.from(await ckpt.readAsFloat32('c.weight'))).toEqual([4, 5, 6]);
      expect(ckpt.config).toEqual({ model_type: 'test' });
    } finally {
      await ckpt.close();
    }
  });

  it('missing shard', async () => {
    const dir = await makeCheckpoint({
      shards: { 'model-00001-of-00002.safetensors': twoShards['model-00001-of-00002.safetensors'] },
      weightMap: twoShardMap,
    });
    await expectCheckpointError(dir, 'model.safetensors.index.json', 'shard "model-00002-of-00002.safetensors"', 'tensor "c.weight"', 'is missing');
  });

  it('index path escaping the folder via ..', async () => {
    const dir = await makeCheckpoint({ shards: twoShards, weightMap: { ...twoShardMap, 'c.weight': '../outside.safetensors' } });
    await writeSafetensors(path.join(dir, '..', 'outside.safetensors'), [tensor('c.weight', [1])]);
    await expectCheckpointError(dir, 'model.safetensors.index.json', 'shard "../outside.safetensors"', 'tensor "c.weight"', 'contains a ".." segment');
    const nested = await makeCheckpoint({ shards: twoShards, weightMap: { ...twoShardMap, 'c.weight': 'sub/../../x.safetensors' } });
    await expectCheckpointError(nested, 'contains a ".." segment');
  });

  it('index path escaping the folder via an absolute path', async () => {
    const outside = path.join(tmp, 'absolute-target.safetensors');
    await writeSafetensors(outside, [tensor('c.weight', [1])]);
    const dir = await makeCheckpoint({ shards: twoShards, weightMap: { ...twoShardMap, 'c.weight': outside } });
    await expectCheckpointError(dir, 'model.safetensors.index.json', `shard "${outside}"`, 'tensor "c.weight"', 'is an absolute path');
  });

  it('accepts a shard that is a symlink to a regular file outside the folder (hub cache layout)', async () => {
    const outside = path.join(tmp, 'link-target.safetensors');
    await writeSafetensors(outside, [tensor('c.weight', [4, 5, 6])]);
    const dir = await makeCheckpoint({ shards: { 'model-00001-of-00002.safetensors': twoShards['model-00001-of-00002.safetensors'] }, weightMap: twoShardMap });
    await symlink(outside, path.join(dir, 'model-00002-of-00002.safetensors'));
    const ck = await Checkpoint.open(dir);
    expect(ck.has('c.weight')).toBe(true);
    await ck.close();
  });

  it('index key missing in its shard', async () => {
    const dir = await makeCheckpoint({ shards: twoShards, weightMap: { ...twoShardMap, 'd.weight': 'model-00002-of-00002.safetensors' } });
    await expectCheckpointError(
      dir,
      'model.safetensors.index.json',
      'tensor "d.weight" is mapped to shard "model-00002-of-00002.safetensors" but that shard does not contain it',
    );
  });

  it('key stored in a different shard than the index says', async () => {
    const dir = await makeCheckpoint({ shards: twoShards, weightMap: { ...twoShardMap, 'b.weight': 'model-00002-of-00002.safetensors' } });
    await expectCheckpointError(dir, 'tensor "b.weight" is mapped to shard "model-00002-of-00002.safetensors" but is in shard "model-00001-of-00002.safetensors"');
  });

  it('duplicate key across shards', async () => {
    const shards = {
      ...twoShards,
      'model-00002-of-00002.safetensors': [tensor('a.weight', [9, 9]), tensor('c.weight', [4, 5, 6])],
    };
    const dir = await makeCheckpoint({ shards, weightMap: twoShardMap });
    await expectCheckpointError(
      dir,
      'model.safetensors.index.json',
      'tensor "a.weight" is a duplicate key across shards: it appears in "model-00001-of-00002.safetensors" and "model-00002-of-00002.safetensors"',
    );
  });

  it('shard key absent from the index', async () => {
    const shards = { ...twoShards, 'model-00002-of-00002.safetensors': [tensor('c.weight', [4, 5, 6]), tensor('extra', [0])] };
    const dir = await makeCheckpoint({ shards, weightMap: twoShardMap });
    await expectCheckpointError(dir, 'tensor "extra" is in shard "model-00002-of-00002.safetensors" but not listed in weight_map');
  });

  it('malformed index', async () => {
    await expectCheckpointError(await makeCheckpoint({ shards: twoShards, index: '{"weight_map": ' }), 'model.safetensors.index.json: not valid JSON');
    await expectCheckpointError(await makeCheckpoint({ shards: twoShards, index: '{"weight_map": []}' }), '"weight_map" must be an object');
    await expectCheckpointError(
      await makeCheckpoint({ shards: twoShards, weightMap: { 'a.weight': 3 } as unknown as Record<string, string> }),
      'weight_map "a.weight" must be a shard file name, got 3',
    );
  });

  it('bad shard contents are reported with the shard path', async () => {
    const dir = await makeCheckpoint({ shards: twoShards, weightMap: twoShardMap });
    await writeFile(path.join(dir, 'model-00002-of-00002.safetensors'), new Uint8Array(3));
    await expectCheckpointError(dir, path.join(dir, 'model-00002-of-00002.safetensors'), 'too short');
  });

  it('missing config.json', async () => {
    const dir = await makeCheckpoint({ config: null, shards: { 'model.safetensors': [tensor('a', [1])] } });
    await expectCheckpointError(dir, path.join(dir, 'config.json'), 'missing');
  });

  it('invalid config.json', async () => {
    const dir = await makeCheckpoint({ config: '{"hidden_size": 48,', shards: { 'model.safetensors': [tensor('a', [1])] } });
    await expectCheckpointError(dir, path.join(dir, 'config.json'), 'not valid JSON');
    const notObject = await makeCheckpoint({ config: '"text"', shards: { 'model.safetensors': [tensor('a', [1])] } });
    await expectCheckpointError(notObject, path.join(notObject, 'config.json'), 'must contain a JSON object');
  });

  it('no weights at all', async () => {
    const dir = await makeCheckpoint({});
    await expectCheckpointError(dir, dir, 'no weights found', 'model.safetensors.index.json', 'model.safetensors (single file)');
  });

  it('missing folder', async () => {
    await expectCheckpointError(path.join(tmp, 'nowhere'), 'checkpoint folder does not exist');
  });
});
