import { expect } from 'chai';
import { flatShape } from '../../src/io/weight_layout.js';

describe('weight layout of older saved models (io/weight_layout)', () => {
  it('flattens the 3-D per-head kernels and 2-D per-head biases, and nothing else', () => {
    expect(flatShape('block_0/attention/query/kernel', [64, 4, 16])).to.deep.equal([64, 64]);
    expect(flatShape('block_0/attention/key_value_b/kernel', [32, 4, 24])).to.deep.equal([32, 96]);
    expect(flatShape('block_0/attention/query_b/kernel', [24, 4, 24])).to.deep.equal([24, 96]);
    expect(flatShape('block_0/attention/attention_output/kernel', [4, 16, 64])).to.deep.equal([64, 64]);
    expect(flatShape('block_0/attention/value/bias', [1, 32])).to.deep.equal([32]);
    expect(flatShape('block_0/attention/value_decoder/kernel', [2, 32, 64]), 'GTA decoder stays 3-D').to.equal(null);
    expect(flatShape('block_0/attention/query/kernel', [64, 64]), 'already flat').to.equal(null);
    expect(flatShape('block_0/attention/gate/kernel', [64, 64])).to.equal(null);
    expect(flatShape('block_0/attention/attention_output/bias', [64])).to.equal(null);
  });
});
