/**
 * `GraphSummary` from any .onnx file. Node facts come from the nodes; module paths from node names
 * when they follow vlmc's `/a/b/Op` convention; parameters are the initializers (vlmc's content-named
 * `/const/...` literals excepted). Weight bytes are read only when asked for (`weights`), but
 * external-data references are always checked (src/onnx/read.ts, shared with `vlmc run`).
 */
import { UserError } from '../errors.ts';
import type * as P from 'onnx-proto';
import { intText, onnx, type ModelProto } from '../onnx/proto.ts';
import { ExternalData } from '../onnx/external-data.ts';
import { EXTERNAL, decodeModelFile, dimsOf, dtypeName, elementBytes, externalRef } from '../onnx/read.ts';
import { assembleSummary } from './assemble.ts';
import { canonAttr, canonAttrs, sha256Hex, tensorId, type CanonNode, type InputRef } from './hash.ts';
import type { GraphSummary, IoEntry, ParamEntry } from './types.ts';

export interface OnnxSummaryOptions {
  /** Hash every initializer's bytes (sha256 per tensor), reading external data files. */
  weights?: boolean;
}

// Decoded sub-messages are typed by protobufjs's interfaces, whose fields are all nullable.
type TensorProto = P.onnx.ITensorProto;
type NodeProto = P.onnx.INodeProto;
type ValueInfoProto = P.onnx.IValueInfoProto;
type AttributeProto = P.onnx.IAttributeProto;

export function summaryFromOnnxFile(file: string, options: OnnxSummaryOptions = {}): GraphSummary {
  const model = decodeModelFile(file);
  const graph = model.graph;
  if (!graph) throw new UserError(`${file}: the model has no graph`);
  const data = new ExternalData(file);
  const initializers = new Map<string, TensorProto>();
  for (const t of graph.initializer ?? []) initializers.set(t.name ?? '', t);
  const params: Omit<ParamEntry, 'used'>[] = [];
  const constIds = new Map<string, string>();
  try {
    for (const t of initializers.values()) {
      const name = t.name ?? '';
      const range = t.dataLocation === EXTERNAL ? data.range(externalRef(t)) : undefined;
      if (!range && isVlmcConstant(name)) {
        constIds.set(name, tensorId(dtypeName(t.dataType), dimsOf(t), inlineBytes(t)));
        continue;
      }
      const p: Omit<ParamEntry, 'used'> = { name, shape: dimsOf(t), dtype: dtypeName(t.dataType) };
      if (options.weights) p.sha256 = range ? data.hash(range) : sha256Hex(inlineBytes(t));
      params.push(p);
    }
  } finally {
    data.close();
  }

  const nodes = graph.node ?? [];
  const inputs = (graph.input ?? []).filter((v) => !initializers.has(v.name ?? '')).map((v) => ioEntry(v, file));
  const modules = moduleNames(nodes);
  const producers = new Map<string, { node: number; output: number }>();
  nodes.forEach((n, i) => (n.output ?? []).forEach((o, j) => o && producers.set(o, { node: i, output: j })));
  const inputNames = new Set(inputs.map((i) => i.name));
  const ref = (name: string): InputRef => {
    if (!name) return { kind: 'none' };
    const producer = producers.get(name);
    if (producer) return { kind: 'node', ...producer };
    if (inputNames.has(name)) return { kind: 'input', name };
    const constId = constIds.get(name);
    if (constId !== undefined) return { kind: 'const', id: constId };
    const t = initializers.get(name);
    if (t) return { kind: 'param', name, dtype: dtypeName(t.dataType), shape: dimsOf(t) };
    return { kind: 'unknown', name };
  };
  return assembleSummary({
    name: graph.name ?? '',
    opset: opsetOf(model),
    inputs,
    outputs: (graph.output ?? []).map((v) => ({ ...ioEntry(v, file), ref: ref(v.name ?? '') })),
    metadata: Object.fromEntries((model.metadataProps ?? []).map((e) => [e.key ?? '', e.value ?? ''])),
    params,
    nodes: nodes.map((n, i) => canonNode(n, modules?.[i], ref)),
    nodeModules: modules !== undefined,
  });
}

function opsetOf(model: ModelProto): Record<string, number> {
  const out: Record<string, number> = {};
  for (const o of model.opsetImport ?? []) out[o.domain && o.domain !== 'ai.onnx' ? o.domain : 'ai.onnx'] = Number(intText(o.version));
  return out;
}

/** vlmc names literals by content (passes/naming.ts); they are constants, not weights. */
const isVlmcConstant = (name: string): boolean => name.startsWith('/const/');

function ioEntry(v: ValueInfoProto, file: string): IoEntry {
  if (!v.name) throw new UserError(`${file}: a graph input or output has no name`);
  const tensor = v.type?.tensorType;
  if (!tensor) return { name: v.name, dtype: 'non-tensor', shape: [] };
  const shape = (tensor.shape?.dim ?? []).map(dimOf);
  return { name: v.name, dtype: dtypeName(tensor.elemType), shape };
}

/** A dim is a value, a symbol, or neither (unknown: '?'). Read from the oneof, not from field defaults. */
function dimOf(d: P.onnx.TensorShapeProto.IDimension): number | string {
  const which = (d as { value?: string }).value;
  if (which === 'dimValue') return Number(intText(d.dimValue));
  if (which === 'dimParam') return d.dimParam ?? '?';
  return '?';
}

/** Module path per node from `/a/b/Op[_n]` names; undefined unless every node follows it. */
function moduleNames(nodes: readonly NodeProto[]): string[] | undefined {
  if (nodes.length === 0) return undefined;
  const out: string[] = [];
  for (const n of nodes) {
    const name = n.name ?? '';
    const op = n.opType ?? '';
    const segs = name.split('/');
    const last = segs[segs.length - 1]!;
    const conventional = segs.length >= 2 && segs[0] === '' && (last === op || new RegExp(`^${escapeRegExp(op)}_\\d+$`).test(last));
    if (!conventional || segs.slice(1, -1).some((s) => s === '')) return undefined;
    out.push(segs.slice(1, -1).join('.'));
  }
  return out;
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function canonNode(n: NodeProto, module: string | undefined, ref: (name: string) => InputRef): CanonNode {
  return {
    name: n.name ?? '',
    op: n.opType ?? '',
    domain: !n.domain || n.domain === 'ai.onnx' ? '' : n.domain,
    attrs: canonAttrs((n.attribute ?? []).map((a) => [a.name ?? '', onnxAttr(a)])),
    module,
    inputs: (n.input ?? []).map(ref),
    inputNames: [...(n.input ?? [])],
  };
}

const ATTR = onnx.AttributeProto.AttributeType;
const utf8 = (b: Uint8Array | null | undefined): string => new TextDecoder().decode(b ?? new Uint8Array(0));

function onnxAttr(a: AttributeProto): string {
  switch (a.type) {
    case ATTR.INT:
      return canonAttr('INT', a.i);
    case ATTR.FLOAT:
      return canonAttr('FLOAT', a.f);
    case ATTR.STRING:
      return canonAttr('STRING', utf8(a.s));
    case ATTR.INTS:
      return canonAttr('INTS', a.ints ?? []);
    case ATTR.FLOATS:
      return canonAttr('FLOATS', a.floats ?? []);
    case ATTR.STRINGS:
      return canonAttr('STRINGS', (a.strings ?? []).map(utf8));
    case ATTR.TENSOR:
      return canonAttr('TENSOR', tensorId(dtypeName(a.t!.dataType), dimsOf(a.t!), inlineBytes(a.t!)));
    default:
      // Subgraphs and the rarer kinds: identified by their encoded bytes.
      return canonAttr(ATTR[a.type ?? 0] ?? `TYPE${a.type}`, sha256Hex(onnx.AttributeProto.encode(a).finish()).slice(0, 16));
  }
}

/**
 * The bytes of an inline tensor: raw_data when set, else the typed field laid out little-endian at
 * the element width (ONNX keeps 8/16-bit types in int32_data, one element per entry).
 */
function inlineBytes(t: TensorProto): Uint8Array {
  if (t.rawData && t.rawData.length > 0) return t.rawData;
  const dtype = dtypeName(t.dataType);
  if (t.floatData?.length) return bytesOf(Float32Array.from(t.floatData));
  if (t.doubleData?.length) return bytesOf(Float64Array.from(t.doubleData));
  if (t.int64Data?.length) return bytesOf(BigInt64Array.from(t.int64Data, (v) => BigInt(intText(v))));
  if (t.uint64Data?.length) return bytesOf(BigUint64Array.from(t.uint64Data, (v) => BigInt(intText(v))));
  if (t.stringData?.length) return new TextEncoder().encode(JSON.stringify(t.stringData.map(utf8)));
  if (t.int32Data?.length) {
    const width = elementBytes(dtype) || 4;
    const Ctor = width === 1 ? Uint8Array : width === 2 ? Uint16Array : Int32Array;
    return bytesOf(Ctor.from(t.int32Data));
  }
  return new Uint8Array(0);
}

const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);


