/**
 * The composite InternVL model (OpenGVLab `modeling_internvl_chat.py`, InternVLChatModel): every
 * tile goes through the ViT; the selected hidden state (class token dropped) is pixel-shuffled and
 * projected by `mlp1`; the projected tokens of tiles with image_flags == 1 replace, in order over
 * the flattened [batch*seq] ids, the embeddings at `<IMG_CONTEXT>` positions; the LLM gives logits.
 */
import { fail, type Module, type Tensor } from '../dsl/module.ts';
import { Model, type EntryPoint, type InputSpec } from '../dsl/model.ts';
import type { FreezeRule } from '../dsl/freeze.ts';
import type { LoraDeclaration, LoraPartInfo } from '../dsl/lora.ts';
import * as op from '../ops/index.ts';
import { activeBuilder, type TraceFacts } from '../ir/builder.ts';
import { f32, i64, i64Scalar } from '../dsl/constants.ts';
import { reshape } from '../nn/layers.ts';
import { DTYPES } from '../ir/dtype.ts';
import type { InternVisionModel } from './internvit.ts';
import { headDimOf, type CausalLM } from './llm/decoder.ts';
import { Projector, pixelShuffle, type PsVersion } from './projector.ts';
import { checkInternVLOptions } from './check-options.ts';
import { INTERNVL_LORA_CONFIG_FIELDS } from './internvl.lora.names.ts';

export interface InternVLOptions {
  vision: InternVisionModel;
  llm: CausalLM;
  /** Pixel shuffle ratio; 0.5 = 4 patches per token. */
  downsampleRatio?: number;
  psVersion?: PsVersion;
  /** Which ViT hidden state feeds the projector; -1 = last layer. */
  selectLayer?: number;
  /** Tile size fed to the ViT (config.force_image_size); defaults to the ViT's own image size. */
  imageSize?: number;
  /**
   * A custom projector ([tiles, tokens, vision_hidden / ratio^2] -> [tiles, tokens, llm_hidden]),
   * stored under `mlp1`; defaults to InternVL's LayerNorm-Linear-GELU-Linear.
   */
  projector?: ProjectorModule;
  /**
   * false: no `image_flags` input, every tile counts (transformers' InternVLForConditionalGeneration);
   * `vlmc run` then checks that the `<IMG_CONTEXT>` tokens number tiles x tokens per tile. Default true.
   */
  imageFlags?: boolean;
  /** Id of `<IMG_CONTEXT>`; when omitted it comes from the CLI or the checkpoint's tokenizer files. */
  imgContextTokenId?: number;
  train?: FreezeRule[];
  /** LoRA on the vision backbone and / or the LLM (`lora({ llm: 16 })`, InternVL's use_llm_lora). */
  lora?: LoraDeclaration;
  /** Name used in the artifact and lock files. */
  name?: string;
}

/** Anything that maps shuffled patch features to LLM-width tokens. */
export type ProjectorModule = Module & { forward(x: Tensor): Tensor };

/** Placeholder for an unknown <IMG_CONTEXT> id in structure-only graphs; matches no token. */
const UNSET_TOKEN_ID = -1;

export class InternVLChatModel extends Model {
  readonly vision_model: InternVisionModel;
  readonly mlp1: ProjectorModule;
  readonly language_model: CausalLM;
  readonly options: Required<Omit<InternVLOptions, 'vision' | 'llm' | 'train' | 'lora' | 'imgContextTokenId' | 'projector'>> & { imgContextTokenId: number | undefined };

  constructor(o: InternVLOptions) {
    super();
    const visionCfg = o.vision.config;
    this.options = {
      downsampleRatio: o.downsampleRatio ?? 0.5,
      psVersion: o.psVersion ?? 'v2',
      selectLayer: o.selectLayer ?? -1,
      imageSize: o.imageSize ?? visionCfg.imageSize,
      imgContextTokenId: o.imgContextTokenId,
      imageFlags: o.imageFlags ?? true,
      name: o.name ?? 'internvl',
    };
    this.vision_model = o.vision;
    this.mlp1 = o.projector ?? new Projector({
      visionHidden: visionCfg.hidden,
      llmHidden: o.llm.config.hidden,
      downsampleRatio: this.options.downsampleRatio,
      psVersion: this.options.psVersion,
    });
    this.language_model = o.llm;
    this.train = o.train ?? [];
    this.lora = o.lora;
  }

  /** InternVL's two LoRA parts: the backbone (use_backbone_lora) and the LLM (use_llm_lora); mlp1 is never wrapped. */
  override loraParts(): Record<string, LoraPartInfo> {
    return {
      vision: { module: 'vision_model', targets: this.vision_model.loraTargets(), configField: INTERNVL_LORA_CONFIG_FIELDS.vision_model!, flag: '--use-backbone-lora' },
      llm: { module: 'language_model', targets: this.language_model.loraTargets(), configField: INTERNVL_LORA_CONFIG_FIELDS.language_model!, flag: '--use-llm-lora' },
    };
  }

  override aliases(): Record<string, string> {
    return {
      vision: 'vision_model',
      'vision.layers': 'vision_model.encoder.layers',
      projector: 'mlp1',
      llm: 'language_model',
      'llm.layers': 'language_model.model.layers',
      'llm.head': this.language_model.outputHead().path,
    };
  }

  /** Tokens each tile contributes: (image/patch)^2 * ratio^2. */
  get tokensPerTile(): number {
    const { imageSize, downsampleRatio } = this.options;
    return Math.round((imageSize / this.vision_model.config.patchSize) ** 2 * downsampleRatio ** 2);
  }

  inputs(): InputSpec[] {
    const s = this.options.imageSize;
    const inputs: InputSpec[] = [
      { name: 'pixel_values', dtype: 'float32', shape: ['tiles', 3, s, s] },
      { name: 'input_ids', dtype: 'int64', shape: ['batch', 'seq'] },
    ];
    if (this.options.imageFlags) inputs.push({ name: 'image_flags', dtype: 'int64', shape: ['tiles'] });
    return inputs;
  }

  forward(pixelValues: Tensor, inputIds: Tensor, imageFlags?: Tensor): Record<string, Tensor> {
    const vitEmbeds = this.extractFeature(pixelValues);
    const embeds = this.spliceImageTokens(this.language_model.embed(inputIds), inputIds, vitEmbeds, imageFlags);
    return { logits: this.language_model.call(embeds), vit_embeds: vitEmbeds };
  }

  /**
   * The split artifact's graphs, traced from the same modules: `vision` (tiles -> projected image
   * features), `embedding` (ids + features -> inputs_embeds, the splice) and `decoder` (the LLM
   * with a KV cache; names as in onnxruntime-genai / transformers.js).
   */
  override entryPoints(): Record<string, EntryPoint> {
    const s = this.options.imageSize;
    const c = this.language_model.config;
    const hidden = c.hidden;
    const layers = c.layers;
    const cacheShape = ['batch', c.kvHeads, 'past', headDimOf(c)];
    return {
      vision: {
        inputs: () => [{ name: 'pixel_values', dtype: 'float32', shape: ['tiles', 3, s, s] }],
        forward: (pixelValues) => ({ image_features: this.extractFeature(pixelValues!) }),
      },
      embedding: {
        inputs: () => [
          { name: 'input_ids', dtype: 'int64', shape: ['batch', 'seq'] },
          { name: 'image_features', dtype: 'float32', shape: ['tiles', this.tokensPerTile, hidden] },
          ...(this.options.imageFlags ? [{ name: 'image_flags', dtype: 'int64' as const, shape: ['tiles'] }] : []),
        ],
        forward: (inputIds, features, flags) => ({
          inputs_embeds: this.spliceImageTokens(this.language_model.embed(inputIds!), inputIds!, features!, flags),
        }),
      },
      decoder: {
        inputs: () => [
          { name: 'inputs_embeds', dtype: 'float32', shape: ['batch', 'seq', hidden] },
          { name: 'attention_mask', dtype: 'int64', shape: ['batch', 'total'] },
          { name: 'position_ids', dtype: 'int64', shape: ['batch', 'seq'] },
          ...Array.from({ length: layers }, (_, i) => [
            { name: `past_key_values.${i}.key`, dtype: 'float32' as const, shape: cacheShape },
            { name: `past_key_values.${i}.value`, dtype: 'float32' as const, shape: cacheShape },
          ]).flat(),
          { name: 'full_logits', dtype: 'int64', shape: [] },
        ],
        forward: (embeds, attentionMask, positionIds, ...rest) => {
          const past = Array.from({ length: layers }, (_, i) => ({ key: rest[2 * i]!, value: rest[2 * i + 1]! }));
          const lm = this.language_model;
          const out = lm.within(() => lm.forwardCached({ embeds: embeds!, attentionMask: attentionMask!, positionIds: positionIds!, past, fullLogits: rest[2 * layers]! }));
          const named: Record<string, Tensor> = { logits: out.logits };
          out.present.forEach((p, i) => {
            named[`present.${i}.key`] = p.key;
            named[`present.${i}.value`] = p.value;
          });
          return named;
        },
      },
    };
  }

  /** ViT -> drop class token -> pixel shuffle -> mlp1: [tiles, tokens_per_tile, llm_hidden]. */
  extractFeature(pixelValues: Tensor): Tensor {
    const hidden = this.vision_model.call(pixelValues, this.options.selectLayer);
    const patches = op.Slice(hidden, i64([1]), i64([Number.MAX_SAFE_INTEGER]), i64([1]));
    const n = (patches.shape[1] as number);
    const side = Math.round(Math.sqrt(n));
    if (side * side !== n) fail(`the ViT gives ${n} patch tokens, not a square grid`);
    const grid = reshape(patches, [0, side, side, this.vision_model.config.hidden]);
    return this.mlp1.call(pixelShuffle(grid, this.options.downsampleRatio, this.options.psVersion));
  }

  /** The `<IMG_CONTEXT>` id: the model's own, else the one the build found (a flag, the tokenizer files). */
  contextTokenId(facts: TraceFacts = {}): number | undefined {
    return this.options.imgContextTokenId ?? facts.imgContextTokenId;
  }

  /** Replace `<IMG_CONTEXT>` embeddings, in row-major order, by the flagged tiles' tokens. */
  spliceImageTokens(textEmbeds: Tensor, inputIds: Tensor, vitEmbeds: Tensor, imageFlags: Tensor | undefined): Tensor {
    const trace = activeBuilder();
    const contextId = this.contextTokenId(trace.facts) ?? (trace.structureOnly ? UNSET_TOKEN_ID : undefined);
    if (contextId === undefined) fail('the <IMG_CONTEXT> token id is unknown: set imgContextTokenId in the graph, pass --img-context-token-id, or build with a checkpoint whose tokenizer files name it');
    const hidden = this.language_model.config.hidden;
    const kept = imageFlags ? op.Compress(vitEmbeds, op.Equal(imageFlags, i64Scalar(1)), { axis: 0 }) : vitEmbeds;
    // A zero row at the end keeps Gather in range where no position is an image position.
    const tokens = op.Concat([reshape(kept, [-1, hidden]), f32(new Array(hidden).fill(0), [1, hidden])], { axis: 0 });
    const isImage = op.Equal(inputIds, i64Scalar(contextId));
    const flatCount = op.CumSum(reshape(op.Cast(isImage, { to: DTYPES.int64.onnx }), [-1]), i64Scalar(0));
    const order = op.Reshape(op.Sub(flatCount, i64Scalar(1)), op.Shape(inputIds));
    const index = op.Where(isImage, order, i64Scalar(0));
    const imageEmbeds = op.Gather(tokens, index, { axis: 0 });
    return op.Where(op.Unsqueeze(isImage, i64([-1])), imageEmbeds, textEmbeds);
  }

  override metadata(facts: TraceFacts = {}): Record<string, string> {
    const o = this.options;
    return {
      'vlmc.model': o.name,
      'vlmc.img_context_token_id': String(this.contextTokenId(facts) ?? ''),
      'vlmc.tokens_per_tile': String(this.tokensPerTile),
      'vlmc.select_layer': String(o.selectLayer),
      'vlmc.downsample_ratio': String(o.downsampleRatio),
      'vlmc.ps_version': o.psVersion,
      // Only when off, so graphs with flags keep their metadata (and locks) as they were.
      ...(o.imageFlags ? {} : { 'vlmc.image_flags': 'false' }),
    };
  }
}

export function internvl(options: InternVLOptions): InternVLChatModel {
  checkInternVLOptions(options);
  return new InternVLChatModel(options);
}
