/**
 * GTA's gated value decoder as fused kernels for webgpu, forward and backward (the prefill and training
 * path; the one-token decode step has its own kernel in decode_step.ts). What it computes
 * (docs/ATTENTION_SPEC.md, GTA): each query group's attention output is a latent row, expanded by that
 * group's decoder `R + Delta` (R = [I ... I], r copies of the identity) and gated by `sigmoid(x Wg)`:
 *
 *   u[n, g r Dl + c] = o[b, g, t, c mod Dl] + sum_j o[b, g, t, j] Delta[g, j, c]
 *   y[n, col]        = sigmoid(G[n, col]) u[n, col]
 *
 * Notation: B batch, T query length, N = B T rows (n = b T + t), Hq query groups (one map each), Dl the
 * latent width, r the expansion rate, C = r Dl one group's output width, W = Hq C the layer width (columns
 * group-major: col = g C + c), G the gate logits, dy the output gradient, s = sigmoid(G), e = dy s.
 *   forward      o [B, Hq, T, Dl], G [N, W], Delta [Hq, Dl, C] -> y [N, W]          one dispatch
 *   gradGate     o, G, Delta, dy                               -> dG = dy u s (1 - s) one dispatch
 *   gradInput    G, Delta^T [Hq, C, Dl], dy                    -> do [B, Hq, T, Dl]  one dispatch
 *                do[b, g, t, j] = sum_c e[n, g C + c] (Delta[g, j, c] + [c mod Dl = j])
 *                (Delta comes transposed, one small extra kernel: neighbouring invocations differ in j, and
 *                reading Delta [Hq, Dl, C] itself across them strided by C took 6.7 ms of the H200 at
 *                B=4 T=512 W=1024)
 *   gradDecoder  o, G, dy                                      -> dDelta [Hq, Dl, C] one dispatch
 *                dDelta[g, j, c] = sum_n o[b, g, t, j] e[n, g C + c]
 * One invocation per output element (tfjs spreads more than 65,535 workgroups over a 2-D dispatch and
 * gives `main` the flat index). The composed ops this replaces (src/ops/gated_decoder.ts) run 10 kernels
 * forward (transposes and reshapes between the [B, Hq, T, Dl] and [N, W] layouts, the tile of R, the
 * batched product, the add, the sigmoid and the gate product) and 32 with the backward (tf.profile).
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../../utils/errors.js';
import type { ProgramUniform, WebGPUBackendLike, WebGPUProgram } from './program.js';
import { registerWebGLGatedDecoderKernels } from '../webgl/gated_decoder.js';

/** Registered kernel names (webgpu and webgl). */
export const GATED_DECODER_KERNELS = {
  forward: 'GtaGatedDecoder',
  gradGate: 'GtaGatedDecoderGradGate',
  gradInput: 'GtaGatedDecoderGradInput',
  gradDecoder: 'GtaGatedDecoderGradDecoder',
} as const;

export type GatedDecoderMode = keyof typeof GATED_DECODER_KERNELS;

const WORKGROUP = 64;

/** The inputs each kernel takes, in order (the names the webgl programs use too). */
export const GATED_DECODER_INPUTS: Readonly<Record<GatedDecoderMode, readonly string[]>> = {
  forward: ['O', 'G', 'DELTA'],
  gradGate: ['O', 'G', 'DELTA', 'DY'],
  gradInput: ['G', 'DELTAT', 'DY'],
  gradDecoder: ['O', 'G', 'DY'],
};

/** Sizes of one call: from the shapes of o [B, Hq, T, Dl] and Delta [Hq, Dl, C]. */
export interface GatedDecoderDims {
  b: number;
  hq: number;
  t: number;
  dl: number;
  c: number;
}

export function gatedDecoderDims(oShape: number[], deltaShape: number[]): GatedDecoderDims {
  const [b, hq, t, dl] = oShape;
  return { b, hq, t, dl, c: deltaShape[2] };
}

/** The output shape of `mode`. */
export function gatedDecoderOutputShape(mode: GatedDecoderMode, d: GatedDecoderDims): number[] {
  if (mode === 'gradInput') return [d.b, d.hq, d.t, d.dl];
  if (mode === 'gradDecoder') return [d.hq, d.dl, d.c];
  return [d.b * d.t, d.hq * d.c];
}

/** WGSL: `u` of output element (n, g, c): the latent row's copy plus its product with Delta. */
const EXPANDED = `
  let orow = ((b * uniforms.hq + g) * uniforms.t + t) * uniforms.dl;
  let drow = g * uniforms.dl * uniforms.c + c;
  var u = O[orow + c % uniforms.dl];
  for (var j = 0; j < uniforms.dl; j = j + 1) {
    u = u + O[orow + j] * DELTA[drow + j * uniforms.c];
  }`;

const BODY: Record<GatedDecoderMode, string> = {
  forward: `
  let n = index / W; let col = index - n * W;
  let g = col / uniforms.c; let c = col - g * uniforms.c;
  let b = n / uniforms.t; let t = n - b * uniforms.t;
  ${EXPANDED}
  result[index] = u / (1.0 + exp(-G[index]));`,
  gradGate: `
  let n = index / W; let col = index - n * W;
  let g = col / uniforms.c; let c = col - g * uniforms.c;
  let b = n / uniforms.t; let t = n - b * uniforms.t;
  ${EXPANDED}
  let s = 1.0 / (1.0 + exp(-G[index]));
  result[index] = DY[index] * u * s * (1.0 - s);`,
  gradInput: `
  let j = index % uniforms.dl; let bgt = index / uniforms.dl;
  let t = bgt % uniforms.t; let bg = bgt / uniforms.t;
  let g = bg % uniforms.hq; let b = bg / uniforms.hq;
  let row = (b * uniforms.t + t) * W + g * uniforms.c;
  let dcol = g * uniforms.c * uniforms.dl + j;
  var acc = 0.0;
  for (var c = 0; c < uniforms.c; c = c + 1) {
    let e = DY[row + c] / (1.0 + exp(-G[row + c]));
    acc = acc + e * (DELTAT[dcol + c * uniforms.dl] + select(0.0, 1.0, c % uniforms.dl == j));
  }
  result[index] = acc;`,
  gradDecoder: `
  let c = index % uniforms.c; let gj = index / uniforms.c;
  let j = gj % uniforms.dl; let g = gj / uniforms.dl;
  let col = g * uniforms.c + c;
  var acc = 0.0;
  for (var b = 0; b < uniforms.b; b = b + 1) {
    for (var t = 0; t < uniforms.t; t = t + 1) {
      let at = (b * uniforms.t + t) * W + col;
      let e = DY[at] / (1.0 + exp(-G[at]));
      acc = acc + O[((b * uniforms.hq + g) * uniforms.t + t) * uniforms.dl + j] * e;
    }
  }
  result[index] = acc;`,
};

/** One invocation per output element of `mode`; the sizes are uniforms (one pipeline for every shape). */
class GatedDecoderProgram implements WebGPUProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  uniforms = 'b : i32, hq : i32, t : i32, dl : i32, c : i32,';
  size = true;

  constructor(
    private readonly mode: GatedDecoderMode,
    private readonly dims: GatedDecoderDims,
  ) {
    this.variableNames = [...GATED_DECODER_INPUTS[mode]];
    this.outputShape = gatedDecoderOutputShape(mode, dims);
    this.dispatchLayout = { x: this.outputShape.map((_, i) => i) };
    this.dispatch = [Math.ceil(this.outputShape.reduce((a, x) => a * x, 1) / WORKGROUP), 1, 1];
    this.shaderKey = `gtaGatedDecoder_${mode}`;
  }

  uniformValues(): ProgramUniform[] {
    const { b, hq, t, dl, c } = this.dims;
    return [b, hq, t, dl, c].map((v) => ({ type: 'int32' as const, data: [v] }));
  }

  getUserCode(): string {
    return `
fn main(index : i32) {
  if (index >= uniforms.size) { return; }
  let W = uniforms.hq * uniforms.c;
  ${BODY[this.mode]}
}
`;
  }
}

function kernel(mode: GatedDecoderMode) {
  return (args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo => {
    const backend = args.backend as WebGPUBackendLike;
    const named = args.inputs as Record<string, tf.TensorInfo>;
    const program = new GatedDecoderProgram(mode, args.attrs as unknown as GatedDecoderDims);
    const inputs = GATED_DECODER_INPUTS[mode].map((name) => named[name]);
    return backend.runWebGPUProgram(program, inputs, 'float32', program.uniformValues());
  };
}

/** Registers the four kernels for webgpu and (src/kernels/webgl/gated_decoder.ts) for webgl, once. */
export function registerGatedDecoderKernels(): void {
  registerWebGLGatedDecoderKernels();
  if (tf.getKernel(GATED_DECODER_KERNELS.forward, 'webgpu') !== undefined) return;
  for (const mode of Object.keys(GATED_DECODER_KERNELS) as GatedDecoderMode[])
    tf.registerKernel({ kernelName: GATED_DECODER_KERNELS[mode], backendName: 'webgpu', kernelFunc: kernel(mode) as tf.KernelFunc });
}

/** Why the fused kernels cannot take these inputs, or null when they can. */
export function fusedGatedDecoderUnsupported(o: tf.Tensor, gate: tf.Tensor, delta: tf.Tensor): string | null {
  if ([o, gate, delta].some((x) => x.dtype !== 'float32'))
    return `o, gate and delta must be float32 (got ${o.dtype}, ${gate.dtype}, ${delta.dtype})`;
  if (o.rank !== 4 || gate.rank !== 2 || delta.rank !== 3)
    return `o, gate and delta must have ranks 4, 2 and 3 (got ${o.rank}, ${gate.rank}, ${delta.rank})`;
  const [b, hq, t, dl] = o.shape;
  const [dh, dj, c] = delta.shape;
  if (dh !== hq || dj !== dl || c % dl !== 0) return `delta [${delta.shape}] must be [Hq, Dl, r*Dl] for o [${o.shape}]`;
  if (gate.shape[0] !== b * t || gate.shape[1] !== hq * c) return `gate [${gate.shape}] must be [B*T, Hq*r*Dl] = [${b * t}, ${hq * c}]`;
  if (o.size === 0) return 'o must have at least one element';
  return null;
}

/** Runs kernel `mode`; the sizes travel as attrs (gradInput and gradDecoder lack o or Delta). */
const run = (mode: GatedDecoderMode, inputs: tf.NamedTensorMap, dims: GatedDecoderDims): tf.Tensor =>
  tf.engine().runKernel(GATED_DECODER_KERNELS[mode], inputs, dims as unknown as tf.NamedAttrMap) as tf.Tensor;

/**
 * `sigmoid(gate) * u` with `u` the latent rows `o` expanded by `R + delta`, [N, W] group-major, through the
 * fused webgpu or webgl kernels, with the fused backward under `tf.customGrad` (three dispatches: the gate,
 * the latent rows and the decoder; and a transpose of `delta`). Throws a `ValueError` for inputs the kernels do not take
 * (`fusedGatedDecoderUnsupported`); callers check first and fall back to the composed ops.
 */
export function fusedGatedDecoder(o: tf.Tensor4D, gate: tf.Tensor2D, delta: tf.Tensor3D): tf.Tensor2D {
  const why = fusedGatedDecoderUnsupported(o, gate, delta);
  if (why !== null) throw new ValueError(`fused gated decoder: ${why}.`);
  registerGatedDecoderKernels();
  if (tf.getKernel(GATED_DECODER_KERNELS.forward, tf.getBackend()) === undefined)
    throw new ValueError(`fused gated decoder: the fused kernels need the webgpu or webgl backend (active backend is ${tf.getBackend()}).`);
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [O, G, DELTA, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([O, G, DELTA]);
    const dims = gatedDecoderDims(O.shape, DELTA.shape);
    return {
      value: run('forward', { O, G, DELTA }, dims),
      gradFunc: (DY: tf.Tensor, saved: tf.Tensor[]) => {
        const [so, sg, sd] = saved;
        return [
          run('gradInput', { G: sg, DELTAT: tf.transpose(sd, [0, 2, 1]), DY }, dims), // Delta^T [Hq, C, Dl]
          run('gradGate', { O: so, G: sg, DELTA: sd, DY }, dims),
          run('gradDecoder', { O: so, G: sg, DY }, dims),
        ];
      },
    };
  });
  return f(o, gate, delta) as tf.Tensor2D;
}
