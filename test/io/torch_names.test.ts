import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { exportTorchWeights, importTorchWeights, torchWeightSpecs } from '../../src/io/torch_weights.js';
import type { TorchMappable, TorchWeightSpec } from '../../src/io/torch_layout.js';
import { TransformerDecoderBlock } from '../../src/layers/decoder_block.js';
import { RMSNormalization } from '../../src/layers/rms_normalization.js';
import { buildLayer } from '../../src/layers/layer_utils.js';
import { ValueError } from '../../src/utils/errors.js';
import { describeBackends, expectThrows, it } from '../kit/index.js';

/** A layer of a user's own with its own torch names (the `TorchMappable` path). */
class Scale extends tf.layers.Layer implements TorchMappable {
  static className = 'TorchNamesTestScale';
  readonly torchInputWeight = 'w';
  private w: tf.LayerVariable | null = null;
  override build(shape: tf.Shape | tf.Shape[]): void {
    const d = (shape as number[])[(shape as number[]).length - 1];
    this.w = this.addWeight('w', [d], 'float32', tf.initializers.ones());
    this.built = true;
  }
  torchWeightSpecs(): TorchWeightSpec[] {
    return [{ torchName: 'w', torchShape: this.w!.shape as number[], variable: this.w!, layout: 'vector' }];
  }
}

describeBackends('torch name tables (io/torch_names)', () => {
  it("a decoder block maps to Llama's names under its sublayer prefixes, in table order", () => {
    const block = new TransformerDecoderBlock({
      attention: { kind: 'gqa', headDim: 4, numQueryHeads: 2, numKeyValueHeads: 1, useBias: false },
      intermediateDim: 12,
    });
    buildLayer(block, [1, 1, 8]);
    expect(torchWeightSpecs(block).map((s) => `${s.torchName} [${s.torchShape}]`)).to.deep.equal([
      'input_layernorm.weight [8]',
      'self_attn.q_proj.weight [8,8]',
      'self_attn.k_proj.weight [4,8]',
      'self_attn.v_proj.weight [4,8]',
      'self_attn.o_proj.weight [8,8]',
      'post_attention_layernorm.weight [8]',
      'mlp.gate_proj.weight [12,8]',
      'mlp.up_proj.weight [12,8]',
      'mlp.down_proj.weight [8,12]',
    ]);
    block.dispose();
  });

  it("refuses unbuilt layers and layers with no table, and uses a TorchMappable layer's own specs", () => {
    expectThrows(() => torchWeightSpecs(new RMSNormalization()), /layer .* is not built/);
    const dense = tf.layers.dense({ units: 2 });
    buildLayer(dense, [1, 3]);
    const e = expectThrows(() => torchWeightSpecs(dense), /has no torch names/);
    expect(e).to.be.instanceOf(ValueError);
    dense.dispose();
    const own = new Scale({});
    importTorchWeights(own, { w: { shape: [3], data: [1, 2, 3] } }); // built from w's width
    const out = exportTorchWeights(own);
    expect(Array.from(out.w.dataSync())).to.deep.equal([1, 2, 3]);
    tf.dispose(Object.values(out));
    own.dispose();
  });
});
