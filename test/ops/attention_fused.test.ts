/**
 * The fused attention kernel (src/kernels/webgpu) against the composed path: outputs <= 1e-5 and
 * gradients <= 1e-4 norm-relative on webgpu for every case of attention_fused_cases.ts, the rows'
 * log-sum-exp, kernels per call, and the refusals: on a backend without the kernel the capability is
 * false and implementation 'fused' is a ValueError.
 */
import * as tf from '@tensorflow/tfjs';
import {
  FUSED_ATTENTION_GRAD_KERNEL,
  FUSED_ATTENTION_KERNEL,
  FUSED_ATTENTION_TUNING,
  backwardProgramKind,
  forwardKeySplits,
  forwardProgramKind,
  fusedAttentionForward,
} from '../../src/kernels/webgpu/fused_attention.js';
import { keyValueHalves } from '../../src/kernels/webgpu/flash_attention_backward_rows.js';
import { groupedAttention, type GroupedAttentionOptions } from '../../src/ops/attention_core.js';
import { hasFusedAttention } from '../../src/ops/capabilities.js';
import { parseReferenceFile, runReferenceCaseAsync } from '../../src/conformance/reference_vectors.js';
import { describeBackends, expectThrows, it, normRelativeError, randomTensor } from '../kit/index.js';
import { checkError } from '../kit/fused.js';
import { readFixtureText } from '../kit/fixtures.js';
import { caseInputs, compareFusedCase, FUSED_CASES, referenceLse } from './attention_fused_cases.js';

const references = parseReferenceFile(await readFixtureText('reference_vectors.json'));
const OUTPUT_TOL = 1e-5;
const GRAD_TOL = 1e-4;

describeBackends('fused attention (kernels/webgpu) against the composed path', ({ backend }) => {
  if (backend !== 'webgpu') {
    it("has no fused attention kernel, and implementation 'fused' is refused with the reason", () => {
      if (hasFusedAttention()) throw new Error(`hasFusedAttention() is true on ${backend}`);
      tf.tidy(() => {
        const q = randomTensor([1, 2, 3, 4], 1) as tf.Tensor4D;
        const k = randomTensor([1, 1, 5, 4], 2) as tf.Tensor4D;
        expectThrows(
          () => groupedAttention(q, k, k, { scale: 1, returnProbs: false, implementation: 'fused' }),
          /implementation 'fused' needs a backend with a fused attention kernel/,
          new RegExp(`active backend is ${backend}`),
        );
        // 'auto' falls back to the composed path.
        const auto = groupedAttention(q, k, k, { scale: 1, returnProbs: false }).output;
        const composed = groupedAttention(q, k, k, { scale: 1, returnProbs: false, implementation: 'composed' }).output;
        // webgl's 'auto' takes the fused score kernel (GtaMaskedSoftmax): equal to float32 rounding, not bitwise.
        checkError('auto = composed', normRelativeError(auto.dataSync(), composed.dataSync()), backend === 'webgl' ? 1e-6 : 0);
      });
    });
    it('rejects an unknown implementation', () => {
      tf.tidy(() => {
        const q = randomTensor([1, 1, 2, 4], 1) as tf.Tensor4D;
        expectThrows(
          () => groupedAttention(q, q, q, { scale: 1, implementation: 'flash' as never }),
          /implementation must be one of 'auto', 'composed', 'fused'/,
        );
      });
    });
    return;
  }

  it('reports the capability', () => {
    if (!hasFusedAttention()) throw new Error('hasFusedAttention() is false on webgpu');
  });

  for (const c of FUSED_CASES) {
    it(`fused = composed: ${c.name}`, async () => {
      const e = await compareFusedCase(c);
      checkError(`${c.name}: output`, e.output, OUTPUT_TOL);
      for (const [name, g] of Object.entries(e.grads)) checkError(`${c.name}: grad ${name}`, g, GRAD_TOL);
      if (c.grads && Object.keys(e.grads).length < 3) throw new Error('gradients were not compared');
    });
  }

  /** The kernel's shapes of a case (to ask which program and how many key splits it takes). */
  const flashShapesOf = (c: (typeof FUSED_CASES)[number]) => ({
    b: c.b,
    nQ: c.nQ,
    t: c.t,
    s: c.s,
    nK: c.nK,
    nV: c.nV,
    nE: c.extra?.nE ?? c.nK,
    dk: c.dk,
    de: c.extra?.de ?? 0,
    dv: c.dv,
    biasStrides: null,
    causalOffset: c.causalOffset,
    scale: c.scale,
  });

  // The 'rows:' cases take the row-per-invocation programs (forward and backward); the same cases through
  // the tile programs (flash_attention.ts and flash_attention_backward.ts, forced) keep those checked on long
  // inputs too.
  for (const c of FUSED_CASES.filter((x) => x.name.startsWith('rows:'))) {
    it(`takes the row program, and the tile program, 16-row workgroups, larger tiles and the other key step agree too: ${c.name}`, async () => {
      const shapes = flashShapesOf(c);
      // (with a bias, the gradient is the composed path's: only the forward is fused)
      if (forwardProgramKind(shapes) !== 'rows' || (c.bias === null && backwardProgramKind(shapes) !== 'rows'))
        throw new Error(`expected the row programs for ${c.name}`);
      const halves = keyValueHalves(shapes.dk, shapes.de, shapes.dv).length;
      if (halves !== (c.name.includes('two dispatches') ? 2 : 1)) throw new Error(`dK/dV in ${halves} dispatches for ${c.name}`);
      FUSED_ATTENTION_TUNING.rowProgram = false;
      try {
        if (forwardProgramKind(shapes) !== 'tiles' || backwardProgramKind(shapes) !== 'tiles')
          throw new Error('rowProgram = false did not force the tile programs');
        const e = await compareFusedCase(c);
        checkError(`${c.name} (tile program): output`, e.output, OUTPUT_TOL);
        for (const [name, g] of Object.entries(e.grads)) checkError(`${c.name} (tile program): grad ${name}`, g, GRAD_TOL);
      } finally {
        FUSED_ATTENTION_TUNING.rowProgram = true;
      }
      // Workgroups of 16 rows: fewer invocations than the dK/dV program's staged tile of query rows, whose
      // statistics are then staged over several passes of the workgroup.
      const rows = FUSED_ATTENTION_TUNING.rowsPerWorkgroup;
      FUSED_ATTENTION_TUNING.rowsPerWorkgroup = 16;
      try {
        if (forwardProgramKind(shapes) !== 'rows') throw new Error('rowsPerWorkgroup = 16 did not keep the row programs');
        const e = await compareFusedCase(c);
        checkError(`${c.name} (16 rows per workgroup): output`, e.output, OUTPUT_TOL);
        for (const [name, g] of Object.entries(e.grads)) checkError(`${c.name} (16 rows per workgroup): grad ${name}`, g, GRAD_TOL);
      } finally {
        FUSED_ATTENTION_TUNING.rowsPerWorkgroup = rows;
      }
      // Tiles as large as the device's workgroup memory allows (48 KiB on the H200, where the specs run too):
      // four times the keys (forward, dQ) or rows (dK/dV) per barrier of the default 16 KiB.
      const bytes = FUSED_ATTENTION_TUNING.rowWorkgroupBytes;
      FUSED_ATTENTION_TUNING.rowWorkgroupBytes = 65536;
      try {
        const e = await compareFusedCase(c);
        checkError(`${c.name} (device's workgroup memory): output`, e.output, OUTPUT_TOL);
        for (const [name, g] of Object.entries(e.grads)) checkError(`${c.name} (device's workgroup memory): grad ${name}`, g, GRAD_TOL);
      } finally {
        FUSED_ATTENTION_TUNING.rowWorkgroupBytes = bytes;
      }
      // Four keys per step of the forward's inner loop (the rest of each tile one at a time).
      const batch = FUSED_ATTENTION_TUNING.rowKeyBatch;
      FUSED_ATTENTION_TUNING.rowKeyBatch = batch === 4 ? 1 : 4;
      try {
        const e = await compareFusedCase(c);
        checkError(`${c.name} (rowKeyBatch ${FUSED_ATTENTION_TUNING.rowKeyBatch}): output`, e.output, OUTPUT_TOL);
      } finally {
        FUSED_ATTENTION_TUNING.rowKeyBatch = batch;
      }
    });

    it(`long-range key splits and the other row-block order agree too: ${c.name}`, async () => {
      const shapes = flashShapesOf(c);
      // Long-range splits forced on these short cases: at least 16 keys per split, up to 64 times the workgroups.
      const longTarget = FUSED_ATTENTION_TUNING.longTargetWorkgroups;
      const longMin = FUSED_ATTENTION_TUNING.longMinKeysPerSplit;
      FUSED_ATTENTION_TUNING.longTargetWorkgroups = 64 * FUSED_ATTENTION_TUNING.targetWorkgroups;
      FUSED_ATTENTION_TUNING.longMinKeysPerSplit = 16;
      try {
        if (forwardKeySplits(shapes) < 2) throw new Error(`long-range splits: ${forwardKeySplits(shapes)} split`);
        const e = await compareFusedCase(c);
        checkError(`${c.name} (long-range splits): output`, e.output, OUTPUT_TOL);
        for (const [name, g] of Object.entries(e.grads)) checkError(`${c.name} (long-range splits): grad ${name}`, g, GRAD_TOL);
      } finally {
        FUSED_ATTENTION_TUNING.longTargetWorkgroups = longTarget;
        FUSED_ATTENTION_TUNING.longMinKeysPerSplit = longMin;
      }
      // The forward's row blocks in the other order (last rows first, or first rows first).
      const late = FUSED_ATTENTION_TUNING.lateRowsFirst;
      FUSED_ATTENTION_TUNING.lateRowsFirst = !late;
      try {
        const e = await compareFusedCase(c);
        checkError(`${c.name} (lateRowsFirst ${!late}): output`, e.output, OUTPUT_TOL);
        for (const [name, g] of Object.entries(e.grads)) checkError(`${c.name} (lateRowsFirst ${!late}): grad ${name}`, g, GRAD_TOL);
      } finally {
        FUSED_ATTENTION_TUNING.lateRowsFirst = late;
      }
    });
  }

  for (const c of FUSED_CASES.filter((x) =>
    [
      'decode GQA T=1 S=300 (keys split over workgroups)',
      'MLA-like: extra RoPE pair nE=1 De=8, causal',
      'padding bias [B,1,1,S], GQA, causal',
    ].includes(x.name),
  )) {
    it(`returns each row's log-sum-exp: ${c.name}`, async () => {
      const inp = caseInputs(c);
      const { output, lse } = fusedAttentionForward(inp.q, inp.k, inp.v, {
        scale: c.scale,
        bias: inp.bias,
        causalOffset: c.causalOffset,
        extra: inp.extra,
        withLse: true,
      });
      const ref = referenceLse(c, inp);
      const plain = tf.tidy(
        () =>
          groupedAttention(inp.q, inp.k, inp.v, {
            scale: c.scale,
            bias: inp.bias,
            causalOffset: c.causalOffset,
            extra: inp.extra,
            returnProbs: false,
            implementation: 'composed',
          }).output,
      );
      try {
        checkError(`${c.name}: lse`, normRelativeError(await lse!.data(), await ref.data()), OUTPUT_TOL);
        checkError(`${c.name}: output with lse`, normRelativeError(await output.data(), await plain.data()), OUTPUT_TOL);
      } finally {
        tf.dispose(
          [output, lse!, ref, plain, inp.q, inp.k, inp.v, inp.bias, inp.extra?.query, inp.extra?.key].filter((x): x is tf.Tensor =>
            Boolean(x),
          ),
        );
      }
    });
  }

  it('is one kernel per call (auto), against many composed kernels', async () => {
    const c = FUSED_CASES[6]; // padding bias, GQA, causal
    const inp = caseInputs(c);
    const options = (implementation: GroupedAttentionOptions['implementation']): GroupedAttentionOptions => ({
      scale: c.scale,
      bias: inp.bias,
      causalOffset: c.causalOffset,
      returnProbs: false,
      implementation,
    });
    try {
      // tf.profile returns the same object each time: read the names before the next profile.
      const kernels = async (implementation: GroupedAttentionOptions['implementation']) => {
        const info = await tf.profile(() => tf.tidy(() => groupedAttention(inp.q, inp.k, inp.v, options(implementation)).output));
        tf.dispose(info.result as tf.Tensor);
        // Only registered kernels: customGrad's own scope is recorded too, as '' or 'unnamed scope'.
        return info.kernels.map((k) => k.name).filter((n) => tf.getKernel(n, backend) !== undefined);
      };
      const fused = await kernels('auto');
      const composed = await kernels('composed');
      if (fused.length !== 1 || fused[0] !== FUSED_ATTENTION_KERNEL) throw new Error(`fused call ran [${fused}]`);
      if (composed.length < 5) throw new Error(`composed call ran only [${composed}]`);
    } finally {
      tf.dispose([inp.q, inp.k, inp.v, inp.bias!]);
    }
  });

  it('takes the fused backward without a bias (no matrix product recomputed), the composed gradient with one', async () => {
    // The equality of these gradients with the composed path's is checked by the cases above.
    const kernelsOfGrads = async (c: (typeof FUSED_CASES)[number]) => {
      const inp = caseInputs(c);
      const xs = [inp.q, inp.k, inp.v, ...(inp.extra ? [inp.extra.query, inp.extra.key] : [])];
      const f = (...ys: tf.Tensor[]) =>
        tf.sum(
          groupedAttention(ys[0] as tf.Tensor4D, ys[1] as tf.Tensor4D, ys[2] as tf.Tensor4D, {
            scale: c.scale,
            bias: inp.bias,
            causalOffset: c.causalOffset,
            returnProbs: false,
            extra: inp.extra ? { query: ys[3] as tf.Tensor4D, key: ys[4] as tf.Tensor4D } : null,
          }).output,
        );
      try {
        const info = await tf.profile(() => tf.tidy(() => tf.grads(f)(xs)));
        tf.dispose(info.result as tf.Tensor[]);
        return info.kernels.map((k) => k.name).filter((n) => tf.getKernel(n, backend) !== undefined);
      } finally {
        tf.dispose([...xs, ...(inp.bias ? [inp.bias] : [])]);
      }
    };
    for (const name of ['GQA nQ=8 nK=2, odd lengths T=7 S=13', 'MLA-like: extra RoPE pair nE=1 De=8, causal']) {
      const names = await kernelsOfGrads(FUSED_CASES.find((c) => c.name === name)!);
      if (names.filter((n) => n === FUSED_ATTENTION_GRAD_KERNEL).length !== 1) throw new Error(`${name}: backward ran [${names}]`);
      if (names.includes('BatchMatMul')) throw new Error(`${name}: the backward recomputed matrix products: [${names}]`);
    }
    const withBias = await kernelsOfGrads(FUSED_CASES.find((c) => c.bias === 'padding')!);
    if (withBias.includes(FUSED_ATTENTION_GRAD_KERNEL) || !withBias.includes('BatchMatMul'))
      throw new Error(`with a bias the backward ran [${withBias}]`);
  });

  for (const c of references.cases) {
    it(`reference vectors through the fused kernel: ${c.name} (${c.mechanism})`, async () => {
      const info = await tf.profile(async () => {
        const r = await runReferenceCaseAsync(c, 'causalPadding');
        checkError(`${c.name}: reference output`, r.outputError, OUTPUT_TOL);
        for (const [name, g] of Object.entries(r.gradErrors)) checkError(`${c.name}: reference grad ${name}`, g, GRAD_TOL);
        return null as unknown as tf.Tensor;
      });
      const names = info.kernels.map((k) => k.name);
      if (!names.includes(FUSED_ATTENTION_KERNEL)) throw new Error(`the case did not run the fused kernel: [${[...new Set(names)]}]`);
    });
  }

  it("refuses 'fused' with probabilities or dropout, and uses the composed path for them under 'auto'", () => {
    tf.tidy(() => {
      const q = randomTensor([1, 2, 3, 8], 1) as tf.Tensor4D;
      const k = randomTensor([1, 1, 5, 8], 2) as tf.Tensor4D;
      expectThrows(() => groupedAttention(q, k, k, { scale: 1, implementation: 'fused' }), /cannot return the probabilities/);
      expectThrows(
        () => groupedAttention(q, k, k, { scale: 1, returnProbs: false, dropoutRate: 0.1, implementation: 'fused' }),
        /does not apply dropout/,
      );
      const { probs } = groupedAttention(q, k, k, { scale: 1 });
      if (probs === null) throw new Error('auto with returnProbs gave no probabilities');
    });
  });
});
