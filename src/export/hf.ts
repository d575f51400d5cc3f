/**
 * `vlmc export --layout hf`: an original-layout InternVL checkpoint (InternVLChatModel) rewritten in
 * the Hugging Face-native layout (transformers' InternVLForConditionalGeneration), through the same
 * name map the build reads it with (src/models/internvl.hf.names.ts). Tensors keep their bytes and
 * dtype; a fused vision `qkv` becomes `q_proj` / `k_proj` / `v_proj` by header bookkeeping alone,
 * because the three parts are laid out one after another. Only what transformers computes the same
 * way is converted; anything else is refused, naming why.
 */
import { copyFile, open, writeFile, type FileHandle } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import * as nodePath from 'node:path';
import { UserError } from '../errors.ts';
import { Checkpoint } from '../checkpoint/checkpoint.ts';
import { findSpecialTokenId } from '../checkpoint/tokens.ts';
import { withTempSibling } from '../fs/atomic.ts';
import { checkOutputPath, CHECKPOINT_MARK } from '../fs/output-path.ts';
import { assignPaths, collectParams } from '../dsl/module.ts';
import { GraphParam } from '../ir/graph.ts';
import { planBinding } from '../bind/plan.ts';
import { internvlFromConfig } from '../models/from-config.ts';
import { HF_QK_NORM_EPS, isHFInternVLConfig } from '../models/from-hf-config.ts';
import { HF_SPELLINGS, type HFSpelling } from '../models/internvl.hf.names.ts';
import { INTERNVL_BINDING, originalLayout } from '../models/internvl.names.ts';
import { KeyLayout } from '../dsl/layout.ts';
import { llmConfigJson } from '../models/to-config.ts';
import type { InternVLChatModel } from '../models/internvl.ts';

export interface ExportOptions {
  /** Checkpoint folder in the original InternVL layout. */
  checkpoint: string;
  /** Folder to write (atomically). */
  out: string;
  /** Key spelling: transformers 4.52+ saves (default; transformers 5 loads it too) or transformers 5 saves. */
  spelling?: HFSpelling;
}

export interface ExportResult {
  out: string;
  tensors: number;
}

/** Files beside the weights that a transformers checkpoint keeps as they are. */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'added_tokens.json', 'special_tokens_map.json', 'vocab.json', 'merges.txt', 'tokenizer.model', 'generation_config.json'];

export async function exportHF(o: ExportOptions): Promise<ExportResult> {
  // Before any work: the output may only be new or an earlier export (it carries vlmc's checkpoint mark).
  checkOutputPath(o.out, { kind: 'checkpoint', flag: '--out', inputs: [o.checkpoint] });
  const ckpt = await Checkpoint.open(o.checkpoint);
  try {
    const where = nodePath.join(ckpt.dir, 'config.json');
    if (isHFInternVLConfig(ckpt.config)) throw new UserError(`${where}: already a Hugging Face-native checkpoint (model_type 'internvl')`);
    const model = internvlFromConfig({ ...ckpt.config }, where);
    const imageTokenId = findSpecialTokenId(ckpt.dir);
    if (imageTokenId === undefined) throw new UserError(`${ckpt.dir}: no tokenizer file names <IMG_CONTEXT>; transformers' config needs its id (image_token_id)`);
    refuseWhatDiffers(model, where);
    assignPaths(model);
    // The same strict check as a build: every parameter present, nothing unexpected.
    const plan = planBinding(collectParams(model).map((p) => new GraphParam(p)), 'A', [{ role: 'unified', checkpoint: ckpt, layout: originalLayout('unified') }], INTERNVL_BINDING);
    const spelling = o.spelling ?? 'transformers-4';
    const layout = new KeyLayout(`hf:${spelling}`, HF_SPELLINGS[spelling]);
    const tensors = plan.params.flatMap(({ param, origin }) => {
      const key = origin.kind === 'checkpoint' ? origin.key : param.name;
      const keys = [layout.keysFor(param.name) ?? param.name].flat();
      const entry = ckpt.entry(key);
      const rows = param.shape[0]! / keys.length;
      return keys.map((name, part) => ({ name, source: key, dtype: entry.dtype, shape: keys.length === 1 ? [...entry.shape] : [rows, ...entry.shape.slice(1)], part }));
    });
    await withTempSibling(o.out, async (tmp) => {
      await writeFile(nodePath.join(tmp, CHECKPOINT_MARK), 'a checkpoint written by vlmc export\n');
      await writeFile(nodePath.join(tmp, 'config.json'), `${JSON.stringify(hfConfigJson(model, imageTokenId), null, 2)}\n`);
      await writeWeights(nodePath.join(tmp, 'model.safetensors'), ckpt, tensors);
      for (const f of TOKENIZER_FILES) if (existsSync(nodePath.join(ckpt.dir, f))) await copyFile(nodePath.join(ckpt.dir, f), nodePath.join(tmp, f));
    });
    return { out: o.out, tensors: tensors.length };
  } finally {
    await ckpt.close();
  }
}

/** transformers' InternVL computes these differently, so the converted checkpoint would not match. */
function refuseWhatDiffers(m: InternVLChatModel, where: string): void {
  const why = (s: string) => new UserError(`${where}: cannot export to the Hugging Face layout: ${s}`);
  if (m.options.psVersion !== 'v2') throw why("ps_version is 'v1'; transformers' InternVL shuffles pixels the v2 way only");
  const v = m.vision_model.config;
  if (v.qkNorm && v.eps !== HF_QK_NORM_EPS) throw why(`the ViT's q/k norm uses layer_norm_eps ${v.eps}; transformers fixes it at ${HF_QK_NORM_EPS}`);
  if (m.options.imageSize !== v.imageSize) throw why(`force_image_size ${m.options.imageSize} differs from the ViT's image_size ${v.imageSize}; transformers' config has no force_image_size`);
  const arch = m.language_model.architecture;
  if (arch === 'InternLM2ForCausalLM') throw why('InternLM2 LLMs are converted to Llama by unpacking wqkv, which vlmc does not do');
}

/** InternVLConfig for the model (transformers' field names; the text model's own config as text_config). */
export function hfConfigJson(m: InternVLChatModel, imageTokenId: number): Record<string, unknown> {
  const v = m.vision_model.config;
  const text = llmConfigJson(m.language_model, 'transformers');
  return {
    architectures: ['InternVLForConditionalGeneration'],
    model_type: 'internvl',
    image_token_id: imageTokenId,
    image_seq_length: m.tokensPerTile,
    downsample_ratio: m.options.downsampleRatio,
    projector_hidden_act: 'gelu',
    vision_feature_layer: m.options.selectLayer,
    vision_feature_select_strategy: 'default',
    tie_word_embeddings: m.language_model.config.tieEmbeddings,
    vision_config: {
      architectures: ['InternVLVisionModel'],
      model_type: 'internvl_vision',
      hidden_size: v.hidden,
      num_attention_heads: v.heads,
      num_hidden_layers: v.layers,
      intermediate_size: v.intermediate,
      image_size: [v.imageSize, v.imageSize],
      patch_size: [v.patchSize, v.patchSize],
      num_channels: 3,
      norm_type: v.norm,
      layer_norm_eps: v.eps,
      attention_bias: v.qkvBias,
      use_qk_norm: v.qkNorm,
      layer_scale_init_value: v.layerScaleInit ?? 0.1,
      use_mean_pooling: true,
      use_absolute_position_embeddings: true,
      hidden_act: 'gelu',
    },
    text_config: text,
  };
}

interface OutTensor {
  name: string;
  /** The checkpoint key whose bytes it is (a part of them when split). */
  source: string;
  dtype: string;
  shape: number[];
  part: number;
}

const SIZES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };

/**
 * One safetensors file, header first, then each source tensor streamed once: the parts of a split
 * tensor are adjacent and in order, so the source's bytes land on them unchanged.
 */
async function writeWeights(path: string, ckpt: Checkpoint, tensors: OutTensor[]): Promise<void> {
  let offset = 0;
  const members = [`"__metadata__":{"format":"pt"}`];
  for (const t of tensors) {
    const end = offset + t.shape.reduce((a, b) => a * b, 1) * SIZES[t.dtype]!;
    members.push(`${JSON.stringify(t.name)}:{"dtype":${JSON.stringify(t.dtype)},"shape":${JSON.stringify(t.shape)},"data_offsets":[${offset},${end}]}`);
    offset = end;
  }
  const json = new TextEncoder().encode(`{${members.join(',')}}`);
  const header = new Uint8Array(Math.ceil(json.byteLength / 8) * 8).fill(0x20);
  header.set(json);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(header.byteLength), true);
  const file = await open(path, 'w');
  try {
    await writeAll(file, prefix, 0);
    await writeAll(file, header, 8);
    let pos = 8 + header.byteLength;
    for (const t of tensors) {
      if (t.part > 0) continue; // written with part 0: the source's bytes cover all its parts
      for await (const chunk of ckpt.chunks(t.source)) {
        await writeAll(file, chunk, pos);
        pos += chunk.byteLength;
      }
    }
  } finally {
    await file.close();
  }
}

async function writeAll(file: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await file.write(bytes, done, bytes.byteLength - done, position + done);
    done += bytesWritten;
  }
}
