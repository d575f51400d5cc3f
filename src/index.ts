/**
 * vlmc's library API: everything the CLI does is available here first.
 * Graph files import the DSL and the zoo from 'vlmc'.
 */
export { Module, ModuleList, fail, assignPaths, collectParams, collectModules, type Tensor } from './dsl/module.ts';
export { Model, type InputSpec } from './dsl/model.ts';
export { freeze, unfreeze, preset, PRESETS, applyFreezeRules, matchesGlob, freezeBackbone, freezeLlm, freezeMlp, unfreezeVitLayers, unfreezeLmHead, type FreezeRule } from './dsl/freeze.ts';
export { lora, type LoraDeclaration, type LoraOptions, type LoraPartOptions, type LoraPartInfo } from './dsl/lora.ts';
export { i64, i64Scalar, f32, f32Scalar } from './dsl/constants.ts';
export * as op from './ops/index.ts';
export * as nn from './nn/index.ts';

export { internViT, internViT300M, internViT6B, InternVisionModel } from './models/internvit.ts';
export type { InternViTConfig } from './models/internvit-config.ts';
export { internvl, InternVLChatModel, type InternVLOptions, type ProjectorModule } from './models/internvl.ts';
export { Projector, pixelShuffle, type ProjectorConfig, type PsVersion } from './models/projector.ts';
export { llama, qwen2, LlamaForCausalLM } from './models/llm/llama.ts';
export { internlm2, InternLM2ForCausalLM } from './models/llm/internlm2.ts';
export { phi3, Phi3ForCausalLM } from './models/llm/phi3.ts';
export { qwen3, Qwen3Attention } from './models/llm/qwen3.ts';
export { qwen3Moe, Qwen3MoeSparseMoeBlock } from './models/llm/qwen3-moe.ts';
export { gptOss, GptOssAttention, GptOssMLP } from './models/llm/gpt-oss.ts';
export { CausalLM, type DecoderConfig } from './models/llm/decoder.ts';
export { LLM_FAMILIES, llmFromHF } from './models/llm/index.ts';
export type { RopeScaling } from './nn/rotary.ts';
export { internvlFromConfig, internvlFromParts, visionFromHF } from './models/from-config.ts';
export { internvlFromHFConfig, hfVisionFromConfig, isHFInternVLConfig, isHFVisionConfig, type HFCheckpointFacts } from './models/from-hf-config.ts';
export { hfLayout, hfVisionLayout, HF_SPELLINGS, HF_VISION_STANDALONE, type HFSpelling } from './models/internvl.hf.names.ts';
export { KeyLayout, identityLayout, partLayout, type KeySource, type RenameRule, type PrefixMap } from './dsl/layout.ts';

export { compile, compileWithReport, checkCompileOptions, trace, DEFAULT_OPSET, TRAIN_ENTRY, type CompileOptions, type Compiled } from './compile.ts';
export type { Graph, Node, Value, Param, GraphParam, ParamRole, Dim, Shape } from './ir/graph.ts';
export type { TraceFacts } from './ir/builder.ts';
export { UserError, GraphError, CheckpointError } from './errors.ts';
export { Checkpoint } from './checkpoint/checkpoint.ts';

// The pipeline: load a graph, compile, bind, run.
export { loadGraphFile } from './graph-file.ts';
export { build, type BuildOptions, type BuildResult } from './build.ts';
export { openSession, run, type HostTensor, type ExecutionProvider, type SessionOptions } from './runtime/session.ts';
export { readInputs, writeOutputs } from './runtime/tensor-files.ts';
export { checkImageTokenCount, checkForwardInputs } from './runtime/check-inputs.ts';
export { runArtifact } from './run.ts';
export { readManifest, isSplitArtifact, isArtifactFolder, ARTIFACT_FILES, PIPELINE_FILE } from './artifact/format.ts';
export { init, type InitOptions } from './init/init.ts';
export { exportHF, hfConfigJson, type ExportOptions, type ExportResult } from './export/hf.ts';
export { exportMergedLora, type MergeLoraOptions, type MergeLoraResult } from './export/merge-lora.ts';
export { demo, writeRandomCheckpoint } from './demo.ts';
export { buildModelProto, encodeModel } from './onnx/emit.ts';
export type { Manifest, ManifestParameter } from './artifact/format.ts';
export * from './review/index.ts';

// The text side of a request: conversation templates, chat() prompts, the checkpoint's tokenizer.
export * from './prompt/index.ts';
export { loadTokenizer, TextTokenizer, StreamingDetokenizer, TOKENIZER_FILE, TOKENIZER_FILES, type DecodeOptions } from './tokenizer/index.ts';
export { buildInputs, writeInputs, readHistoryFile, readRequestConfig, INPUTS_METADATA, type InputsOptions, type InputsResult, type ModelInputs, type RequestConfig, type ImagePreprocessor } from './inputs/index.ts';

// InternVL image preprocessing: an image file -> pixel_values, exactly as the official load_image.
export {
  preprocessImage,
  preprocessRgb,
  decodeRgb,
  chooseGrid,
  planTiles,
  resizeBicubic,
  normalizeTiles,
  NORMALIZE_LUT,
  IMAGENET_MEAN,
  IMAGENET_STD,
  type PreprocessOptions,
  type PreprocessedImage,
  type PreprocessCallOptions,
  type RgbImage,
  type TilingOptions,
  type TilePlan,
  type CropBox,
} from './preprocess/index.ts';

// Output-path rules and atomic writes, shared by every command that writes.
export { checkOutputPath, resultMetadata, type OutputKind, type OutputCheck } from './fs/output-path.ts';
export { withTempSibling, writeFileAtomic, removeStaleSiblings } from './fs/atomic.ts';
export { fileSystemUserError } from './fs/errors.ts';
export { registerGraphHooks } from './loader/register.ts';

// Training: the backward, the AdamW step, the loop (docs/training.md).
export { differentiate, type Gradients } from './passes/autodiff.ts';
export { compileTrain, GRAD_PREFIX, type TrainGraph, type TrainCompileOptions, type PruningReport } from './train/compile-train.ts';
export { compileOptimizer } from './train/optimizer.ts';
export { train, type TrainOptions, type TrainResult } from './train/loop.ts';

// Generation: the split artifact (vlmc build --split) and decoding with its KV cache.
export { generate, generateFromArtifact, argmax, type GenerateInputs, type GenerateOptions, type GenerationStep, type Generation } from './generate/generate.ts';
export { SplitSession, runSplit, type KvPair } from './generate/session.ts';
export { readPipeline, type Pipeline } from './generate/pipeline.ts';
export { MODEL_ENTRY, type EntryPoint } from './dsl/model.ts';
export { entryPointNames } from './compile.ts';
export { KvCache } from './nn/attention.ts';
