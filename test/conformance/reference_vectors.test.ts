import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { describeBackends, it, recordError } from '../kit/index.js';
import { readFixtureText } from '../kit/fixtures.js';
import { parseReferenceFile, runReferenceCase } from '../../src/conformance/reference_vectors.js';

const file = parseReferenceFile(await readFixtureText('reference_vectors.json'));

describe('reference vector file', () => {
  it('holds GTA, GQA and MLA cases', () => {
    const kinds = new Set(file.cases.map((c) => c.mechanism));
    expect([...kinds].sort()).to.deep.equal(['gqa', 'gta', 'mla']);
  });
});

describeBackends('reference vectors', ({ tol }) => {
  for (const c of file.cases) {
    for (const mode of ['attentionMask', 'causalPadding'] as const) {
      it(`${c.name} (${c.mechanism}) matches the reference with ${mode}`, () => {
        const before = tf.memory().numTensors;
        const r = runReferenceCase(c, mode);
        expect(tf.memory().numTensors, 'tensors left by the case').to.equal(before);
        recordError(`${c.name} output`, r.outputError, tol.output);
        recordError(`${c.name} gradients (max)`, Math.max(...Object.values(r.gradErrors)), tol.grad);
        expect(r.outputError, 'output error').to.be.at.most(tol.output);
        expect(Object.keys(r.gradErrors)).to.have.members(Object.keys(c.grads));
        for (const [name, err] of Object.entries(r.gradErrors)) {
          expect(err, `gradient ${name}`).to.be.at.most(tol.grad);
        }
      });
    }
  }
});
