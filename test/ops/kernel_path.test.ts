/**
 * withKernelPath sets the attention and training kernel switches for the duration of a call and restores
 * them whether the call returns, throws, resolves or rejects; a bad path is a ValueError.
 */
import { expect } from 'chai';
import { ATTENTION_DEFAULTS } from '../../src/ops/attention_core.js';
import { TRAINING_KERNELS } from '../../src/ops/capabilities.js';
import { withKernelPath, type KernelPath } from '../../src/ops/kernel_path.js';
import { describeBackends, expectThrows, it } from '../kit/index.js';

const now = () => [ATTENTION_DEFAULTS.implementation, TRAINING_KERNELS.implementation];

describeBackends('withKernelPath', () => {
  it('sets both switches inside the call and restores them after a return or a throw', () => {
    expect(now()).to.deep.equal(['auto', 'auto']);
    expect(withKernelPath('composed', now)).to.deep.equal(['composed', 'composed']);
    expect(now()).to.deep.equal(['auto', 'auto']);
    expectThrows(
      () =>
        withKernelPath('composed', () => {
          throw new Error('inside');
        }),
      /inside/,
    );
    expect(now()).to.deep.equal(['auto', 'auto']);
    // 'fused' means 'auto' (fused where the backend has kernels), also when called from the composed path.
    expect(withKernelPath('composed', () => withKernelPath('fused', now))).to.deep.equal(['auto', 'auto']);
  });

  it('restores the switches only when a returned promise settles', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const running = withKernelPath('composed', async () => {
      await gate;
      return now();
    });
    expect(now()).to.deep.equal(['composed', 'composed']); // still inside the call
    release();
    expect(await running).to.deep.equal(['composed', 'composed']);
    expect(now()).to.deep.equal(['auto', 'auto']);
    let failed: unknown = null;
    await withKernelPath('composed', () => Promise.reject(new Error('rejected'))).catch((e: unknown) => (failed = e));
    expect(String(failed)).to.match(/rejected/);
    expect(now()).to.deep.equal(['auto', 'auto']);
  });

  it('refuses a path other than fused or composed', () => {
    expectThrows(() => withKernelPath('auto' as KernelPath, now), /withKernelPath: path must be 'fused' or 'composed', got "auto"/);
    expect(now()).to.deep.equal(['auto', 'auto']);
  });
});
