import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { CausalLM } from '../../src/models/causal_lm.js';
import { smallPreset } from '../../src/models/config.js';
import { ValueError } from '../../src/utils/errors.js';
import { describeBackends, it } from '../kit/index.js';

const V = 31;

/** Awaits `p`, which must reject with a ValueError matching `pattern`. */
async function expectRejects(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  let error: unknown = null;
  await p.then(
    () => undefined,
    (e: unknown) => {
      error = e;
    },
  );
  if (error === null) throw new Error(`expected a rejection matching ${pattern}, but it resolved`);
  expect(error, String(error)).to.be.instanceOf(ValueError);
  expect((error as Error).message).to.match(pattern);
}

describeBackends('generate options', () => {
  it('rejects misspelt options and values of the wrong type or range, before any work', async () => {
    const lm = CausalLM.create({ ...smallPreset('tiny', 'gqa', V), seed: 2 });
    const prompt = [1, 2, 3];
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ maxNewTokens: 4, topp: 0.9 }, /generate: unknown argument "topp"\. Known arguments: maxNewTokens, temperature, topK, topP/],
      [{ maxNewTokens: 4, temprature: 1 }, /unknown argument "temprature"/],
      [{ maxNewTokens: 4, temperature: Infinity }, /temperature must be a finite number >= 0 \(0 = greedy\), got Infinity/],
      [{ maxNewTokens: 4, temperature: '1' }, /temperature must be a finite number >= 0 .*got "1"/],
      [{ maxNewTokens: 4, temperature: NaN }, /temperature must be a finite number >= 0 .*got NaN/],
      [{ maxNewTokens: 4, temperature: -0.5 }, /temperature must be a finite number >= 0/],
      [{ maxNewTokens: 4, topP: '0.9' }, /topP must be a number in \(0, 1\], got "0.9"/],
      [{ maxNewTokens: 4, topP: 0 }, /topP must be a number in \(0, 1\]/],
      [{ maxNewTokens: 4, topP: 1.5 }, /topP must be a number in \(0, 1\]/],
      [{ maxNewTokens: 4, topK: 0 }, /topK must be a positive integer, got 0/],
      [{ maxNewTokens: 4, topK: 2.5 }, /topK must be a positive integer, got 2.5/],
      [{ maxNewTokens: 4, seed: 1.5 }, /seed must be an integer, got 1.5/],
      [{ maxNewTokens: 4, seed: '7' }, /seed must be an integer, got "7"/],
      [{ maxNewTokens: 4, stopTokens: 5 }, /stopTokens must be an array of token ids, got 5/],
      [{ maxNewTokens: 4, stopTokens: [V] }, new RegExp(`stop token ${V} is not an integer in \\[0, ${V}\\)`)],
      [{ maxNewTokens: 4, padTokenId: -1 }, /padTokenId must be an integer in \[0, 31\), got -1/],
      [{ maxNewTokens: 4, onToken: 3 }, /onToken must be a function, got 3/],
      [{ maxNewTokens: '4' }, /maxNewTokens must be a positive integer, got "4"/],
      [{ maxNewTokens: 0 }, /maxNewTokens must be a positive integer, got 0/],
    ];
    for (const [options, pattern] of bad) {
      await expectRejects(lm.generate(prompt, options as never), pattern);
    }
    await expectRejects(lm.generate(prompt, null as never), /options must be an object/);
    await expectRejects(lm.generate(7 as never, { maxNewTokens: 1 }), /prompts must be an array/);
    const ok = await lm.generate(prompt, { maxNewTokens: 4, temperature: 0.7, topK: 5, topP: 0.9, seed: 3, stopTokens: [], padTokenId: 0 });
    expect(ok.tokens[0]).to.have.length(4);
    lm.dispose();
  });

  it('rejects padding masks with values other than 0/1, and keeps accepting 0/1 masks', () => {
    const lm = CausalLM.create({ ...smallPreset('tiny', 'gta', V), seed: 5 });
    const ids = [
      [0, 4, 5],
      [6, 7, 8],
    ];
    for (const [value, shown] of [
      [0.5, '0.5'],
      [2, '2'],
      [NaN, 'NaN'],
      [-1, '-1'],
    ] as Array<[number, string]>) {
      const before = tf.memory().numTensors;
      let error: Error | null = null;
      try {
        lm.callWithCache(ids, null, {
          paddingMask: [
            [value, 1, 1],
            [1, 1, 1],
          ],
        });
      } catch (e) {
        error = e as Error;
      }
      expect(error, `mask value ${shown}`).to.be.instanceOf(ValueError);
      expect(error!.message).to.match(new RegExp(`paddingMask values must be 0 or 1 .*got ${shown}`));
      expect(tf.memory().numTensors, 'tensors left by the failed call').to.equal(before);
    }
    const r = lm.callWithCache(ids, null, {
      paddingMask: [
        [0, 1, 1],
        [1, 1, 1],
      ],
    });
    expect(r.logits.shape).to.deep.equal([2, 3, V]);
    r.logits.dispose();
    r.cache.dispose();
    lm.dispose();
  });
});
