import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { it } from './kit/index.js';
import { IS_NODE, backendLoadError, defaultBackendOrder, setBackendStrict, useBestBackend } from '../src/backend.js';
import { ValueError } from '../src/utils/errors.js';

/** Runs `fn` and puts the backend that was active before it back. */
async function keepingBackend(fn: () => Promise<void>): Promise<void> {
  const before = tf.getBackend();
  try {
    await fn();
  } finally {
    await tf.setBackend(before);
  }
}

describe('backend selection', () => {
  it('prefers tensorflow, webgpu, wasm, cpu in Node and webgl, webgpu, wasm, cpu in a browser', () => {
    expect(defaultBackendOrder()).to.deep.equal(IS_NODE ? ['tensorflow', 'webgpu', 'wasm', 'cpu'] : ['webgl', 'webgpu', 'wasm', 'cpu']);
  });

  it('setBackendStrict("webgpu") activates webgpu, or fails with a ValueError naming the reason and leaves the backend', async () => {
    await keepingBackend(async () => {
      const before = tf.getBackend();
      let error: unknown = null;
      try {
        await setBackendStrict('webgpu');
      } catch (e) {
        error = e;
      }
      if (error === null) {
        expect(tf.getBackend()).to.equal('webgpu');
        const sum = tf.tidy(() => tf.add(tf.tensor1d([1, 2]), tf.tensor1d([3, 4])));
        expect(Array.from(await sum.data())).to.deep.equal([4, 6]);
        sum.dispose();
      } else {
        expect(error).to.be.instanceOf(ValueError);
        expect((error as Error).message).to.match(/^backend "webgpu" is not available: .{10,}\.$/);
        expect((error as Error).message.split('\n')).to.have.length(1);
        expect(backendLoadError('webgpu')).to.be.a('string').and.not.equal('');
        expect(tf.getBackend()).to.equal(before);
      }
    });
  });

  it('useBestBackend skips an unavailable backend with its reason and takes the next one', async () => {
    await keepingBackend(async () => {
      const choice = await useBestBackend(['no-such-backend', 'cpu']);
      expect(choice.backend).to.equal('cpu');
      expect(tf.getBackend()).to.equal('cpu');
      expect(choice.skipped).to.deep.equal([
        { backend: 'no-such-backend', reason: 'backend "no-such-backend" is not available: unknown backend.' },
      ]);
    });
  });

  it('useBestBackend with webgpu first either runs on webgpu or reports why it did not', async () => {
    await keepingBackend(async () => {
      const choice = await useBestBackend(['webgpu', 'cpu']);
      if (choice.backend === 'webgpu') expect(choice.skipped).to.deep.equal([]);
      else {
        expect(choice.backend).to.equal('cpu');
        expect(choice.skipped.map((s) => s.backend)).to.deep.equal(['webgpu']);
        expect(choice.skipped[0].reason).to.include(backendLoadError('webgpu'));
      }
    });
  });

  it('an error of useBestBackend lists every backend tried', async () => {
    let error: Error | null = null;
    try {
      await useBestBackend(['no-such-a', 'no-such-b']);
    } catch (e) {
      error = e as Error;
    }
    expect(error).to.be.instanceOf(ValueError);
    expect(error!.message).to.equal(
      'no backend could be started: no-such-a: backend "no-such-a" is not available: unknown backend.; ' +
        'no-such-b: backend "no-such-b" is not available: unknown backend.',
    );
  });
});
