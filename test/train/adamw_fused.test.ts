/**
 * AdamW's fused update against the composed one, on webgpu (src/kernels/webgpu/adamw.ts: one kernel per
 * group of up to five variables for the moments, packed, and one per variable for the weight) and on webgl
 * (src/kernels/webgl/adamw.ts: three kernels per variable, separate moments): 5 steps on 7 variables of odd
 * shapes (rank 1, 2 and 3; two groups on webgpu), with and without weight decay, with a
 * clip scale < 1 (a number or a scalar tensor), give weights and moments <= 1e-5 norm-relative; the
 * state's round trip through getState/setState across both paths; kernels per update under tf.profile;
 * on webgl, no new shader program after the first step (lr and the bias corrections are uniforms). On
 * every backend: the clip scale inside `apply` equals scaling the gradients first (the trainer's former
 * path), and bad arguments are a ValueError.
 */
import * as tf from '@tensorflow/tfjs';
import { WEBGL_ADAMW_KERNELS } from '../../src/kernels/webgl/adamw.js';
import { ADAMW_KERNELS, MOMENTS_GROUP_MAX_ELEMENTS, MOMENTS_GROUP_SIZE, momentGroups } from '../../src/kernels/webgpu/adamw.js';
import { CausalLM } from '../../src/models/causal_lm.js';
import { smallPreset } from '../../src/models/config.js';
import { hasFusedTrainingKernels, TRAINING_KERNELS, usesFusedTrainingKernels } from '../../src/ops/capabilities.js';
import { AdamW, clipScale, clipToNorm, globalNormSquared, type AdamWState } from '../../src/train/adamw.js';
import { describeBackends, expectThrows, it, normRelativeError, randomTensor } from '../kit/index.js';
import { checkError } from '../kit/fused.js';

const TOL = 1e-5;
const SHAPES = [[37], [5, 13], [129, 3], [3, 5, 7], [11], [2, 2], [64, 9]];

function makeVariables(seed: number): tf.Variable[] {
  return SHAPES.map((s, i) => tf.tidy(() => tf.variable(randomTensor(s, seed + i), true)));
}

/** Gradients of step `step` (seeded), in variable order. */
function gradsAt(step: number): tf.Tensor[] {
  return SHAPES.map((s, i) => randomTensor(s, 100 * step + i, 0.5));
}

/** Runs `fn` on the composed path (the reference), restoring the switch afterwards. */
function composed<T>(fn: () => T): T {
  const before = TRAINING_KERNELS.implementation;
  TRAINING_KERNELS.implementation = 'composed';
  try {
    return fn();
  } finally {
    TRAINING_KERNELS.implementation = before;
  }
}

/** `steps` updates with learning rate 1e-2 and gradient scale `scale` (a number, or made as a tensor by `clipScale`). */
function run(opt: AdamW, steps: number, scale: number | 'tensor', first = 1): void {
  for (let step = first; step < first + steps; step++) {
    const grads = gradsAt(step);
    const s = scale === 'tensor' ? clipScale(grads, 1) : scale;
    opt.apply(grads, 1e-2, s);
    tf.dispose([...grads, ...(typeof s === 'number' ? [] : [s])]);
  }
}

async function compareState(what: string, a: AdamWState, b: AdamWState, tol: number): Promise<void> {
  if (a.step !== b.step) throw new Error(`${what}: steps ${a.step} and ${b.step}`);
  a.m.forEach((m, i) => checkError(`${what}: m${i}`, normRelativeError(m, b.m[i]), tol));
  a.v.forEach((v, i) => checkError(`${what}: v${i}`, normRelativeError(v, b.v[i]), tol));
}

async function compareWeights(what: string, a: tf.Variable[], b: tf.Variable[], tol: number): Promise<void> {
  for (let i = 0; i < a.length; i++) checkError(`${what}: w${i}`, normRelativeError(await a[i].data(), await b[i].data()), tol);
}

/**
 * The fused kernels of `backend`: how many one update of variables of `sizes` elements runs, in words, and the
 * one that writes the weight; null where none.
 */
function fusedKernelsOf(backend: string): { count(sizes: number[]): number; rule: string; weight: string } | null {
  if (backend === 'webgpu') {
    return {
      count: (sizes) => sizes.length + momentGroups(sizes).length,
      rule: 'one kernel per variable and one per group of up to five',
      weight: ADAMW_KERNELS.weight,
    };
  }
  if (backend === 'webgl')
    return { count: (sizes) => 3 * sizes.length, rule: 'three kernels per variable', weight: WEBGL_ADAMW_KERNELS.weight };
  return null;
}

/** The number of shader programs tfjs's webgl backend has compiled so far (its binary cache). */
function compiledPrograms(): number {
  return Object.keys((tf.backend() as unknown as { binaryCache: Record<string, unknown> }).binaryCache).length;
}

describeBackends('AdamW: fused update (kernels/webgpu, kernels/webgl) against the composed one', ({ backend }) => {
  const fusedKernels = fusedKernelsOf(backend);

  it('applies gradScale inside the update exactly as scaling the gradients first', async () => {
    const [a, b] = [makeVariables(1), makeVariables(1)];
    const [oa, ob] = [new AdamW(a), new AdamW(b)];
    try {
      for (let step = 1; step <= 3; step++) {
        const grads = gradsAt(step);
        const squared = globalNormSquared(grads);
        const norm = Math.sqrt((await squared.data())[0]);
        squared.dispose();
        const scaled = clipToNorm(grads, norm, 1);
        oa.apply(grads, 1e-2, 1 / (norm + 1e-6));
        ob.apply(scaled, 1e-2);
        tf.dispose([...grads, ...scaled]);
      }
      // The composed path multiplies as clipToNorm did; the fused kernel multiplies in its shader (same f32 product).
      await compareWeights('scale inside = scaled first', a, b, fusedKernels !== null ? 1e-6 : 0);
    } finally {
      oa.dispose();
      ob.dispose();
      tf.dispose([...a, ...b]);
    }
  });

  it('refuses bad arguments with a ValueError naming the rule', () => {
    const w = makeVariables(2);
    const opt = new AdamW(w);
    const grads = gradsAt(1);
    const transposed = tf.transpose(grads[1]);
    try {
      expectThrows(() => opt.apply(grads, 1e-2, Number.NaN), /gradScale must be a finite number >= 0/);
      expectThrows(() => opt.apply(grads, Number.POSITIVE_INFINITY), /lr must be a finite number/);
      expectThrows(() => opt.apply([grads[1], grads[0], ...grads.slice(2)], 1e-2), /gradient 0 has shape \[5,13\].*must match/);
      expectThrows(() => opt.apply(grads.slice(1), 1e-2), /got 6 gradients for 7 variables/);
      // Same size and rank, other shape: refused too (the fused kernels would read it element by element).
      expectThrows(() => opt.apply([grads[0], transposed, ...grads.slice(2)], 1e-2), /gradient 1 has shape \[13,5\].*must match/);
      if (opt.iterations !== 0) throw new Error(`a refused update counted as step ${opt.iterations}`);
    } finally {
      opt.dispose();
      tf.dispose([...w, ...grads, transposed]);
    }
  });

  it('groups variables for the webgpu moments kernel: consecutive, at most 5, a large state alone', () => {
    const within = (sizes: number[], expected: number[][]) => {
      const got = momentGroups(sizes);
      if (JSON.stringify(got) !== JSON.stringify(expected)) throw new Error(`momentGroups([${sizes}]) gave ${JSON.stringify(got)}`);
    };
    if (MOMENTS_GROUP_SIZE !== 5) throw new Error(`MOMENTS_GROUP_SIZE is ${MOMENTS_GROUP_SIZE}: 8 storage buffers hold 5 gradients`);
    within([], []);
    within([3], [[0]]);
    within(
      [1, 2, 3, 4, 5, 6, 7],
      [
        [0, 1, 2, 3, 4],
        [5, 6],
      ],
    );
    const half = MOMENTS_GROUP_MAX_ELEMENTS / 2; // one variable of `half` elements fills a group's state
    within([half, 1], [[0], [1]]);
    within([1, half - 1, 1], [[0, 1], [2]]); // exactly full, then a new group
    within([1, half], [[0], [1]]);
    within([4, 2 * half, 4], [[0], [1], [2]]); // larger than a group: alone
    within([half / 2, half / 2, 1], [[0, 1], [2]]);
  });

  if (fusedKernels === null) {
    it('has no fused training kernels: the update is the composed one', async () => {
      if (hasFusedTrainingKernels() || usesFusedTrainingKernels()) throw new Error(`the capability is true on ${backend}`);
      const grads = gradsAt(1);
      const w = makeVariables(3);
      const opt = new AdamW(w);
      try {
        const info = await tf.profile(() => {
          opt.apply(grads, 1e-2, 0.5);
          return null as unknown as tf.Tensor;
        });
        const names = info.kernels.map((k) => k.name);
        if (names.some((n) => n.startsWith('GtaAdamW'))) throw new Error(`ran a fused kernel: [${names}]`);
      } finally {
        opt.dispose();
        tf.dispose([...w, ...grads]);
      }
    });
    return;
  }

  for (const weightDecay of [0.1, 0]) {
    for (const scale of [1, 0.6, 'tensor'] as const) {
      it(`5 steps: fused = composed (weightDecay ${weightDecay}, gradient scale ${scale})`, async () => {
        const [fw, cw] = [makeVariables(7), makeVariables(7)];
        const fused = new AdamW(fw, { weightDecay });
        const reference = composed(() => new AdamW(cw, { weightDecay }));
        try {
          const info = await tf.profile(() => {
            run(fused, 1, scale);
            return null as unknown as tf.Tensor;
          });
          if (!info.kernels.some((k) => k.name === fusedKernels.weight)) throw new Error('the fused kernels did not run');
          run(fused, 4, scale, 2);
          composed(() => run(reference, 5, scale));
          await compareWeights('weights', fw, cw, TOL);
          await compareState('state', await fused.getStateAsync(), await reference.getStateAsync(), TOL);
        } finally {
          fused.dispose();
          reference.dispose();
          tf.dispose([...fw, ...cw]);
        }
      });
    }
  }

  it('round-trips the state through getState/setState, across the fused and composed layouts', async () => {
    const [a, b, c] = [makeVariables(9), makeVariables(9), makeVariables(9)];
    const fused = new AdamW(a);
    const fresh = new AdamW(b);
    const reference = composed(() => new AdamW(c));
    try {
      run(fused, 3, 0.8);
      composed(() => run(reference, 3, 0.8));
      const saved = await fused.getStateAsync();
      const savedSync = fused.getState();
      await compareState('getState = getStateAsync', savedSync, saved, 0);
      fresh.setState(saved);
      await compareState('fused round trip', await fresh.getStateAsync(), saved, 0);
      // The fused state loads into a composed optimizer and the other way round; then both continue alike.
      composed(() => reference.setState(saved));
      await compareState('into the composed layout', await reference.getStateAsync(), saved, 0);
      for (let i = 0; i < SHAPES.length; i++) b[i].assign(a[i]);
      for (let i = 0; i < SHAPES.length; i++) c[i].assign(a[i]);
      run(fresh, 2, 0.8, 4);
      composed(() => run(reference, 2, 0.8, 4));
      await compareWeights('continued after setState', b, c, TOL);
      await compareState('continued after setState', await fresh.getStateAsync(), await reference.getStateAsync(), TOL);
      // Switching paths moves an optimizer's state between layouts: the composed one takes a fused step
      // (its moments are packed), the fused one a composed step (unpacked); both stay equal.
      run(reference, 1, 0.8, 6);
      run(fresh, 1, 0.8, 6);
      composed(() => run(reference, 1, 0.8, 7));
      composed(() => run(fresh, 1, 0.8, 7));
      await compareWeights('after switching paths', b, c, TOL);
      await compareState('after switching paths', await fresh.getStateAsync(), await reference.getStateAsync(), TOL);
    } finally {
      fused.dispose();
      fresh.dispose();
      reference.dispose();
      tf.dispose([...a, ...b, ...c]);
    }
  });

  it(`an update is ${fusedKernels.rule} (tf.profile), against the composed update`, async () => {
    const [fw, cw] = [makeVariables(11), makeVariables(11)];
    const fused = new AdamW(fw);
    const reference = composed(() => new AdamW(cw));
    const grads = gradsAt(1);
    const kernels = async (opt: AdamW) => {
      const info = await tf.profile(() => {
        opt.apply(grads, 1e-2, 0.5);
        return null as unknown as tf.Tensor;
      });
      return info.kernels.map((k) => k.name);
    };
    try {
      const f = await kernels(fused);
      const before = TRAINING_KERNELS.implementation;
      TRAINING_KERNELS.implementation = 'composed';
      let c: string[];
      try {
        c = await kernels(reference);
      } finally {
        TRAINING_KERNELS.implementation = before;
      }
      console.log(`    AdamW kernels per update of ${SHAPES.length} variables: fused ${f.length} [${f}], composed ${c.length}`);
      if (f.length !== fusedKernels.count(SHAPES.map((x) => tf.util.sizeFromShape(x)))) throw new Error(`fused update ran [${f}]`);
      if (c.length < 10 * SHAPES.length) throw new Error(`composed update ran only [${c}]`);
    } finally {
      fused.dispose();
      reference.dispose();
      tf.dispose([...fw, ...cw, ...grads]);
    }
  });

  it(`one update of a CausalLM's variables: ${fusedKernels.rule} (tf.profile), against the composed update`, async () => {
    const lm = CausalLM.create({ ...smallPreset('tiny', 'gta', 512), seed: 5 });
    const variables = lm.model.trainableWeights.map((w) => w.read() as tf.Variable);
    const grads = variables.map((v, i) => randomTensor(v.shape, 300 + i, 0.01));
    const fused = new AdamW(variables);
    const reference = composed(() => new AdamW(variables));
    const count = async (opt: AdamW) => {
      const info = await tf.profile(() => {
        opt.apply(grads, 1e-3, 0.5);
        return null as unknown as tf.Tensor;
      });
      return info.kernels.length;
    };
    try {
      const f = await count(fused);
      const before = TRAINING_KERNELS.implementation;
      TRAINING_KERNELS.implementation = 'composed';
      let c: number;
      try {
        c = await count(reference);
      } finally {
        TRAINING_KERNELS.implementation = before;
      }
      console.log(`    AdamW kernels per update of smallPreset('tiny', 'gta') (${variables.length} variables): fused ${f}, composed ${c}`);
      if (f !== fusedKernels.count(variables.map((v) => v.size)))
        throw new Error(`fused update ran ${f} kernels for ${variables.length} variables`);
    } finally {
      fused.dispose();
      reference.dispose();
      tf.dispose(grads);
      lm.dispose();
    }
  });

  if (backend === 'webgl') {
    it('packs a scale tensor once per update: three programs per variable (and one more), no pack program per moment', async () => {
      const w = makeVariables(17);
      const opt = new AdamW(w);
      const gl = tf.backend() as unknown as { runWebGLProgram: (...args: unknown[]) => unknown };
      const run = gl.runWebGLProgram;
      // Gradients made by packed programs, as a backward pass leaves them; the scale from clipScale (unpacked)
      // and from a packed program.
      const raw = gradsAt(1);
      const grads = raw.map((g) => tf.tidy(() => tf.add(g, tf.zerosLike(g))));
      tf.dispose(raw);
      const scales: Array<[string, tf.Tensor, number]> = [
        ['clipScale', clipScale(grads, 1), 1],
        ['packed', tf.tidy(() => tf.reshape(tf.mul(tf.ones([1]), 0.7), [])), 0],
      ];
      try {
        await Promise.all([...grads, ...scales.map((x) => x[1])].map((t) => t.data()));
        for (const [what, scale, extra] of scales) {
          opt.apply(grads, 1e-2, scale); // compiles the programs
          const names: string[] = [];
          gl.runWebGLProgram = (...args: unknown[]) => {
            names.push((args[0] as { constructor: { name: string } }).constructor.name);
            return run.apply(gl, args);
          };
          try {
            opt.apply(grads, 1e-2, scale);
          } finally {
            gl.runWebGLProgram = run;
          }
          const packs = names.filter((n) => n === 'PackProgram' || n === 'UnpackProgram').length;
          if (names.length !== 3 * SHAPES.length + extra || packs !== 0) {
            throw new Error(`${what} scale: an update of ${SHAPES.length} variables ran ${names.length} programs [${names}]`);
          }
        }
      } finally {
        gl.runWebGLProgram = run;
        opt.dispose();
        tf.dispose([...w, ...grads, ...scales.map((x) => x[1])]);
      }
    });

    it('compiles no new shader program after the first step (lr, bias corrections and scale are uniforms)', () => {
      const w = makeVariables(13);
      const opt = new AdamW(w);
      try {
        // The first steps compile each program once per shape (scale as a number, then as a tensor).
        run(opt, 1, 0.7);
        run(opt, 1, 'tensor', 2);
        const before = compiledPrograms();
        for (let step = 3; step <= 6; step++) {
          const grads = gradsAt(step);
          const scale = clipScale(grads, 1);
          opt.apply(grads, 1e-2 / step, step % 2 === 0 ? scale : 0.9 - 0.1 * step);
          tf.dispose([...grads, scale]);
        }
        const after = compiledPrograms();
        if (after !== before) throw new Error(`4 more steps with new lr, bias corrections and scales compiled ${after - before} programs`);
      } finally {
        opt.dispose();
        tf.dispose(w);
      }
    });
  }
});
