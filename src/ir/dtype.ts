/** Element types the IR knows, with their ONNX TensorProto.DataType codes and sizes. */
export const DTYPES = {
  float32: { onnx: 1, bytes: 4 },
  uint8: { onnx: 2, bytes: 1 },
  int8: { onnx: 3, bytes: 1 },
  uint16: { onnx: 4, bytes: 2 },
  int16: { onnx: 5, bytes: 2 },
  int32: { onnx: 6, bytes: 4 },
  int64: { onnx: 7, bytes: 8 },
  string: { onnx: 8, bytes: 0 },
  bool: { onnx: 9, bytes: 1 },
  float16: { onnx: 10, bytes: 2 },
  float64: { onnx: 11, bytes: 8 },
  uint32: { onnx: 12, bytes: 4 },
  uint64: { onnx: 13, bytes: 8 },
  bfloat16: { onnx: 16, bytes: 2 },
} as const;

export type DType = keyof typeof DTYPES;

/** Dtypes a parameter may be stored in. */
export type ParamDType = 'float32' | 'float16' | 'bfloat16';

export function dtypeFromOnnx(code: number): DType {
  for (const [name, info] of Object.entries(DTYPES)) if (info.onnx === code) return name as DType;
  throw new Error(`unsupported ONNX element type ${code}`);
}
