import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CausalLM } from '../../src/models/causal_lm.js';
import { smallPreset } from '../../src/models/config.js';
import { fileSystemHandler, MAX_MODEL_JSON_BYTES, weightSpecBytes } from '../../src/io/file_handler.js';
import '../../src/node.js'; // registers the file:// handler that CausalLM.load uses
import { ValueError } from '../../src/utils/errors.js';
import { it } from '../kit/index.js';

/** Awaits `p`, which must reject with a ValueError whose message matches every pattern. */
async function expectRejects(p: Promise<unknown>, ...patterns: RegExp[]): Promise<Error> {
  let error: Error | null = null;
  await p.then(
    () => undefined,
    (e: Error) => {
      error = e;
    },
  );
  if (error === null) throw new Error(`expected a rejection matching ${patterns.join(', ')}, but it resolved`);
  const e = error as Error;
  expect(e, e.message).to.be.instanceOf(ValueError);
  for (const re of patterns) expect(e.message).to.match(re);
  return e;
}

describe('file handler: loading confined to the model folder', () => {
  let root: string;
  let dir: string;
  let manifest: { weightsManifest: Array<{ paths: string[]; weights: tf.io.WeightsManifestEntry[] }> } & Record<string, unknown>;
  let weightBytes: number;

  /** Rewrites model.json with the weights group's paths replaced. */
  const setPaths = (paths: string[]) => {
    const json = structuredClone(manifest);
    json.weightsManifest[0].paths = paths;
    writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
  };
  const load = () => CausalLM.load(`file://${dir}`);

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'tfjs-gta-fh-'));
    dir = join(root, 'a', 'b', 'model');
    mkdirSync(dir, { recursive: true });
    const lm = CausalLM.create({ ...smallPreset('tiny', 'gqa', 23), seed: 3 });
    await lm.save(fileSystemHandler(dir));
    lm.dispose();
    manifest = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
    weightBytes = readFileSync(join(dir, 'weights.bin')).byteLength;
    copyFileSync(join(dir, 'weights.bin'), join(root, 'outside.bin')); // same size as the real weights
    copyFileSync(join(dir, 'weights.bin'), join(dir, 'original.bin'));
  });

  after(() => rmSync(root, { recursive: true, force: true }));

  beforeEach(() => {
    copyFileSync(join(dir, 'original.bin'), join(dir, 'weights.bin'));
    setPaths(['weights.bin']);
  });

  it('loads a saved model, also through a symlink and a path that stays inside the folder', async () => {
    const lm = await load();
    expect(lm.config.vocabSize).to.equal(23);
    lm.dispose();
    symlinkSync('original.bin', join(dir, 'linked.bin'));
    mkdirSync(join(dir, 'sub'), { recursive: true });
    for (const p of ['linked.bin', 'sub/../weights.bin', './weights.bin']) {
      setPaths([p]);
      (await load()).dispose();
    }
  });

  it('computes the bytes each weight spec needs and rejects malformed specs', () => {
    expect(weightSpecBytes({ name: 'w', shape: [3, 5], dtype: 'float32' })).to.equal(60);
    expect(weightSpecBytes({ name: 'w', shape: [3], dtype: 'float32', quantization: { dtype: 'uint8', scale: 1, min: 0 } })).to.equal(3);
    expect(weightSpecBytes({ name: 'w', shape: [], dtype: 'int32' })).to.equal(4);
    expect(() => weightSpecBytes({ name: 'w', shape: [-1], dtype: 'float32' })).to.throw(ValueError, /non-negative integers/);
    expect(() => weightSpecBytes({ name: 'w', shape: [1.5], dtype: 'float32' })).to.throw(ValueError, /non-negative integers/);
    expect(() => weightSpecBytes({ name: 'w', shape: [1], dtype: 'string' })).to.throw(ValueError, /dtype "string" is not supported/);
    expect(() => weightSpecBytes({ name: 'w', shape: [2 ** 40, 2 ** 20], dtype: 'float32' })).to.throw(ValueError, /too large/);
  });

  it('rejects paths that leave the folder (../../../../dev/zero, ../../etc/passwd) before reading them', async () => {
    const started = performance.now();
    setPaths(['../../../../dev/zero']);
    await expectRejects(load(), /weight path "\.\.\/\.\.\/\.\.\/\.\.\/dev\/zero" leaves the model folder/);
    setPaths(['../../etc/passwd']);
    await expectRejects(load(), /leaves the model folder/);
    setPaths(['../outside.bin']);
    await expectRejects(load(), /leaves the model folder/);
    setPaths(['..']);
    await expectRejects(load(), /leaves the model folder/);
    expect(performance.now() - started).to.be.below(10_000);
  });

  it('rejects absolute paths', async () => {
    setPaths(['/etc/passwd']);
    await expectRejects(load(), /weight path "\/etc\/passwd" is absolute/);
    setPaths([join(dir, 'weights.bin')]);
    await expectRejects(load(), /is absolute/);
    setPaths(['C:\\weights.bin']);
    await expectRejects(load(), /is absolute/);
    setPaths(['']);
    await expectRejects(load(), /non-empty strings/);
  });

  it('rejects symlinks that point outside the folder, even to a file of the right size', async () => {
    symlinkSync(join(root, 'outside.bin'), join(dir, 'escape.bin'));
    setPaths(['escape.bin']);
    await expectRejects(load(), /weight path "escape\.bin" is a link to .*outside\.bin, outside the model folder/);
    symlinkSync('/dev/zero', join(dir, 'zero.bin'));
    setPaths(['zero.bin']);
    await expectRejects(load(), /is a link to \/dev\/zero, outside the model folder/);
  });

  it('rejects a FIFO or a folder named weights.bin without blocking', async () => {
    rmSync(join(dir, 'weights.bin'));
    execFileSync('mkfifo', [join(dir, 'weights.bin')]);
    await expectRejects(load(), /weight file "weights\.bin" is not a regular file/);
    rmSync(join(dir, 'weights.bin'));
    mkdirSync(join(dir, 'weights.bin'));
    await expectRejects(load(), /weight file "weights\.bin" is not a regular file/);
    rmSync(join(dir, 'weights.bin'), { recursive: true });
  });

  it('rejects a model.json that is a FIFO, not JSON, or not an object', async () => {
    const fifoDir = join(root, 'fifo-json');
    mkdirSync(fifoDir);
    execFileSync('mkfifo', [join(fifoDir, 'model.json')]);
    await expectRejects(CausalLM.load(`file://${fifoDir}`), /model\.json is not a regular file/);
    writeFileSync(join(dir, 'model.json'), '{"modelTopology": ');
    await expectRejects(load(), /model\.json is not valid JSON/);
    writeFileSync(join(dir, 'model.json'), '[1, 2]');
    await expectRejects(load(), /model\.json must hold a JSON object/);
    writeFileSync(join(dir, 'model.json'), JSON.stringify({ ...manifest, weightsManifest: { paths: 'weights.bin' } }));
    await expectRejects(load(), /weightsManifest must be an array/);
    await expectRejects(CausalLM.load(`file://${join(root, 'missing')}`), /cannot read .*missing\/model\.json/);
    expect(MAX_MODEL_JSON_BYTES).to.equal(64 * 1024 * 1024);
  });

  it('checks the weight files against the manifest sizes before reading them', async () => {
    truncateSync(join(dir, 'weights.bin'), weightBytes - 4);
    await expectRejects(load(), new RegExp(`hold ${weightBytes - 4} bytes but their \\d+ weight specs need ${weightBytes}`));
    truncateSync(join(dir, 'weights.bin'), weightBytes + 4);
    await expectRejects(load(), new RegExp(`hold ${weightBytes + 4} bytes but their \\d+ weight specs need ${weightBytes}`));
    // The size check covers all the group's files together.
    copyFileSync(join(dir, 'original.bin'), join(dir, 'weights.bin'));
    setPaths(['weights.bin', 'original.bin']);
    await expectRejects(load(), new RegExp(`hold ${2 * weightBytes} bytes but`));
    // A shape that would need far more than the file holds is caught by the sizes, not by a huge read.
    const json = structuredClone(manifest);
    json.weightsManifest[0].weights[0].shape = [2 ** 31];
    writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
    await expectRejects(load(), /weight specs need \d{10,}/);
  });

  it('reads the weights split over several files in the manifest order', async () => {
    const bytes = readFileSync(join(dir, 'original.bin'));
    const cut = 4 * Math.floor(bytes.byteLength / 8);
    writeFileSync(join(dir, 'part1.bin'), bytes.subarray(0, cut));
    writeFileSync(join(dir, 'part2.bin'), bytes.subarray(cut));
    setPaths(['part1.bin', 'part2.bin']);
    const split = await load();
    setPaths(['weights.bin']);
    const whole = await load();
    const a = tf.tidy(() => split.model.getWeights().map((w) => Array.from(w.dataSync())));
    const b = tf.tidy(() => whole.model.getWeights().map((w) => Array.from(w.dataSync())));
    expect(a).to.deep.equal(b);
    split.dispose();
    whole.dispose();
  });
});
