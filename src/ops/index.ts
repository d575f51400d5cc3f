/** Typed ONNX op builders (generated) plus the small composites every model uses. */
export * from './onnx.generated.ts';
