/**
 * `vlmc run` inputs checked against the artifact's signature and manifest before onnxruntime sees
 * them, so a wrong file is one message naming the tensor (never a raw runtime error, never
 * silently wrong logits): dtypes, ranks, static sizes, symbolic sizes that must agree, and for
 * InternVL graphs the token ids, the image flags and the `<IMG_CONTEXT>` count.
 */
import { UserError } from '../errors.ts';
import type { Manifest, ManifestIO } from '../artifact/format.ts';
import type { StDType } from '../tensor/convert.ts';
import type { HostTensor } from './session.ts';

/** What the inputs file declares for one tensor, before its bytes are read. */
export interface DeclaredTensor {
  dtype: StDType;
  shape: readonly number[];
}

/** safetensors dtypes each graph input dtype accepts (floats are widened, I32 ids widened). */
const ACCEPTED: Record<string, readonly StDType[]> = {
  float32: ['F32', 'F16', 'BF16'],
  int64: ['I64', 'I32'],
};

/** image_flags as a graph without that input still reads it: tiles flagged 0 are left out (see tilesTheGraphSees). */
const FLAGS_SPEC: ManifestIO = { name: 'image_flags', dtype: 'int64', shape: ['tiles'] };

const takesFlags = (manifest: Manifest): boolean => manifest.inputs.some((i) => i.name === 'image_flags');

/** The tensors a forward reads from an inputs file: the graph's inputs, and image_flags even where the graph has none. */
export function forwardInputNames(manifest: Manifest): string[] {
  const names = manifest.inputs.map((i) => i.name);
  return takesFlags(manifest) ? names : [...names, FLAGS_SPEC.name];
}

/**
 * Checks dtypes and shapes of the inputs the graph takes; extra tensors in the file are ignored.
 * `optional`: inputs that may be absent (`vlmc generate` defaults image_flags to every tile).
 */
export function checkDeclaredInputs(file: string, manifest: Manifest, declared: ReadonlyMap<string, DeclaredTensor>, optional: readonly string[] = []): void {
  const sizes = new Map<string, { size: number; from: string }>();
  const specs = takesFlags(manifest) || !declared.has(FLAGS_SPEC.name) ? manifest.inputs : [...manifest.inputs, FLAGS_SPEC];
  for (const spec of specs) {
    const t = declared.get(spec.name);
    const where = `${file}: input '${spec.name}'`;
    if (!t && optional.includes(spec.name)) continue;
    if (!t) throw new UserError(`${file}: missing input '${spec.name}' (the artifact takes ${manifest.inputs.map((i) => `${i.name} ${i.dtype}[${i.shape.join(', ')}]`).join(', ')})`);
    const accepted = ACCEPTED[spec.dtype] ?? [];
    if (!accepted.includes(t.dtype)) throw new UserError(`${where} is ${t.dtype}; the artifact takes ${spec.dtype} (${accepted.join(' or ')} in the file)`);
    checkShape(where, spec, flagsAsVector(spec, t.shape), sizes);
  }
}

/**
 * Every value check of a forward's inputs (finite floats, ids inside the vocabulary, flags 0 or 1,
 * the `<IMG_CONTEXT>` count), after checkDeclaredInputs; returns what to feed the graph. A graph
 * without image_flags (transformers' InternVL) uses every tile it is given, so tiles an inputs file
 * flags 0 (the blank tile of a text-only request) are left out, as a graph with flags leaves them out.
 */
export function checkForwardInputs(file: string, manifest: Manifest, inputs: Readonly<Record<string, HostTensor>>): Record<string, HostTensor> {
  checkFiniteFloats(file, inputs);
  const flags = inputs['image_flags']?.data as BigInt64Array | undefined;
  checkInputValues(file, manifest, inputs['input_ids']?.data as BigInt64Array | undefined, flags);
  const fed = takesFlags(manifest) ? { ...inputs } : tilesTheGraphSees(inputs);
  checkImageTokenCount(manifest, fed, file);
  return fed;
}

/** Inputs for a graph without image_flags: only the flagged tiles, and no image_flags. */
function tilesTheGraphSees(inputs: Readonly<Record<string, HostTensor>>): Record<string, HostTensor> {
  const { image_flags: flags, ...rest } = inputs;
  const pixels = inputs['pixel_values'];
  if (!flags || !pixels) return rest;
  const keep = Array.from(flags.data as BigInt64Array, (f, i) => (f === 1n ? i : -1)).filter((i) => i >= 0);
  if (keep.length === pixels.shape[0]) return rest;
  const tile = pixels.shape.slice(1).reduce((a, d) => a * d, 1);
  const data = new Float32Array(keep.length * tile);
  keep.forEach((t, j) => data.set((pixels.data as Float32Array).subarray(t * tile, (t + 1) * tile), j * tile));
  return { ...rest, pixel_values: { dtype: 'float32', shape: [keep.length, ...pixels.shape.slice(1)], data } };
}

/**
 * attention_mask of `vlmc generate`: I64 [batch, seq] like input_ids, ones then zeros in every row
 * (right padding, at least one token). Returns each row's length.
 */
export function checkAttentionMask(file: string, mask: HostTensor | undefined, batch: number, seq: number): number[] {
  if (!mask) return new Array<number>(batch).fill(seq);
  if (mask.dtype !== 'int64' || mask.shape.length !== 2 || mask.shape[0] !== batch || mask.shape[1] !== seq) {
    throw new UserError(`${file}: input 'attention_mask' is ${mask.dtype === 'int64' ? 'I64' : 'a float'} [${mask.shape.join(', ')}]; it must be I64 [${batch}, ${seq}] like input_ids`);
  }
  const data = mask.data as BigInt64Array;
  return Array.from({ length: batch }, (_, b) => {
    const row = Array.from(data.subarray(b * seq, (b + 1) * seq), Number);
    const len = row.filter((v) => v !== 0).length;
    if (len === 0 || row.slice(0, len).some((v) => v !== 1) || row.slice(len).some((v) => v !== 0)) {
      throw new UserError(`${file}: input 'attention_mask' row ${b} is [${row.join(', ')}]; each row must be ones then zeros (right padding, at least one token)`);
    }
    return len;
  });
}

/** InternVL's own forward takes image_flags as [tiles, 1]; that layout is accepted and squeezed. */
export function flagsAsVector(spec: ManifestIO, shape: readonly number[]): readonly number[] {
  return spec.name === 'image_flags' && spec.shape.length === 1 && shape.length === 2 && shape[1] === 1 ? [shape[0]!] : shape;
}

function checkShape(where: string, spec: ManifestIO, shape: readonly number[], sizes: Map<string, { size: number; from: string }>): void {
  const expected = `[${spec.shape.join(', ')}]`;
  if (shape.length !== spec.shape.length) throw new UserError(`${where} has shape [${shape.join(', ')}] (rank ${shape.length}); the artifact takes ${expected} (rank ${spec.shape.length})`);
  spec.shape.forEach((dim, axis) => {
    const got = shape[axis]!;
    if (typeof dim === 'number') {
      if (got !== dim) throw new UserError(`${where} has ${got} at axis ${axis} of [${shape.join(', ')}]; the artifact takes ${expected}${describeAxis(spec.name, axis)}`);
      return;
    }
    // Zero tiles is a text-only request; a batch or a sequence needs at least one.
    if (got === 0 && dim !== 'tiles') throw new UserError(`${where} has ${dim} = 0 (shape [${shape.join(', ')}]); at least one is needed`);
    const seen = sizes.get(dim);
    if (seen && seen.size !== got) throw new UserError(`${where} has ${dim} = ${got} but ${seen.from} has ${dim} = ${seen.size}; they must agree`);
    if (!seen) sizes.set(dim, { size: got, from: `input '${spec.name}'` });
  });
}

function describeAxis(name: string, axis: number): string {
  if (name !== 'pixel_values') return '';
  return axis === 1 ? ' (3 colour channels)' : axis >= 2 ? ' (the tile size the artifact was built for)' : '';
}

/** Values: token ids inside the vocabulary, flags 0/1, and as many <IMG_CONTEXT> tokens as flagged tiles need. */
export function checkInputValues(file: string, manifest: Manifest, ids: BigInt64Array | undefined, flags: BigInt64Array | undefined): void {
  const vocab = vocabOf(manifest);
  if (ids && vocab !== undefined) {
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id < 0n || id >= BigInt(vocab)) throw new UserError(`${file}: input 'input_ids' holds ${id} at flat position ${i}; token ids must be from 0 to ${vocab - 1} (vocab ${vocab})`);
    }
  }
  let flagged = 0;
  if (flags) {
    for (let i = 0; i < flags.length; i++) {
      const f = flags[i]!;
      if (f !== 0n && f !== 1n) throw new UserError(`${file}: input 'image_flags' holds ${f} for tile ${i}; flags must be 0 or 1`);
      flagged += Number(f);
    }
  }
  const contextId = manifest.metadata['vlmc.img_context_token_id'];
  const perTile = Number(manifest.metadata['vlmc.tokens_per_tile']);
  if (!ids || !flags || !contextId || !Number.isInteger(perTile)) return;
  const context = BigInt(contextId);
  let count = 0;
  for (let i = 0; i < ids.length; i++) if (ids[i] === context) count++;
  const needed = flagged * perTile;
  if (count !== needed) {
    throw new UserError(`${file}: input 'input_ids' holds ${count} <IMG_CONTEXT> tokens (id ${contextId}) but image_flags flags ${flagged} tile(s) x ${perTile} tokens per tile = ${needed}; they must be equal`);
  }
}

/**
 * A graph without image_flags (transformers' InternVL) uses every tile, so the `<IMG_CONTEXT>`
 * tokens must number tiles x tokens per tile exactly, as transformers requires; otherwise the splice
 * would silently drop or repeat image features.
 */
export function checkImageTokenCount(manifest: Manifest, inputs: Readonly<Record<string, HostTensor>>, where: string): void {
  if (takesFlags(manifest)) return;
  const id = Number(manifest.metadata['vlmc.img_context_token_id']);
  const perTile = Number(manifest.metadata['vlmc.tokens_per_tile']);
  const ids = inputs['input_ids'];
  const pixels = inputs['pixel_values'];
  if (!ids || !pixels || !Number.isFinite(perTile) || manifest.metadata['vlmc.img_context_token_id'] === '') return;
  const want = BigInt(id);
  let count = 0;
  for (const v of ids.data as BigInt64Array) if (v === want) count++;
  const tiles = pixels.shape[0] ?? 0;
  if (count !== tiles * perTile) {
    throw new UserError(`${where}: input_ids hold ${count} <IMG_CONTEXT> tokens (id ${id}), but pixel_values has ${tiles} tile${tiles === 1 ? '' : 's'} x ${perTile} tokens = ${tiles * perTile}; this graph uses every tile it is given (no image_flags input; tiles an image_flags tensor flags 0 are left out)`);
  }
}

/** Float inputs (pixel_values) must be finite: one NaN makes every logit NaN, silently. */
export function checkFiniteFloats(file: string, inputs: Readonly<Record<string, { dtype: string; data: ArrayLike<number> | ArrayLike<bigint> }>>): void {
  for (const [name, t] of Object.entries(inputs)) {
    if (t.dtype !== 'float32') continue;
    const data = t.data as ArrayLike<number>;
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) throw new UserError(`${file}: input '${name}' holds ${data[i]} at flat position ${i}; values must be finite numbers`);
    }
  }
}

/** The vocabulary size: the last dim of the logits output, when static. */
function vocabOf(manifest: Manifest): number | undefined {
  const logits = manifest.outputs.find((o) => o.name === 'logits');
  const last = logits?.shape[logits.shape.length - 1];
  return typeof last === 'number' ? last : undefined;
}

/** Every manifest parameter's bytes must lie inside model.onnx.data (a truncated copy is caught before loading). */
export function checkDataAgainstManifest(dataFile: string, dataSize: number, manifest: Manifest): void {
  for (const p of manifest.parameters ?? []) {
    if (!Number.isSafeInteger(p.offset) || !Number.isSafeInteger(p.length) || p.offset < 0 || p.length < 0 || p.offset + p.length > dataSize) {
      throw new UserError(`${dataFile}: parameter '${p.name}' (bytes ${p.offset}..${p.offset + p.length} per manifest.json) lies outside the file (${dataSize} bytes); the artifact is damaged, rebuild it`);
    }
  }
}

