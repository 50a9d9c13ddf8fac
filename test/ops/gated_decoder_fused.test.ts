/**
 * GTA's gated value decoder (src/ops/gated_decoder.ts): the fused kernels (src/kernels/webgpu/gated_decoder.ts,
 * src/kernels/webgl/gated_decoder.ts) against the composed ops on webgpu and webgl: values <= 1e-5 and the
 * gradients wrt o, the gate logits and the decoder <= 1e-4 norm-relative, for expansion rates 1 to 4, odd
 * lengths and one-row inputs; the GTA layer's output and weight gradients, and a prefill chunk after a cache;
 * kernels per call under tf.profile. Elsewhere the capability is false and the op is exactly the composed ops.
 */
import * as tf from '@tensorflow/tfjs';
import { fusedGatedDecoder, GATED_DECODER_KERNELS } from '../../src/kernels/webgpu/gated_decoder.js';
import { usesFusedKernel } from '../../src/ops/capabilities.js';
import { composedGatedValueDecoder, gatedValueDecoder } from '../../src/ops/gated_decoder.js';
import { GroupedHeadLatentAttention } from '../../src/layers/gta_attention.js';
import { describeBackends, expectThrows, it, normRelativeError, randomTensor } from '../kit/index.js';
import { checkError, checkLayerValueAndGrads, layerValueAndGrads, withImplementation, withImplementationAsync } from '../kit/fused.js';

const OUTPUT_TOL = 1e-5;
const GRAD_TOL = 1e-4;
const FUSED_BACKENDS = ['webgpu', 'webgl'];

/** [B, Hq, T, Dl, r] */
const CASES: Array<[number, number, number, number, number]> = [
  [1, 1, 1, 2, 1],
  [2, 2, 5, 4, 2],
  [3, 4, 7, 8, 4],
  [2, 4, 33, 16, 2],
  [1, 2, 70, 24, 3],
  [2, 4, 150, 128, 2], // GTA's bench layer's latent (Dl 128, r 2): N = 300 rows, not a multiple of the 32-row tile; dDelta in 2 splits of N
  [1, 4, 4100, 16, 16], // [N, W] = [4100, 1024]: on webgpu the decoder's gradient sums N in 32 splits, the last ones empty
];

function inputs([b, hq, t, dl, r]: [number, number, number, number, number], seed: number) {
  return {
    o: randomTensor([b, hq, t, dl], seed) as tf.Tensor4D,
    gate: randomTensor([b * t, hq * r * dl], seed + 1, 4) as tf.Tensor2D, // into both tails of the sigmoid
    delta: randomTensor([hq, dl, r * dl], seed + 2, 0.5) as tf.Tensor3D,
    dy: randomTensor([b * t, hq * r * dl], seed + 3),
  };
}

/** The output and its gradients wrt o, gate and delta for the output gradient `dy`. */
function valueAndGrads(x: ReturnType<typeof inputs>): tf.Tensor[] {
  return tf.tidy(() => [
    gatedValueDecoder(x.o, x.gate, x.delta),
    ...tf.grads((o: tf.Tensor, g: tf.Tensor, d: tf.Tensor) => gatedValueDecoder(o as tf.Tensor4D, g as tf.Tensor2D, d as tf.Tensor3D))(
      [x.o, x.gate, x.delta],
      x.dy,
    ),
  ]);
}

/** Registered kernel names `fn` runs, less Identity (tfjs's clone of a saved tensor: no dispatch). */
async function kernelNames(backend: string, fn: () => tf.Tensor | tf.Tensor[]): Promise<string[]> {
  const info = await tf.profile(() => tf.tidy(fn) as tf.Tensor);
  tf.dispose(info.result as tf.TensorContainer);
  return info.kernels.map((k) => k.name).filter((n) => n !== 'Identity' && tf.getKernel(n, backend) !== undefined);
}

const GTA = { numHeads: 8, headDim: 8, numQueryHeads: 4, numKeyHeads: 2, numValueHeads: 1, valueDim: 8, seed: 9 };

describeBackends('GTA gated value decoder (ops/gated_decoder): fused kernels against the composed ops', ({ backend }) => {
  if (!FUSED_BACKENDS.includes(backend)) {
    it('has no fused kernels: the op is exactly the composed ops, the fused entry refuses', async () => {
      if (usesFusedKernel(GATED_DECODER_KERNELS.forward)) throw new Error(`fused gated decoder reported on ${backend}`);
      const x = inputs(CASES[2], 1);
      const auto = valueAndGrads(x);
      const composed = tf.tidy(() => [composedGatedValueDecoder(x.o, x.gate, x.delta)]);
      try {
        checkError('auto = composed', normRelativeError(await auto[0].data(), await composed[0].data()), 0);
        tf.tidy(() => {
          expectThrows(
            () => fusedGatedDecoder(x.o, x.gate, x.delta),
            /fused gated decoder: the fused kernels need the webgpu or webgl backend/,
          );
        });
      } finally {
        tf.dispose([...Object.values(x), ...auto, ...composed]);
      }
    });
    return;
  }

  it('reports the capability, off under TRAINING_KERNELS composed', () => {
    if (!usesFusedKernel(GATED_DECODER_KERNELS.forward)) throw new Error(`fused gated decoder not reported on ${backend}`);
    if (withImplementation('composed', () => usesFusedKernel(GATED_DECODER_KERNELS.forward))) throw new Error('reported under composed');
  });

  for (const c of CASES) {
    const [b, hq, t, dl, r] = c;
    it(`fused = composed, forward and gradients: B=${b} Hq=${hq} T=${t} Dl=${dl} r=${r}`, async () => {
      const x = inputs(c, 10 * b + t);
      const fused = valueAndGrads(x);
      const composed = withImplementation('composed', () => valueAndGrads(x));
      try {
        const names = ['output', 'grad o', 'grad gate', 'grad delta'];
        if (fused.length !== 4) throw new Error(`expected 4 results, got ${fused.length}`);
        for (let i = 0; i < 4; i++) {
          if (!tf.util.arraysEqual(fused[i].shape, composed[i].shape))
            throw new Error(`${names[i]}: shape [${fused[i].shape}] vs [${composed[i].shape}]`);
          const err = normRelativeError(await fused[i].data(), await composed[i].data());
          checkError(`${names[i]}`, err, i === 0 ? OUTPUT_TOL : GRAD_TOL);
        }
      } finally {
        tf.dispose([...Object.values(x), ...fused, ...composed]);
      }
    });
  }

  it("reads o from wider rows (the fused attention's packed output, Dl + 1 columns): the same forward and o-reading gradients", async () => {
    const shape: [number, number, number, number, number] = [2, 2, 9, 8, 2];
    const { o, gate, delta, dy } = inputs(shape, 51);
    const [b, hq, t, dl] = shape;
    const dims = { b, hq, t, dl, c: delta.shape[2] } as unknown as tf.NamedAttrMap;
    const run = (name: string, named: tf.NamedTensorMap) => tf.engine().runKernel(name, named, dims) as tf.Tensor;
    const out = tf.tidy(() => {
      const wide = tf.concat([o, randomTensor([b, hq, t, 1], 52)], 3); // [B, Hq, T, Dl + 1]
      return [
        run(GATED_DECODER_KERNELS.forward, { O: wide, G: gate, DELTA: delta }),
        run(GATED_DECODER_KERNELS.forward, { O: o, G: gate, DELTA: delta }),
        run(GATED_DECODER_KERNELS.gradGate, { O: wide, G: gate, DELTA: delta, DY: dy }),
        run(GATED_DECODER_KERNELS.gradGate, { O: o, G: gate, DELTA: delta, DY: dy }),
        run(GATED_DECODER_KERNELS.gradDecoder, { O: wide, G: gate, DY: dy }),
        run(GATED_DECODER_KERNELS.gradDecoder, { O: o, G: gate, DY: dy }),
      ];
    });
    try {
      for (let i = 0; i < out.length; i += 2) {
        checkError(`wide o, kernel ${i / 2}`, normRelativeError(await out[i].data(), await out[i + 1].data()), OUTPUT_TOL);
      }
    } finally {
      tf.dispose([o, gate, delta, dy, ...out]);
    }
  });

  it('is one kernel forward and four more backward (composed: at least 8 forward)', async () => {
    const x = inputs(CASES[3], 5);
    const f = (o: tf.Tensor, g: tf.Tensor, d: tf.Tensor) => gatedValueDecoder(o as tf.Tensor4D, g as tf.Tensor2D, d as tf.Tensor3D);
    try {
      const forward = await kernelNames(backend, () => f(x.o, x.gate, x.delta));
      const both = await kernelNames(backend, () => tf.grads(f)([x.o, x.gate, x.delta], x.dy));
      const composedForward = await withImplementationAsync('composed', () => kernelNames(backend, () => f(x.o, x.gate, x.delta)));
      const composedBoth = await withImplementationAsync('composed', () =>
        kernelNames(backend, () => tf.grads(f)([x.o, x.gate, x.delta], x.dy)),
      );
      console.log(
        `      gated decoder kernels: fused forward ${forward.length}, forward+backward ${both.length}; ` +
          `composed forward ${composedForward.length}, forward+backward ${composedBoth.length}`,
      );
      if (forward.join() !== GATED_DECODER_KERNELS.forward) throw new Error(`forward ran [${forward}]`);
      // Backward: the three gradient kernels (gradInput reads Delta transposed in place).
      const expected = [...Object.values(GATED_DECODER_KERNELS)].sort().join();
      if ([...both].sort().join() !== expected) throw new Error(`forward and backward ran [${both}]`);
      if (composedForward.length < 8) throw new Error(`composed forward ran only [${composedForward}]`);
    } finally {
      tf.dispose(Object.values(x));
    }
  });

  for (const useBias of [false, true]) {
    it(`the GTA layer (useBias ${useBias}): output and weight gradients through the fused decoder = composed`, async () => {
      const layer = new GroupedHeadLatentAttention({ ...GTA, useBias, useCausalMask: true });
      const x = randomTensor([2, 9, 24], 21, 2);
      const w = randomTensor([2, 9, 24], 22);
      const fused = layerValueAndGrads(layer, x, w, { training: true });
      const composed = withImplementation('composed', () => layerValueAndGrads(layer, x, w, { training: true }));
      try {
        await checkLayerValueAndGrads(layer, fused, composed, OUTPUT_TOL, GRAD_TOL);
      } finally {
        tf.dispose([x, w, ...fused, ...composed]);
        layer.dispose();
      }
    });
  }

  it('a 5-token chunk after a 3-token cache: the same output fused and composed', async () => {
    const layer = new GroupedHeadLatentAttention({ ...GTA, useCausalMask: true });
    const x = randomTensor([2, 8, 24], 31, 2);
    const run = () => {
      const first = layer.callWithCache(tf.slice(x, [0, 0, 0], [2, 3, 24]) as tf.Tensor3D);
      const second = layer.callWithCache(tf.slice(x, [0, 3, 0], [2, 5, 24]) as tf.Tensor3D, { cache: first.cache });
      const out = [first.output, second.output];
      first.cache.dispose();
      second.cache.dispose();
      return out;
    };
    const fused = tf.tidy(run);
    const composed = withImplementation('composed', () => tf.tidy(run));
    try {
      for (let i = 0; i < 2; i++)
        checkError(`call ${i + 1}`, normRelativeError(await fused[i].data(), await composed[i].data()), OUTPUT_TOL);
    } finally {
      tf.dispose([x, ...fused, ...composed]);
      layer.dispose();
    }
  });

  it('refuses inputs of the wrong shapes or dtype in the fused entry, naming the rule', () => {
    const x = inputs(CASES[1], 41);
    const ints = tf.zeros([2, 2, 5, 4], 'int32') as tf.Tensor4D;
    const wrongGate = tf.zeros([9, 16]) as tf.Tensor2D;
    const wrongDelta = tf.zeros([2, 4, 6]) as tf.Tensor3D;
    try {
      expectThrows(() => fusedGatedDecoder(ints, x.gate, x.delta), /fused gated decoder: o, gate and delta must be float32/);
      expectThrows(() => fusedGatedDecoder(x.o, wrongGate, x.delta), /gate \[9,16\] must be \[B\*T, Hq\*r\*Dl\] = \[10, 16\]/);
      expectThrows(() => fusedGatedDecoder(x.o, x.gate, wrongDelta), /delta \[2,4,6\] must be \[Hq, Dl, r\*Dl\]/);
    } finally {
      tf.dispose([...Object.values(x), ints, wrongGate, wrongDelta]);
    }
  });
});
