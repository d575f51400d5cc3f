/**
 * IR -> ONNX ModelProto. Parameters are initializers stored as external data (the artifact's
 * `model.onnx.data`); constants are small inline initializers named by content. Nothing here
 * depends on time or map order, so equal graphs encode to equal bytes.
 */
import { DTYPES } from '../ir/dtype.ts';
import type { Attr, ConstData, Graph, Node, StoredTensor, Value } from '../ir/graph.ts';
import { collectConstants } from '../passes/naming.ts';
import { onnx, type ModelProto, type NodeProto, type TensorProto, type ValueInfoProto } from './proto.ts';

export const IR_VERSION = 8;

/** The lowest IR version whose ONNX release defined `opset` (onnx.helper.VERSION_TABLE). */
export function irVersionFor(opset: number): number {
  if (opset <= 18) return IR_VERSION;
  if (opset <= 20) return 9;
  if (opset <= 22) return 10;
  if (opset === 23) return 11;
  return 12;
}

/** Where each parameter's bytes are in the external data file. */
export interface ExternalWeights {
  location: string;
  entries: Map<string, { offset: number; length: number; dtype: keyof typeof DTYPES }>;
}

export interface EmitOptions {
  producerVersion: string;
}

export function buildModelProto(graph: Graph, weights: ExternalWeights, options: EmitOptions): ModelProto {
  const constants = [...collectConstants(graph).entries()].sort(([a], [b]) => (a < b ? -1 : 1));
  // A parameter that is a graph input (train.onnx's trainable ones) is fed, not stored.
  const stored = storedTensors(graph).filter((t) => !graph.inputs.some((v) => v.name === t.name));
  const initializers = [...stored.map((t) => paramInitializer(t.name, t.shape, weights)), ...constants.map(([name, v]) => constInitializer(name, v.data!))];
  return onnx.ModelProto.create({
    irVersion: irVersionFor(graph.opset),
    producerName: 'vlmc',
    producerVersion: options.producerVersion,
    opsetImport: opsetImports(graph),
    metadataProps: Object.keys(graph.metadata)
      .sort()
      .map((key) => onnx.StringStringEntryProto.create({ key, value: graph.metadata[key]! })),
    graph: onnx.GraphProto.create({
      name: graph.name,
      node: graph.nodes.map(nodeProto),
      input: graph.inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
      initializer: initializers,
    }),
  });
}

/** The default domain at the graph's opset, plus version 1 of each contrib domain a node uses. */
function opsetImports(graph: Graph): InstanceType<typeof onnx.OperatorSetIdProto>[] {
  const contrib = [...new Set(graph.nodes.map((n) => n.domain).filter((d) => d !== ''))].sort();
  return [{ domain: '', version: graph.opset }, ...contrib.map((domain) => ({ domain, version: 1 }))].map((o) => onnx.OperatorSetIdProto.create(o));
}

/** Every parameter as the graph stores it (packed, with its scales and zero points, when quantised). */
function storedTensors(graph: Graph): StoredTensor[] {
  const tensor = (v: Value): StoredTensor => ({ name: v.name!, dtype: v.dtype, shape: v.shape as number[] });
  return graph.params.flatMap((p) => [tensor(p.value), ...(p.quant ? [tensor(p.quant.scales), ...(p.quant.zeroPoints ? [tensor(p.quant.zeroPoints)] : [])] : [])]);
}

export function encodeModel(proto: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(proto).finish();
}

function paramInitializer(name: string, shape: number[], weights: ExternalWeights): TensorProto {
  const entry = weights.entries.get(name);
  if (!entry) throw new Error(`no external data entry for parameter ${name}`);
  return onnx.TensorProto.create({
    name,
    dims: shape,
    dataType: DTYPES[entry.dtype].onnx,
    dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
    externalData: [
      { key: 'location', value: weights.location },
      { key: 'offset', value: String(entry.offset) },
      { key: 'length', value: String(entry.length) },
    ].map((e) => onnx.StringStringEntryProto.create(e)),
  });
}

export function constInitializer(name: string, c: ConstData): TensorProto {
  return onnx.TensorProto.create({
    name,
    dims: c.shape,
    dataType: DTYPES[c.dtype].onnx,
    rawData: new Uint8Array(c.data.buffer, c.data.byteOffset, c.data.byteLength),
  });
}

function nodeProto(node: Node): NodeProto {
  return onnx.NodeProto.create({
    name: node.name,
    opType: node.op,
    domain: node.domain,
    input: node.inputs.map((v) => v?.name ?? ''),
    output: node.outputs.map((v) => v.name!),
    attribute: Object.keys(node.attrs)
      .sort()
      .map((name) => attributeProto(name, node.attrs[name]!)),
  });
}

const ATTR_TYPE = onnx.AttributeProto.AttributeType;

function attributeProto(name: string, attr: Attr): InstanceType<typeof onnx.AttributeProto> {
  const v = attr.value;
  switch (attr.type) {
    case 'INT':
      return onnx.AttributeProto.create({ name, type: ATTR_TYPE.INT, i: v as number });
    case 'FLOAT':
      return onnx.AttributeProto.create({ name, type: ATTR_TYPE.FLOAT, f: v as number });
    case 'STRING':
      return onnx.AttributeProto.create({ name, type: ATTR_TYPE.STRING, s: new TextEncoder().encode(v as string) });
    case 'INTS':
      return onnx.AttributeProto.create({ name, type: ATTR_TYPE.INTS, ints: v as number[] });
    case 'FLOATS':
      return onnx.AttributeProto.create({ name, type: ATTR_TYPE.FLOATS, floats: v as number[] });
    case 'STRINGS':
      return onnx.AttributeProto.create({ name, type: ATTR_TYPE.STRINGS, strings: (v as string[]).map((s) => new TextEncoder().encode(s)) });
    case 'TENSOR':
      return onnx.AttributeProto.create({ name, type: ATTR_TYPE.TENSOR, t: constInitializer('', v as ConstData) });
  }
}

function valueInfo(v: Value): ValueInfoProto {
  return onnx.ValueInfoProto.create({
    name: v.name!,
    type: onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({
        elemType: DTYPES[v.dtype].onnx,
        shape: onnx.TensorShapeProto.create({
          dim: v.shape.map((d) => onnx.TensorShapeProto.Dimension.create(typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
        }),
      }),
    }),
  });
}
