/** The kit's leak check must see a forgotten tensor (it once ran tests in a scope that reclaimed them). */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { it, leakChecked } from './leak_check.js';

/** Runs a wrapped body and returns the error it rejected with, or null when it resolved. */
async function rejection(run: () => Promise<void>): Promise<Error | null> {
  try {
    await run();
    return null;
  } catch (e) {
    return e as Error;
  }
}

describe('leak check (test kit)', () => {
  it('fails a test body that forgets a tensor, naming the count', async () => {
    let forgotten: tf.Tensor[] = [];
    const error = await rejection(
      leakChecked(() => {
        forgotten = [tf.ones([2]), tf.zeros([3])];
      }),
    );
    tf.dispose(forgotten);
    expect(error?.message).to.match(/leak check: 2 tensor\(s\) outlived the test/);
  });

  it('fails an async test body that forgets a tensor after an await', async () => {
    let forgotten: tf.Tensor | null = null;
    const error = await rejection(
      leakChecked(async () => {
        await new Promise((resolve) => setTimeout(resolve, 1));
        forgotten = tf.zeros([3]);
      }),
    );
    forgotten!.dispose();
    expect(error?.message).to.match(/leak check: 1 tensor\(s\) outlived the test/);
  });

  it('fails a body that disposes a variable but not the tensor it was made from (the AdamW moments bug)', async () => {
    const x = tf.ones([2, 3]);
    let source: tf.Tensor | null = null;
    const error = await rejection(
      leakChecked(() => {
        source = tf.zerosLike(x);
        tf.variable(source, false).dispose();
      }),
    );
    tf.dispose([source!, x]);
    expect(error?.message).to.match(/leak check: 1 tensor\(s\) outlived the test/);
  });

  it('fails a body that leaves an engine scope open', async () => {
    const error = await rejection(
      leakChecked(() => {
        tf.engine().startScope();
      }),
    );
    tf.engine().endScope();
    expect(error?.message).to.match(/left 1 engine scope\(s\) open/);
  });

  it('passes a clean body: disposed, tidied and returned-then-disposed tensors', async () => {
    const error = await rejection(
      leakChecked(async () => {
        const a = tf.ones([4]);
        const b = tf.tidy(() => tf.mul(a, tf.scalar(3)));
        expect(Array.from(await b.data())).to.deep.equal([3, 3, 3, 3]);
        tf.dispose([a, b]);
      }),
    );
    expect(error).to.equal(null);
  });

  it('reclaims the variables a body creates (layers it does not dispose) and passes', async () => {
    const error = await rejection(
      leakChecked(() => {
        tf.tidy(() => {
          tf.variable(tf.zeros([2, 2]));
        });
        const dense = tf.layers.dense({ units: 2 });
        tf.tidy(() => {
          dense.apply(tf.ones([1, 3]));
        });
      }),
    );
    expect(error).to.equal(null);
  });

  it('passes the error of a failing body through unchanged', async () => {
    const error = await rejection(
      leakChecked(() => {
        throw new Error('the assertion failed');
      }),
    );
    expect(error?.message).to.equal('the assertion failed');
  });
});
