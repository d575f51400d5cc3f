/**
 * Checkpoint -> artifact: streams every parameter into `model.onnx.data` (bounded chunks, converted
 * to the stored dtype on the way, aligned offsets, sha256 per tensor), then writes `model.onnx`
 * and `manifest.json`, all inside a temporary folder that is renamed into place at the end.
 *
 * The stream is a pipeline over a few reused 1 MiB buffers: the next chunk is read while the
 * current one is converted on this thread, and converted chunks are written and hashed (on a
 * worker thread) while later ones are prepared. The buffers live in the conversion kernels' shared
 * memory (`ConvertArena`), so chunks are read, converted, hashed and written in place, without
 * copies. The bytes written do not depend on any of this. Where each parameter's bytes come from
 * (checkpoint, concatenation, LoRA merge, MXFP4, initialisation): param-bytes.ts.
 */
import { open, readFile, writeFile, type FileHandle } from 'node:fs/promises';
import * as nodePath from 'node:path';
import type { ParamDType } from '../ir/dtype.ts';
import type { Graph, GraphParam } from '../ir/graph.ts';
import { DTYPES } from '../ir/dtype.ts';
import { elementCount } from '../ir/dims.ts';
import type { BindPlan, BoundParam } from '../bind/plan.ts';
import { ConvertArena } from '../tensor/convert.ts';
import { ChunkBuffers } from '../checkpoint/safetensors.ts';
import { buildModelProto, encodeModel, type ExternalWeights } from '../onnx/emit.ts';
import { withTempSibling } from '../fs/atomic.ts';
import { Sha256Worker } from './sha256-worker.ts';
import { DATA_FILE, MANIFEST_FILE, MANIFEST_FORMAT, MODEL_FILE, SPLIT_DATA_FILE, manifestJson, type Manifest, type ManifestCheckpointSource, type ManifestParameter } from './format.ts';
import type { LoraMergeOrigin } from '../bind/source.ts';
import { MXFP4_TRANSFORM } from '../quant/mxfp4.ts';
import { paramChunks, type StreamBuffers } from './param-bytes.ts';
import { VLMC_VERSION } from '../version.ts';


/** A further graph over the same weights (train.onnx, optimizer.onnx), written beside model.onnx. */
export interface ExtraGraph {
  file: string;
  graph: Graph;
}

/**
 * A per-parameter transform applied while streaming (e.g. int4 quantisation): it receives the
 * parameter's values as fp32 chunks and returns the bytes to store instead; companion tensors
 * (scales, zero points) follow it in the data file as initializers of their own.
 */
export interface ParamTransform {
  /** Stored element type and byte length of the transformed tensor. */
  dtype: keyof typeof DTYPES;
  length: number;
  /** The tensors `finish` returns, in order, with their byte lengths (known before any value is read, so a layout needs no values). */
  companions: { name: string; dtype: keyof typeof DTYPES; length: number }[];
  push(f32: Uint8Array): Uint8Array;
  finish(): { name: string; dtype: keyof typeof DTYPES; bytes: Uint8Array }[];
  /** Recorded in the parameter's manifest entry (`quant`). */
  describe: Record<string, unknown>;
}

export interface WriteOptions {
  dtype: ParamDType;
  /** Graphs written beside model.onnx whose parameters point into the same model.onnx.data. */
  extraGraphs?: ExtraGraph[];
  /** Small files written into the artifact as they are (train: config.json, tokenizer files). */
  extraFiles?: { name: string; bytes: Uint8Array | string }[];
  /** Added to the manifest (e.g. the training section). */
  manifestExtras?: Partial<Manifest>;
  /**
   * Structure only: the data file is laid out as usual but holds no values (a sparse file of zeros,
   * no disk space), so model.onnx reads and reviews like any artifact without gigabytes of random
   * weights. The manifest says so and `vlmc run` refuses it.
   */
  structureOnly?: boolean;
  /** Transform for parameters that are not stored as plain `dtype` values (undefined: none). */
  transform?: (param: GraphParam) => ParamTransform | undefined;
  /** Called as bytes are written: (written, total). */
  onProgress?: (written: number, total: number) => void;
}

/** Large tensors start on a page boundary so runtimes can map them; small ones on 64 bytes. */
function alignment(length: number): number {
  return length >= 65536 ? 4096 : 64;
}

export interface SplitPart {
  /** File name in the artifact (`decoder.onnx`). */
  file: string;
  graph: Graph;
}

export interface SplitExtras {
  /** More files written beside the graphs (pipeline.json), by name. */
  files: Record<string, string>;
  /** Files copied in verbatim (tokenizer files), by name -> source path. */
  copies: Record<string, string>;
}

/**
 * Several graphs over one model's parameters: every parameter of `whole` (the full model, whose
 * binding plan this is) is streamed once into SPLIT_DATA_FILE and each part's initializers point
 * into it, so weights shared by two graphs (a tied embedding) are stored once. The manifest
 * describes `whole`, as for a single-graph artifact. Atomic like writeArtifact.
 */
export async function writeSplitArtifact(outDir: string, whole: Graph, parts: SplitPart[], plan: BindPlan, options: WriteOptions, extras: SplitExtras): Promise<Manifest> {
  const files: { name: string; bytes: Uint8Array | string }[] = Object.entries(extras.files).map(([name, bytes]) => ({ name, bytes }));
  // Copied as plain files (a read-only source keeps no read-only copy here).
  for (const [name, from] of Object.entries(extras.copies)) files.push({ name, bytes: await readFile(from) });
  return writeArtifactFolder(outDir, { dataFile: SPLIT_DATA_FILE, graphs: parts, described: whole, files }, plan, options);
}

export async function writeArtifact(outDir: string, graph: Graph, plan: BindPlan, options: WriteOptions): Promise<Manifest> {
  const graphs = [{ file: MODEL_FILE, graph }, ...(options.extraGraphs ?? [])];
  return writeArtifactFolder(outDir, { dataFile: DATA_FILE, graphs, described: graph, files: options.extraFiles ?? [], manifestExtras: options.manifestExtras }, plan, options);
}

/** What goes into an artifact folder besides the weights. */
interface FolderLayout {
  /** The one external-data file every graph's initializers point into. */
  dataFile: string;
  graphs: { file: string; graph: Graph }[];
  /** The graph the manifest describes (the whole model). */
  described: Graph;
  files: { name: string; bytes: Uint8Array | string }[];
  manifestExtras?: Partial<Manifest>;
}

/** The weights streamed once into `dataFile` (or only laid out, structure-only), then graphs, files and manifest; atomic. */
async function writeArtifactFolder(outDir: string, layout: FolderLayout, plan: BindPlan, options: WriteOptions): Promise<Manifest> {
  return withTempSibling(outDir, async (tmp) => {
    const write = options.structureOnly ? layOutData : writeData;
    const { entries, params } = await write(nodePath.join(tmp, layout.dataFile), plan, options);
    for (const { file, graph } of layout.graphs) {
      const proto = buildModelProto(graph, { location: layout.dataFile, entries }, { producerVersion: VLMC_VERSION });
      await writeFile(nodePath.join(tmp, file), encodeModel(proto));
    }
    for (const f of layout.files) await writeFile(nodePath.join(tmp, f.name), f.bytes);
    const manifest = { ...buildManifest(layout.described, plan, options.dtype, params), ...layout.manifestExtras };
    if (options.structureOnly) manifest.build.structure_only = true;
    await writeFile(nodePath.join(tmp, MANIFEST_FILE), manifestJson(manifest));
    return manifest;
  });
}

/** Where one parameter (and its transform's companion tensors) goes in the data file. */
interface Placement {
  offset: number;
  length: number;
  dtype: keyof typeof DTYPES;
  transform: ParamTransform | undefined;
  companions: { name: string; dtype: keyof typeof DTYPES; offset: number; length: number }[];
}

/**
 * The data file's layout: every parameter at an aligned offset in plan order, a transformed one
 * (int4 / int8) at its packed length followed by its companions. Values play no part in it, so a
 * structure-only artifact is laid out exactly as one with weights.
 */
function layOut(plan: BindPlan, options: WriteOptions): { placements: Placement[]; end: number } {
  let offset = 0;
  const align = (length: number) => (offset = Math.ceil(offset / alignment(length)) * alignment(length));
  const placements = plan.params.map((bound): Placement => {
    const transform = options.transform?.(bound.param);
    const length = transform ? transform.length : elementCount(bound.param.shape) * DTYPES[options.dtype].bytes;
    const at = align(length);
    offset += length;
    const companions = (transform?.companions ?? []).map((c) => {
      const cAt = align(c.length);
      offset += c.length;
      return { name: c.name, dtype: c.dtype, offset: cAt, length: c.length };
    });
    return { offset: at, length, dtype: transform?.dtype ?? options.dtype, transform, companions };
  });
  return { placements, end: offset };
}

function entriesOf(plan: BindPlan, placements: Placement[]): ExternalWeights['entries'] {
  const entries: ExternalWeights['entries'] = new Map();
  plan.params.forEach((bound, i) => {
    const p = placements[i]!;
    entries.set(bound.param.name, { offset: p.offset, length: p.length, dtype: p.dtype });
    for (const c of p.companions) entries.set(c.name, { offset: c.offset, length: c.length, dtype: c.dtype });
  });
  return entries;
}

/** The data file's layout without its values: a sparse file of that length, manifest entries without hashes. */
async function layOutData(path: string, plan: BindPlan, options: WriteOptions): Promise<{ entries: ExternalWeights['entries']; params: ManifestParameter[] }> {
  const { placements, end } = layOut(plan, options);
  const params = plan.params.map((bound, i) => {
    const p = placements[i]!;
    const { sha256: _none, ...param } = manifestParam(bound, options.dtype, '', p.offset, p.length, plan.seed);
    if (p.transform) param.quant = quantEntry(p.transform, p.companions);
    return param;
  });
  const data = await open(path, 'w');
  try {
    await data.truncate(end);
  } finally {
    await data.close();
  }
  return { entries: entriesOf(plan, placements), params };
}

/** The manifest's `quant` section of a transformed parameter. */
function quantEntry(transform: ParamTransform, tensors: { name: string; dtype: string; offset: number; length: number; sha256?: string }[]): ManifestParameter['quant'] {
  return { ...transform.describe, packed_dtype: transform.dtype, tensors };
}

/** Streams every parameter into the data file at its place in the layout; returns where each went and its manifest entry. */
async function writeData(path: string, plan: BindPlan, options: WriteOptions): Promise<{ entries: ExternalWeights['entries']; params: ManifestParameter[] }> {
  const { dtype } = options;
  const { placements } = layOut(plan, options);
  const total = plan.params.reduce((n, b) => n + elementCount(b.param.shape) * DTYPES[dtype].bytes, 0);
  const digests: Promise<string>[] = [];
  const companionDigests: Promise<string>[][] = [];
  const arena = idleArenas.pop() ?? new ConvertArena();
  // The arena frees nothing until reset, so capacities are powers of two: a buffer grows a few times at most.
  const allocate = (bytes: number) => arena.alloc(Math.max(64 * 1024, 2 ** Math.ceil(Math.log2(bytes))));
  const buffers: StreamBuffers = { read: new ChunkBuffers({ allocate }), converted: new ScratchRing(allocate), arena };
  const data = await open(path, 'w');
  const sink = new ChunkSink(data, new Sha256Worker());
  try {
    let written = 0;
    let extraStream = plan.params.length;
    const progress = (n: number) => {
      written += n;
      options.onProgress?.(written, total);
    };
    for (const [stream, bound] of plan.params.entries()) {
      const { offset, transform, companions } = placements[stream]!;
      if (transform) await writeTransformed(sink, stream, buffers, offset, bound, plan.seed, transform, progress);
      else await writeParam(sink, stream, buffers, offset, bound, plan.seed, dtype, progress);
      digests.push(sink.digest(stream));
      companionDigests.push(transform ? await writeCompanions(sink, () => extraStream++, transform, companions) : []);
    }
    await sink.drain();
    const hashes = await Promise.all(digests);
    return {
      entries: entriesOf(plan, placements),
      params: await Promise.all(
        plan.params.map(async (b, i) => {
          const p = placements[i]!;
          const param = manifestParam(b, dtype, hashes[i]!, p.offset, p.length, plan.seed);
          if (p.transform) {
            const shas = await Promise.all(companionDigests[i]!);
            param.quant = quantEntry(p.transform, p.companions.map((c, k) => ({ ...c, sha256: shas[k]! })));
          }
          return param;
        }),
      ),
    };
  } finally {
    await sink.close();
    await data.close();
    // Nothing reads, writes or hashes the arena's buffers any more: the next artifact reuses them.
    arena.reset();
    idleArenas.push(arena);
  }
}

/** The transformed parameter's values: read as fp32 chunks, transformed, written and hashed. */
async function writeTransformed(
  sink: ChunkSink,
  stream: number,
  buffers: StreamBuffers,
  offset: number,
  bound: BoundParam,
  seed: number,
  transform: ParamTransform,
  progress: (n: number) => void,
): Promise<void> {
  let pos = offset;
  for await (const { bytes } of paramChunks(bound, seed, 'float32', buffers)) {
    // push copies what it keeps, so a borrowed chunk may be refilled right after.
    const out = transform.push(bytes);
    progress(bytes.byteLength);
    if (out.byteLength === 0) continue;
    await sink.put(stream, out, pos);
    pos += out.byteLength;
  }
  if (pos - offset !== transform.length) throw new Error(`${bound.param.name}: transform wrote ${pos - offset} of ${transform.length} bytes`);
}

/** Writes the transform's companion tensors at their places in the layout; returns their digests. */
async function writeCompanions(sink: ChunkSink, nextStream: () => number, transform: ParamTransform, placed: Placement['companions']): Promise<Promise<string>[]> {
  const tensors = transform.finish();
  if (tensors.length !== placed.length) throw new Error(`the transform returned ${tensors.length} companion tensors, its layout announced ${placed.length}`);
  const digests: Promise<string>[] = [];
  for (const [k, t] of tensors.entries()) {
    const at = placed[k]!;
    if (at.name !== t.name || at.length !== t.bytes.byteLength) throw new Error(`${t.name}: the transform returned a tensor its layout did not announce`);
    const stream = nextStream();
    await sink.put(stream, t.bytes, at.offset);
    digests.push(sink.digest(stream));
  }
  return digests;
}

/**
 * Arenas of artifacts already written, for the next ones: wasm memory is reclaimed only by a
 * garbage collection, which it does not prompt, so a process writing many artifacts would
 * otherwise keep each one's buffers resident for a long time.
 */
const idleArenas: ConvertArena[] = [];

/**
 * Streams one parameter's bytes to `offset`, hashing them as sink stream `stream`. Chunks are
 * written and hashed while the next ones are read and converted.
 */
async function writeParam(
  sink: ChunkSink,
  stream: number,
  buffers: StreamBuffers,
  offset: number,
  bound: BoundParam,
  seed: number,
  dtype: ParamDType,
  progress: (n: number) => void,
): Promise<void> {
  let pos = offset;
  for await (const { bytes, borrowed } of paramChunks(bound, seed, dtype, buffers)) {
    await sink.put(stream, bytes, pos);
    // The reader refills a borrowed buffer once the next chunk is requested.
    if (borrowed) await sink.drain();
    pos += bytes.byteLength;
    progress(bytes.byteLength);
  }
}

/**
 * Chunks being written and hashed at once while the next is prepared. More than one absorbs the
 * stalls of a write or of the hashing worker (bench/bind: 3 beat 1 by about 5%).
 */
const CHUNKS_IN_FLIGHT = 3;

/**
 * Where chunks go: each is written to the data file and hashed on the worker at the same time,
 * with up to CHUNKS_IN_FLIGHT chunks under way while the caller prepares the next. A buffer passed
 * to `put` must stay untouched until CHUNKS_IN_FLIGHT more `put`s, or a `drain`, have returned;
 * a failure is reported by one of those. Writes go one at a time, in order: concurrent writes to
 * one file wait on its inode lock, partly by spinning, which cost CPU time on 2 cores.
 */
class ChunkSink {
  private readonly inFlight: Promise<unknown>[] = [];
  private lastWrite: Promise<void> = Promise.resolve();

  constructor(
    private readonly file: FileHandle,
    private readonly hasher: Sha256Worker,
  ) {}

  async put(stream: number, bytes: Uint8Array, position: number): Promise<void> {
    while (this.inFlight.length >= CHUNKS_IN_FLIGHT) await this.inFlight.shift();
    const write = (this.lastWrite = this.lastWrite.then(() => writeFully(this.file, bytes, position)));
    const both = Promise.all([write, this.hasher.update(stream, bytes)]);
    both.catch(() => {}); // handled: the error surfaces when this chunk is waited for
    this.inFlight.push(both);
  }

  /** The sha256 of everything put to `stream` so far. */
  digest(stream: number): Promise<string> {
    const hex = this.hasher.digest(stream);
    hex.catch(() => {}); // awaited once all parameters are written
    return hex;
  }

  async drain(): Promise<void> {
    while (this.inFlight.length > 0) await this.inFlight.shift();
  }

  /** Lets the chunks under way settle (a failure was already reported, or is being) and stops the worker. */
  async close(): Promise<void> {
    await Promise.allSettled(this.inFlight.splice(0));
    await this.hasher.close();
  }
}

/**
 * Conversion buffers used in turn, one more than CHUNKS_IN_FLIGHT: a chunk is converted into one
 * while the chunks before it are still being written and hashed from the others. Shared memory,
 * so the hashing worker reads them in place. Each grows to the largest chunk seen, then is reused.
 */
class ScratchRing {
  private readonly buffers: (Uint8Array | undefined)[] = [];
  private turn = 0;

  /** `allocate` gives shared memory (`ConvertArena.alloc`). */
  constructor(private readonly allocate: (bytes: number) => Uint8Array) {}

  take(bytes: number): Uint8Array {
    this.turn = (this.turn + 1) % (CHUNKS_IN_FLIGHT + 1);
    const have = this.buffers[this.turn];
    if (have && have.byteLength >= bytes) return have.subarray(0, bytes);
    return (this.buffers[this.turn] = this.allocate(bytes)).subarray(0, bytes);
  }
}

async function writeFully(file: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await file.write(bytes, done, bytes.byteLength - done, position + done);
    done += bytesWritten;
  }
}

function manifestParam(bound: BoundParam, dtype: ParamDType, sha256: string, offset: number, length: number, seed: number): ManifestParameter {
  const { param, origin } = bound;
  if (origin.kind === 'init') return { name: param.name, key: param.sourceName ?? param.name, shape: [...param.shape], dtype, trainable: param.trainable, source: { init: param.init.kind, seed }, sha256, offset, length };
  if (origin.kind === 'lora-merge') {
    // The base weight's entry, with the adapters merged into it.
    const entry = manifestParam({ param, origin: origin.base }, dtype, sha256, offset, length, seed);
    return { ...entry, source: { ...(entry.source as ManifestCheckpointSource), lora: loraMergeEntry(origin) } };
  }
  const ckpt = origin.source.checkpoint;
  const keys = origin.kind === 'concat' ? origin.keys : origin.kind === 'packed' ? [origin.packed.blocks, origin.packed.scales] : [origin.key];
  const entries = keys.map((k) => ckpt.entry(k));
  const files = [...new Set(entries.map((e) => nodePath.relative(ckpt.dir, e.file)))];
  const dtypes = [...new Set(entries.map((e) => e.dtype))];
  const own: string | string[] = origin.kind === 'checkpoint' ? origin.key : keys;
  const source = {
    role: origin.source.role,
    file: files.length === 1 ? files[0]! : files,
    key: own,
    dtype: dtypes.length === 1 ? dtypes[0]! : dtypes,
    ...(origin.source.layout.original ? {} : { layout: origin.source.layout.name }),
    ...(origin.kind === 'concat' ? { transform: CONCAT_TRANSFORM } : origin.kind === 'packed' ? { transform: MXFP4_TRANSFORM } : {}),
  };
  // A checkpoint in another layout is named by its own keys; the original layout's key is the name
  // (a packed parameter's name is no key: its parts' keys).
  const key = origin.source.layout.original && !param.packs ? (param.sourceName ?? param.name) : own;
  return { name: param.name, key, shape: [...param.shape], dtype, trainable: param.trainable, source, sha256, offset, length };
}

/** The manifest's record of a LoRA merged while binding. */
function loraMergeEntry(m: LoraMergeOrigin): NonNullable<ManifestCheckpointSource['lora']> {
  const ckpt = m.a.source.checkpoint;
  return { role: m.a.source.role, file: nodePath.relative(ckpt.dir, ckpt.entry(m.a.key).file), key: [m.a.key, m.b.key], scaling: m.scaling, transform: LORA_MERGE_TRANSFORM };
}

/** How a merged weight was computed, as the manifest records it. */
export const LORA_MERGE_TRANSFORM = 'W + scaling * B @ A (float64, rounded once)';

/** How the parts of a concatenated parameter were joined, as the manifest records it. */
export const CONCAT_TRANSFORM = 'concat(axis=0)';

function buildManifest(graph: Graph, plan: BindPlan, dtype: ParamDType, parameters: ManifestParameter[]): Manifest {
  const count = (ps: ManifestParameter[]) => ps.reduce((n, p) => n + elementCount(p.shape), 0);
  return {
    format: MANIFEST_FORMAT,
    model: graph.name,
    vlmc_version: VLMC_VERSION,
    build: {
      path: plan.path,
      seed: plan.seed,
      dtype,
      opset: graph.opset,
      sources: plan.sources.map((s) => ({
        role: s.role,
        config_sha256: s.checkpoint.configHash,
        files: s.checkpoint.files.map((f) => nodePath.relative(s.checkpoint.dir, f.path)).sort(),
      })),
    },
    inputs: graph.inputs.map((v) => ({ name: v.name!, dtype: v.dtype, shape: [...v.shape] })),
    outputs: graph.outputs.map((v) => ({ name: v.name!, dtype: v.dtype, shape: [...v.shape] })),
    metadata: graph.metadata,
    counts: { total: count(parameters), trainable: count(parameters.filter((p) => p.trainable)) },
    parameters,
  };
}
