// A graph with a deliberate shape error: a custom projector whose first Linear expects the wrong width.
import { internvl, internViT, qwen2, Module, nn, type Tensor } from 'vlmc';

class WrongProjector extends Module {
  readonly proj = new nn.Linear(64, 48); // line 5: the ViT gives 128 after pixel shuffle, not 64
  forward(x: Tensor): Tensor {
    return this.proj.call(x);
  }
}

export default internvl({
  vision: internViT({ hidden: 32, heads: 4, layers: 1, intermediate: 64, imageSize: 56, patchSize: 14, norm: 'layer_norm', qkvBias: true, qkNorm: false, eps: 1e-6 }),
  llm: qwen2({ hidden: 48, heads: 4, kvHeads: 2, layers: 1, intermediate: 96, vocab: 160, rmsNormEps: 1e-6, ropeTheta: 1e6, maxPositions: 2048, tieEmbeddings: true }),
  imgContextTokenId: 153,
  projector: new WrongProjector(),
});
