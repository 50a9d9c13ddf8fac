/**
 * The fused softmax cross-entropy kernels for webgl, under the same names, inputs and attrs as the webgpu
 * ones (src/kernels/webgpu/cross_entropy.ts), so that the `tf.customGrad` wrappers there run on either
 * backend. Logits `[..., V]` are viewed as `[N, V]`, integer targets `[...]` as `[N]`.
 *   GtaCrossEntropyRows   (logits, targets) -> loss [...]: one texel per row, looping twice over its V
 *                         logits (the max, then the sum of exp(x - max)); loss = log(sum) + max - x_t
 *   GtaCrossEntropyGrad   (logits, targets, loss, dy) -> dlogits [..., V]: one texel per logit,
 *                         (exp(x - lse) - [j == t]) * dy * dyScale, with lse = loss + x_t rebuilt per row
 * A target outside [0, V) gives NaN for its row (loss and gradients), as on webgpu.
 */
import * as tf from '@tensorflow/tfjs';
import { runReshaped, sizeOf, type WebGLBackendLike, type WebGLKernelArgs, type WebGLProgram } from './program.js';

/** The kernel names, shared with the webgpu kernels. */
const NAMES = { rows: 'GtaCrossEntropyRows', grad: 'GtaCrossEntropyGrad' } as const;

/** A float for GLSL (always with a decimal point or exponent). */
const glslFloat = (x: number): string => (Number.isInteger(x) ? `${x}.0` : `${x}`);

function rowsProgram(rows: number, classes: number): WebGLProgram {
  const userCode = `
void main() {
  int row = getOutputCoords();
  int t = int(round(getTargets(row)));
  if (t < 0 || t >= ${classes}) {
    setOutput(NAN);
    return;
  }
  float m = getLogits(row, 0);
  for (int j = 1; j < ${classes}; j++) { m = max(m, getLogits(row, j)); }
  float s = 0.0;
  for (int j = 0; j < ${classes}; j++) { s += exp(getLogits(row, j) - m); }
  setOutput(log(s) + m - getLogits(row, t));
}
`;
  return { variableNames: ['Logits', 'Targets'], outputShape: [rows], userCode };
}

function gradProgram(rows: number, classes: number, dyScale: number, dyPerRow: boolean): WebGLProgram {
  const userCode = `
void main() {
  ivec2 c = getOutputCoords();
  int t = int(round(getTargets(c.x)));
  if (t < 0 || t >= ${classes}) {
    setOutput(NAN);
    return;
  }
  float lse = getLoss(c.x) + getLogits(c.x, t);
  float p = exp(getLogits(c.x, c.y) - lse);
  float dy = getDy(${dyPerRow ? 'c.x' : '0'}) * ${glslFloat(dyScale)};
  setOutput((p - (c.y == t ? 1.0 : 0.0)) * dy);
}
`;
  return { variableNames: ['Logits', 'Targets', 'Loss', 'Dy'], outputShape: [rows, classes], userCode };
}

function rowsKernel(args: WebGLKernelArgs): tf.TensorInfo {
  const backend = args.backend as WebGLBackendLike;
  const { classes } = args.attrs as unknown as { classes: number };
  const { logits, targets } = args.inputs as Record<string, tf.TensorInfo>;
  const lead = logits.shape.slice(0, -1);
  const rows = sizeOf(lead);
  const shapes = [[rows, classes], [rows]];
  return runReshaped(backend, rowsProgram(rows, classes), [logits, targets], shapes, lead);
}

function gradKernel(args: WebGLKernelArgs): tf.TensorInfo {
  const backend = args.backend as WebGLBackendLike;
  const { classes, dyScale } = args.attrs as unknown as { classes: number; dyScale: number };
  const { logits, targets, loss, dy } = args.inputs as Record<string, tf.TensorInfo>;
  const rows = sizeOf(logits.shape) / classes;
  const dySize = sizeOf(dy.shape);
  const program = gradProgram(rows, classes, dyScale, dySize > 1);
  const shapes = [[rows, classes], [rows], [rows], [dySize]];
  return runReshaped(backend, program, [logits, targets, loss, dy], shapes, logits.shape);
}

/** Registers both cross-entropy kernels for the webgl backend (once). */
export function registerWebGLCrossEntropy(): void {
  if (tf.getKernel(NAMES.rows, 'webgl') !== undefined) return;
  tf.registerKernel({ kernelName: NAMES.rows, backendName: 'webgl', kernelFunc: rowsKernel as tf.KernelFunc });
  tf.registerKernel({ kernelName: NAMES.grad, backendName: 'webgl', kernelFunc: gradKernel as tf.KernelFunc });
}
