// browser-tests: node-only: tests the benchmark's matrix (bench/matrix.ts), which only the Node CLI and the GPU entry use
import { expect } from 'chai';
import { BENCH_BACKENDS, buildMatrix, runsInBrowser, tfjsBackendOf } from '../../bench/matrix.js';

describe('benchmark matrix: webgpu', () => {
  it("names webgpu in Node (Dawn) and webgpu-browser in Chromium, both on tfjs's webgpu backend", () => {
    expect(BENCH_BACKENDS).to.include.members(['webgpu', 'webgpu-browser', 'webgl']);
    expect(tfjsBackendOf('webgpu-browser')).to.equal('webgpu');
    expect(tfjsBackendOf('webgpu')).to.equal('webgpu');
    expect(tfjsBackendOf('tensorflow')).to.equal('tensorflow');
    expect(['webgl', 'webgpu-browser'].map(runsInBrowser)).to.deep.equal([true, true]);
    expect(['webgpu', 'tensorflow', 'wasm', 'cpu'].map(runsInBrowser)).to.deep.equal([false, false, false, false]);
  });

  it('the GPU grid holds the baseline cells: matMul [1024]^3 and [4096]^3, each mechanism at D=1024 in prefill, decode and training', () => {
    const names = new Set(
      buildMatrix('webgpu', false)
        .cells.filter((c) => c.skip === undefined)
        .map((c) => c.name),
    );
    for (const n of ['ref/matmul/d1024/m1024/matmul', 'ref/matmul/d4096/m4096/matmul']) expect(names.has(n), n).to.equal(true);
    for (const impl of ['gqa', 'mha', 'gta', 'mla']) {
      for (const t of [1024, 4096]) expect(names.has(`L1/prefill/d1024/b1/t${t}/${impl}`), `prefill T=${t} ${impl}`).to.equal(true);
      expect(names.has(`L1/train/d1024/b4/t512/${impl}`), `train ${impl}`).to.equal(true);
    }
    for (const impl of ['gqa', 'mha', 'gta', 'mla-naive', 'mla-abs']) {
      for (const s of [1024, 4096]) expect(names.has(`L1/decode/d1024/b8/s${s}/${impl}`), `decode S=${s} ${impl}`).to.equal(true);
    }
  });

  it('webgpu-browser (SwiftShader) gets the small browser grid, like webgl', () => {
    const browser = buildMatrix('webgpu-browser', false).cells.map((c) => c.name);
    const webgl = buildMatrix('webgl', false).cells.map((c) => c.name);
    expect(browser).to.deep.equal(webgl);
    expect(buildMatrix('webgpu-browser', true).grid.l2.prefill.d).to.deep.equal([]);
    expect(Math.max(...buildMatrix('webgpu-browser', false).cells.map((c) => c.d))).to.equal(512);
  });
});
