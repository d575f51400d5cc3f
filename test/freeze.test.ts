/** Freeze annotations resolve to a trainable flag on every parameter. */
import { describe, it, expect } from 'vitest';
import { compile, freeze, unfreeze, preset, internvl, internViT, qwen2, UserError } from '../src/index.ts';
import type { FreezeRule } from '../src/index.ts';

function model(train: FreezeRule[]) {
  return internvl({
    vision: internViT({ hidden: 32, heads: 4, layers: 4, intermediate: 64, imageSize: 56, patchSize: 14, norm: 'layer_norm', qkvBias: true, qkNorm: false, eps: 1e-6 }),
    llm: qwen2({ hidden: 48, heads: 4, kvHeads: 2, layers: 2, intermediate: 96, vocab: 160, rmsNormEps: 1e-6, ropeTheta: 1e6, maxPositions: 2048, tieEmbeddings: true }),
    imgContextTokenId: 153,
    train,
  });
}

const trainable = (train: FreezeRule[]) =>
  compile(model(train))
    .params.filter((p) => p.trainable)
    .map((p) => p.name);

describe('freeze annotations', () => {
  it('everything trains by default', () => {
    const g = compile(model([]));
    expect(g.params.every((p) => p.trainable)).toBe(true);
  });

  it('stage1 trains only the projector (mlp1.*)', () => {
    expect(trainable(preset('stage1'))).toEqual(['mlp1.0.weight', 'mlp1.0.bias', 'mlp1.1.weight', 'mlp1.1.bias', 'mlp1.3.weight', 'mlp1.3.bias']);
  });

  it('stage2 trains projector and language model', () => {
    const names = trainable(preset('stage2'));
    expect(names.every((n) => n.startsWith('mlp1.') || n.startsWith('language_model.'))).toBe(true);
    expect(names).toContain('language_model.model.embed_tokens.weight');
    expect(names.some((n) => n.startsWith('vision_model.'))).toBe(false);
  });

  it('unfreezes a layer range of the vision tower by alias', () => {
    const names = trainable([...freeze('vision'), ...unfreeze('vision.layers.2-3')]);
    const vision = names.filter((n) => n.startsWith('vision_model.'));
    expect(vision.length).toBeGreaterThan(0);
    expect(vision.every((n) => /^vision_model\.encoder\.layers\.[23]\./.test(n))).toBe(true);
    expect(names.some((n) => n.startsWith('language_model.'))).toBe(true);
  });

  it('supports * and ** globs on full paths', () => {
    const names = trainable([...freeze('**'), ...unfreeze('language_model.model.layers.*.self_attn.q_proj')]);
    expect(names).toEqual([
      'language_model.model.layers.0.self_attn.q_proj.weight',
      'language_model.model.layers.0.self_attn.q_proj.bias',
      'language_model.model.layers.1.self_attn.q_proj.weight',
      'language_model.model.layers.1.self_attn.q_proj.bias',
    ]);
    expect(trainable([...freeze('**'), ...unfreeze('**.ls1')])).toHaveLength(4);
  });

  it('a rule that matches nothing is an error naming it', () => {
    expect(() => compile(model(freeze('vison')))).toThrow(UserError);
    expect(() => compile(model(freeze('vison')))).toThrow("freeze('vison') matches no parameter");
  });

  it('an unknown preset lists the known ones', () => {
    expect(() => preset('stage3')).toThrow(/unknown freeze preset 'stage3'; known presets: stage1, stage2, full, inference/);
  });
});
