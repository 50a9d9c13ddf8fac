import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { describeBackends, it } from '../kit/index.js';
import { readFixtureText } from '../kit/fixtures.js';
import { parseReferenceFile, runReferenceCase, runReferenceCaseAsync } from '../../src/conformance/reference_vectors.js';

const file = parseReferenceFile(await readFixtureText('reference_vectors.json'));

describeBackends('reference vectors, asynchronous runner', () => {
  for (const c of file.cases.filter((x) => x.name.endsWith('_a'))) {
    it(`${c.name} (${c.mechanism}): runReferenceCaseAsync gives exactly runReferenceCase's errors and frees everything`, async () => {
      const before = tf.memory().numTensors;
      const r = await runReferenceCaseAsync(c, 'causalPadding');
      expect(tf.memory().numTensors, 'tensors left by the case').to.equal(before);
      expect(r).to.deep.equal(runReferenceCase(c, 'causalPadding'));
      expect(Object.keys(r.gradErrors)).to.have.members(Object.keys(c.grads));
      expect(r.outputError).to.be.a('number').and.be.at.least(0);
    });
  }
});
