/**
 * Every graph in graphs/ builds (structure only: parameters are shapes, no weights are allocated)
 * and its parameter count matches the published figure of the checkpoint it describes.
 *
 * Published figures come in three precisions, and each row says which it is:
 * - exact: a checkpoint's `model.safetensors.index.json` `metadata.total_size` / 2 (bf16);
 * - file sizes: the Hugging Face file listing of the checkpoint, in decimal GB rounded to 3
 *   significant figures, so each file is +-0.005 GB plus its safetensors header;
 * - rounded counts: a parameter count shown rounded (Hugging Face's "Model size", a model card).
 * Where the model cards name the same vision part and the same LLM for two releases (InternVL2-8B and
 * InternVL2.5-8B: InternViT-300M-448px(-V2_5) + internlm2_5-7b-chat), the two graphs must agree exactly,
 * which carries exact figures across releases.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { collectParams, type Model } from '../src/index.ts';

const GRAPHS_DIR = fileURLToPath(new URL('../graphs/', import.meta.url));
const TINY_FIXTURE = fileURLToPath(new URL('../../shared/fixtures/qwen2-tiny/', import.meta.url));

interface Expected {
  /** Parameter count the published figure stands for. */
  value: number;
  /** Largest admissible |count - value|; 0 = exact. */
  tolerance: number;
  /** How the figure was published (for failure messages). */
  kind: string;
}

const GB = 1e9;
/** Bytes per bf16 parameter. */
const BF16 = 2;
/** Generous upper bound on one safetensors header (the tensor index, ~100 kB for these checkpoints). */
const HEADER = 1e6;

/** `metadata.total_size` of a bf16 checkpoint's model.safetensors.index.json. */
function totalSize(bytes: number): Expected {
  return { value: bytes / BF16, tolerance: 0, kind: `exact (total_size ${bytes} B / 2)` };
}

/** Sizes of a bf16 checkpoint's weight files as a file listing shows them (GB, 3 significant figures). */
function fileSizes(...gb: number[]): Expected {
  const sum = gb.reduce((a, b) => a + b, 0);
  return { value: (sum * GB) / BF16, tolerance: (gb.length * (0.005 * GB + HEADER)) / BF16, kind: `weight files ${gb.join(' + ')} GB` };
}

/**
 * Total size of a checkpoint repository as a file listing shows it (GB, 3 significant figures):
 * the weights plus at most `otherBytes` of tokenizer, code and docs.
 */
function repoSize(gb: number, files: number, otherBytes = 30e6): Expected {
  const lo = gb * GB - 0.05 * GB - otherBytes - files * HEADER;
  const hi = gb * GB + 0.05 * GB;
  return { value: (lo + hi) / 2 / BF16, tolerance: (hi - lo) / 2 / BF16, kind: `repository ${gb} GB` };
}

/** A parameter count published rounded to `unit` (e.g. "938M" -> rounded(938e6, 1e6)). */
function rounded(value: number, unit: number): Expected {
  return { value, tolerance: unit / 2, kind: `rounded ${value / 1e9}B (unit ${unit / 1e9}B)` };
}

/**
 * Published figures, one row per released configuration, each with its source.
 * HF = huggingface.co; "tree" = the repository's file listing at the revision named.
 */
const PUBLISHED: Record<string, Expected[]> = {
  // HF zhangfaen/InternVL2-1B-checkpoint, a byte copy of OpenGVLab/InternVL2-1B's model.safetensors
  // (sha256 9420916a...): "Model size 938M params".
  'internvl2-1b': [rounded(938e6, 1e6)],
  // HF tree OpenGVLab/InternVL2-2B (main): model.safetensors 4.41 GB.
  'internvl2-2b': [fileSizes(4.41)],
  // HF tree OpenGVLab/InternVL2-4B (8226c52): model-00001-of-00002 4.96 GB, model-00002-of-00002 3.34 GB.
  // (The card's benchmark table rounds it up to "4.2B".)
  'internvl2-4b': [fileSizes(4.96, 3.34)],
  // Model card OpenGVLab/InternVL2-8B, benchmark table "Model Size 8.1B"; exact via InternVL2.5-8B (same parts).
  'internvl2-8b': [rounded(8.1e9, 0.1e9)],
  // HF collection OpenGVLab/internvl20 (InternVL2.0): "InternVL2-26B ... 26B".
  'internvl2-26b': [rounded(26e9, 1e9)],
  // HF collection OpenGVLab/internvl20: "InternVL2-40B ... 40B"; the model card's table also says "40B".
  'internvl2-40b': [rounded(40e9, 1e9)],
  // HF collection OpenGVLab/internvl20: "InternVL2-Llama3-76B ... 76B".
  'internvl2-76b': [rounded(76e9, 1e9)],
  // HF thisisiron/InternVL2_5-1B (transformers-format conversion of OpenGVLab/InternVL2_5-1B, same tensors
  // renamed): model.safetensors 1.88 GB.
  'internvl2_5-1b': [fileSizes(1.88)],
  // HF tree OpenGVLab/InternVL2_5-2B (4f846a8): model.safetensors 4.41 GB.
  'internvl2_5-2b': [fileSizes(4.41)],
  // HF tree OpenGVLab/InternVL2_5-4B (9e3bfef): model-00001-of-00002 4.99 GB, model-00002-of-00002 2.43 GB.
  'internvl2_5-4b': [fileSizes(4.99, 2.43)],
  // OpenGVLab/InternVL2_5-8B model.safetensors.index.json: "total_size": 16150730752, as dumped in
  // github.com/cuijunjie18/my_notebook uv/ICT_note.md ("InternVL2.5-8B原模型（hf）").
  'internvl2_5-8b': [totalSize(16_150_730_752)],
  // No figure found for the 2.5 releases below; they equal a sibling with the same parts (see SAME_PARTS).
  'internvl2_5-26b': [],
  'internvl2_5-38b': [],
  'internvl2_5-78b': [],
  // HF tree OpenGVLab/InternVL3-1B (main): model.safetensors 1.88 GB (an untied lm_head; tied would be 1.60 GB).
  'internvl3-1b': [fileSizes(1.88)],
  // HF tree OpenGVLab/InternVL3-2B (refs/pr/4): model.safetensors 4.18 GB (untied; tied would be 3.71 GB).
  'internvl3-2b': [fileSizes(4.18)],
  // HF tree OpenGVLab/InternVL3-8B (main): repository 15.9 GB, 4 weight files.
  'internvl3-8b': [repoSize(15.9, 4)],
  // No total found for InternVL3-9B (only shards 1-2 of 4: 4.96 + 4.93 GB); the size class in its name.
  'internvl3-9b': [rounded(9e9, 1e9)],
  // HF tree OpenGVLab/InternVL3-14B (main): repository 30.2 GB, 7 weight files; HF org listing "15B".
  'internvl3-14b': [repoSize(30.2, 7), rounded(15e9, 1e9)],
  // HF org listing OpenGVLab (models): "InternVL3-38B ... 38B".
  'internvl3-38b': [rounded(38e9, 1e9)],
  // HF org listing OpenGVLab (models): "InternVL3-78B ... 78B".
  'internvl3-78b': [rounded(78e9, 1e9)],
  // InternVL3.5 model cards (OpenGVLab/InternVL3_5-*), model table "#Total Param" (0.1B units); the
  // InternVL3.5 project page lists the range as "1.06B to 240.70B-A28B" (0.01B units). Each is
  // InternViT-300M or -6B (V2_5) + the Qwen3 / GPT-OSS LLM with an untied lm_head + the projector.
  'internvl3_5-1b': [rounded(1.1e9, 0.1e9), rounded(1.06e9, 0.01e9)],
  'internvl3_5-2b': [rounded(2.3e9, 0.1e9)],
  'internvl3_5-4b': [rounded(4.7e9, 0.1e9)],
  'internvl3_5-8b': [rounded(8.5e9, 0.1e9)],
  'internvl3_5-14b': [rounded(15.1e9, 0.1e9)],
  'internvl3_5-38b': [rounded(38.4e9, 0.1e9)],
  'internvl3_5-30b-a3b': [rounded(30.8e9, 0.1e9)],
  'internvl3_5-241b-a28b': [rounded(240.7e9, 0.1e9), rounded(240.70e9, 0.01e9)],
  'internvl3_5-20b-a4b': [rounded(21.2e9, 0.1e9)],
};

/**
 * Releases whose model cards name the same vision part and LLM (dimension-identical: the V2_5 ViTs
 * keep the V1-5 / 300M shapes), so their checkpoints hold the same tensors.
 */
const SAME_PARTS: [string, string, string][] = [
  ['internvl2-8b', 'internvl2_5-8b', 'InternViT-300M-448px(-V2_5) + internlm2_5-7b-chat'],
  ['internvl2-2b', 'internvl2_5-2b', 'InternViT-300M-448px(-V2_5) + internlm2(_5)-chat-1_8b (same shapes)'],
  ['internvl2_5-26b', 'internvl2-26b', 'InternViT-6B-448px-V1-5/V2_5 + internlm2(_5)-20b-chat (same shapes)'],
  ['internvl2_5-38b', 'internvl3-38b', 'InternViT-6B-448px-V2_5 + Qwen2.5-32B'],
  ['internvl2_5-78b', 'internvl3-78b', 'InternViT-6B-448px-V2_5 + Qwen2.5-72B'],
  ['internvl2_5-1b', 'internvl3-1b', 'InternViT-300M-448px-V2_5 + Qwen2.5-0.5B, untied lm_head'],
];

function countParams(model: Model): number {
  return collectParams(model).reduce((sum, p) => sum + p.shape.reduce((a, b) => a * b, 1), 0);
}

const graphFiles = readdirSync(GRAPHS_DIR).filter((f) => f.endsWith('.ts')).sort();
const counts = new Map<string, number>();
async function count(name: string): Promise<number> {
  let n = counts.get(name);
  if (n === undefined) {
    const mod = (await import(`${GRAPHS_DIR}${name}.ts`)) as { default: Model };
    n = countParams(mod.default);
    counts.set(name, n);
  }
  return n;
}

describe('graph parameter counts', () => {
  it('has a published-figure row for every InternVL release graph', () => {
    const releases = graphFiles.map((f) => f.replace(/\.ts$/, '')).filter((n) => /^internvl(2|2_5|3|3_5)-/.test(n));
    expect(releases.sort()).toEqual(Object.keys(PUBLISHED).sort());
  });

  for (const file of graphFiles) {
    const name = file.replace(/\.ts$/, '');
    it(`${name} builds and matches its published figure`, async () => {
      const n = await count(name);
      expect(n).toBeGreaterThan(0);
      for (const e of PUBLISHED[name] ?? []) {
        const off = Math.abs(n - e.value);
        expect(off, `${name}: ${n} parameters vs ${e.kind} (${e.value} +- ${e.tolerance})`).toBeLessThanOrEqual(e.tolerance);
      }
    });
  }

  // A structure-only build traces the image splice, which needs the id (a checkpoint's tokenizer gives
  // it otherwise). InternVL3.5's Qwen3 tokenizer adds <img> 151669, </img> 151670 and <IMG_CONTEXT>
  // 151671 after Qwen3's </think> (151668). A graph may leave the id open only where no published
  // source gave it, and its header must say so.
  it('every release graph declares its <IMG_CONTEXT> id, so it builds without a checkpoint, or says why not', async () => {
    for (const name of Object.keys(PUBLISHED)) {
      const mod = (await import(`${GRAPHS_DIR}${name}.ts`)) as { default: Model & { options?: { imgContextTokenId?: number } } };
      const id = mod.default.options?.imgContextTokenId;
      const saysOpen = readFileSync(`${GRAPHS_DIR}${name}.ts`, 'utf8').includes('<IMG_CONTEXT> id not set here');
      expect(id === undefined, `${name}: id ${id}, header says open: ${saysOpen}`).toBe(saysOpen);
      if (/^internvl3_5-/.test(name) && id !== undefined) expect(id, name).toBe(151_671);
    }
  });

  for (const [a, b, parts] of SAME_PARTS) {
    it(`${a} and ${b} hold the same tensors (${parts})`, async () => {
      expect(await count(a)).toBe(await count(b));
    });
  }
});

describe('internvl-tiny', () => {
  // ../shared/fixtures/qwen2-tiny/case.json `num_params.total` (64) counts tensors (it equals
  // `num_params.full`, the tensors with a gradient under the `full` preset), not elements; the element
  // count is read from the unified checkpoint's safetensors header.
  const caseJson = JSON.parse(readFileSync(`${TINY_FIXTURE}case.json`, 'utf8')) as { num_params: { total: number } };

  function checkpointShapes(): number[][] {
    const bytes = readFileSync(`${TINY_FIXTURE}unified/model.safetensors`);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { shape?: number[] }>;
    return Object.entries(header)
      .filter(([key]) => key !== '__metadata__')
      .map(([, t]) => t.shape ?? []);
  }

  it('declares as many tensors as the fixture counts (num_params.total = 64)', async () => {
    const mod = (await import(`${GRAPHS_DIR}internvl-tiny.ts`)) as { default: Model };
    expect(caseJson.num_params.total).toBe(64);
    expect(collectParams(mod.default).length).toBe(caseJson.num_params.total);
  });

  it('has as many elements as the fixture checkpoint (95024)', async () => {
    const shapes = checkpointShapes();
    expect(shapes.length).toBe(caseJson.num_params.total);
    const elements = shapes.reduce((sum, s) => sum + s.reduce((a, b) => a * b, 1), 0);
    expect(elements).toBe(95_024);
    expect(await count('internvl-tiny')).toBe(elements);
  });
});
