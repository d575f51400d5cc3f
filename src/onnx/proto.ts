/** The ONNX protobuf classes (onnx-proto ships them as a CommonJS protobufjs module). */
import onnxProto from 'onnx-proto';

export const onnx = onnxProto.onnx;
export type ModelProto = InstanceType<typeof onnx.ModelProto>;
export type TensorProto = InstanceType<typeof onnx.TensorProto>;
export type NodeProto = InstanceType<typeof onnx.NodeProto>;
export type ValueInfoProto = InstanceType<typeof onnx.ValueInfoProto>;

/** Decimal text of an int attribute given as number, bigint or protobufjs Long. */
export function intText(v: unknown): string {
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  if (v && typeof (v as { toString: unknown }).toString === 'function') return (v as { toString(): string }).toString();
  return String(v);
}
