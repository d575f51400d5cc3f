/** InternVL's freeze flags with their intended meaning, CLI rules, and errors that name the rule. */
import { describe, it, expect } from 'vitest';
import * as path from 'node:path';
import { compile, freeze, internvl, internViT, qwen2, internlm2, preset, freezeBackbone, freezeLlm, freezeMlp, unfreezeVitLayers, unfreezeLmHead, matchesGlob } from '../src/index.ts';
import type { FreezeRule, CausalLM } from '../src/index.ts';
import { readFileSync } from 'node:fs';
import { FIXTURES, ROOT, removeDir, tempDir, vlmcInProcess } from './helpers.ts';

const vision = () => internViT({ hidden: 32, heads: 4, layers: 4, intermediate: 64, imageSize: 56, patchSize: 14, norm: 'layer_norm', qkvBias: true, qkNorm: false, eps: 1e-6 });
const tied = () => qwen2({ hidden: 48, heads: 4, kvHeads: 2, layers: 2, intermediate: 96, vocab: 160, rmsNormEps: 1e-6, ropeTheta: 1e6, maxPositions: 2048, tieEmbeddings: true });
const untied = () => internlm2({ hidden: 48, heads: 4, kvHeads: 2, layers: 2, intermediate: 96, vocab: 160, rmsNormEps: 1e-6, ropeTheta: 1e6, maxPositions: 2048, tieEmbeddings: false });

function trainable(train: FreezeRule[], llm: CausalLM = tied()): string[] {
  return compile(internvl({ vision: vision(), llm, imgContextTokenId: 153, train }))
    .params.filter((p) => p.trainable)
    .map((p) => p.name);
}
const prefixes = (names: string[]) => [...new Set(names.map((n) => n.split('.')[0]))].sort();
const vitLayers = (names: string[]) => [...new Set(names.flatMap((n) => /^vision_model\.encoder\.layers\.(\d+)\./.exec(n)?.[1] ?? []))].map(Number).sort();

describe('freeze vocabulary', () => {
  it('freezeBackbone / freezeLlm / freezeMlp freeze the ViT, the LLM, the projector', () => {
    expect(prefixes(trainable(freezeBackbone()))).toEqual(['language_model', 'mlp1']);
    expect(prefixes(trainable(freezeLlm()))).toEqual(['mlp1', 'vision_model']);
    expect(prefixes(trainable(freezeMlp()))).toEqual(['language_model', 'vision_model']);
    expect(prefixes(trainable([...freezeBackbone(), ...freezeLlm()]))).toEqual(['mlp1']);
  });

  it('unfreezeVitLayers(N) unfreezes layers[N:], negative N the last |N|', () => {
    expect(vitLayers(trainable([...freezeBackbone(), ...unfreezeVitLayers(2)]))).toEqual([2, 3]);
    expect(vitLayers(trainable([...freezeBackbone(), ...unfreezeVitLayers(-1)]))).toEqual([3]);
    expect(vitLayers(trainable([...freezeBackbone(), ...unfreezeVitLayers(-4)]))).toEqual([0, 1, 2, 3]);
    // The ViT's embeddings stay frozen: only layers are named.
    expect(trainable([...freezeBackbone(), ...unfreezeVitLayers(0)]).some((n) => n.startsWith('vision_model.embeddings'))).toBe(false);
  });

  it('unfreezeVitLayers out of range names the valid range', () => {
    expect(() => trainable([...freezeBackbone(), ...unfreezeVitLayers(4)])).toThrow(/index 4 is out of range; there are 4 layers, valid: -4\.\.3/);
    expect(() => trainable([...freezeBackbone(), ...unfreezeVitLayers(-5)])).toThrow(/valid: -4\.\.3/);
  });

  it('unfreezeLmHead really unfreezes the head: lm_head, InternLM2 output, or the tied embedding', () => {
    expect(trainable([...freeze('**'), ...unfreezeLmHead()], untied())).toEqual(['language_model.output.weight']);
    expect(trainable([...freeze('**'), ...unfreezeLmHead()], tied())).toEqual(['language_model.model.embed_tokens.weight']);
  });

  it('presets: stage1 projector, stage2 projector + LLM, full everything', () => {
    expect(prefixes(trainable(preset('stage1')))).toEqual(['mlp1']);
    expect(prefixes(trainable(preset('stage2')))).toEqual(['language_model', 'mlp1']);
    expect(prefixes(trainable(preset('full')))).toEqual(['language_model', 'mlp1', 'vision_model']);
  });

  it('matchesGlob: *, **, ranges, a module and everything under it', () => {
    expect(matchesGlob('vision_model', 'vision_model.encoder.layers.0.attn.qkv.weight')).toBe(true);
    expect(matchesGlob('**.qkv', 'vision_model.encoder.layers.0.attn.qkv.weight')).toBe(true);
    expect(matchesGlob('*.encoder.layers.1-2', 'vision_model.encoder.layers.3.ls1')).toBe(false);
    expect(matchesGlob('*.encoder.layers.1-2', 'vision_model.encoder.layers.2.ls1')).toBe(true);
    expect(matchesGlob('mlp1.1', 'mlp1.10.weight')).toBe(false);
  });

  it('a graph-file rule that matches nothing names the graph file line', async () => {
    const work = tempDir();
    try {
      const r = await vlmcInProcess(['build', path.join(ROOT, 'test/graphs/bad-freeze.ts'), '--out', path.join(work, 'a')]);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/test\/graphs\/bad-freeze\.ts:8:\d+: freeze\('vison'\) matches no parameter/);
    } finally {
      removeDir(work);
    }
  });

  it('CLI rules apply after the graph\'s own, and a CLI rule matching nothing names the flag', async () => {
    const work = tempDir();
    try {
      const weights = path.join(FIXTURES, 'qwen2-tiny/unified');
      const bad = await vlmcInProcess(['build', '--weights', weights, '--out', path.join(work, 'a'), '--preset', 'stage1', '--unfreeze', 'llm.layers.7']);
      expect(bad.status).toBe(2);
      expect(bad.stderr).toBe("vlmc: --unfreeze 'llm.layers.7': unfreeze('llm.layers.7') matches no parameter\n");
      const ok = await vlmcInProcess(['build', '--weights', weights, '--out', path.join(work, 'b'), '--preset', 'stage1', '--unfreeze', 'llm.head', '--freeze', 'projector.0', '--quiet']);
      expect(ok.stderr).toBe('');
      const manifest = JSON.parse(readFileSync(path.join(work, 'b/manifest.json'), 'utf8'));
      const names = manifest.parameters.filter((p: { trainable: boolean }) => p.trainable).map((p: { key: string }) => p.key);
      // In command-line order after the preset: the tied head unfrozen, mlp1.0 frozen.
      expect(names).toEqual(['mlp1.1.weight', 'mlp1.1.bias', 'mlp1.3.weight', 'mlp1.3.bias', 'language_model.model.embed_tokens.weight']);
      const later = await vlmcInProcess(['build', '--weights', weights, '--out', path.join(work, 'c'), '--preset', 'stage1', '--freeze', 'llm', '--unfreeze', 'llm.layers.1.mlp', '--quiet']);
      expect(later.status).toBe(0);
      const m2 = JSON.parse(readFileSync(path.join(work, 'c/manifest.json'), 'utf8'));
      const n2 = m2.parameters.filter((p: { trainable: boolean }) => p.trainable).map((p: { key: string }) => p.key);
      expect(n2.filter((k: string) => k.startsWith('language_model.'))).toEqual(['language_model.model.layers.1.mlp.gate_proj.weight', 'language_model.model.layers.1.mlp.up_proj.weight', 'language_model.model.layers.1.mlp.down_proj.weight']);
    } finally {
      removeDir(work);
    }
  });
});
