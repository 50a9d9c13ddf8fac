/**
 * The fused RoPE kernel for webgl, under the same name, inputs and attrs as the webgpu one
 * (src/kernels/webgpu/rope.ts: `GtaRope`, x, cos, sinSigned, attr `transpose` for the backward), so that
 * the `tf.customGrad` wrapper there (`fusedRope`) runs on either backend.
 *   forward    y_j  = x_j c_j + x_p(j) s_j
 *   transpose  dx_k = dy_k c_k + dy_p(k) s_p(k)
 * with p(j) the partner of dim j in the other half (`j + d/2` or `j - d/2`), c = cos, s = sinSigned.
 *
 * One packed fragment program (four elements per texel, like tfjs's elementwise ops). A packed texel holds
 * a 2 x 2 block: rows r, r + 1 of x's second-to-last axis, columns c, c + 1 (c even) of the last. The
 * partners of columns c and c + 1 are read from the same rows: when d/2 is even they are columns
 * p(c), p(c) + 1 of one texel; when d/2 is odd each sits in a different texel (one read per column).
 *
 * Views (free for packed textures: the last two axes are kept): x's leading axes (all but the last two) are
 * merged into at most `WEBGL_ROPE_MAX_GROUPS` groups by whether the factors broadcast over them, the
 * factors are viewed with the same groups (size 1 where they broadcast), and their second-to-last axis is
 * either x's (read per row) or 1 (one row for both rows of a texel).
 */
import * as tf from '@tensorflow/tfjs';
import { ValueError } from '../../utils/errors.js';
import { runReshaped, type WebGLBackendLike, type WebGLKernelArgs, type WebGLProgram } from './program.js';

/** The kernel name, shared with the webgpu kernel. */
const ROPE_KERNEL = 'GtaRope';

/** Groups of leading axes the program resolves (views up to rank 6, tfjs's largest packed rank). */
export const WEBGL_ROPE_MAX_GROUPS = 4;

/** GLSL names of the output coordinates' fields, by position. */
const FIELDS = ['x', 'y', 'z', 'w', 'u', 'v'];

/** The views of one call: x's (also the output's) and the factors', and which factor axes are read per element. */
interface Layout {
  xView: number[];
  fView: number[];
  /** Per leading group: whether the factors vary along it (else their index is 0). */
  full: boolean[];
  /** Whether the factors have x's rows (second-to-last axis), or one row for all. */
  fullRows: boolean;
}

/** The views of x `[..., R, d]` and factors (right-aligned, each axis 1 or x's), or null when they do not fit. */
export function webglRopeLayout(xShape: number[], fShape: number[]): Layout | null {
  const x = xShape.length === 1 ? [1, ...xShape] : xShape;
  if (fShape.length > x.length) return null;
  const f = [...new Array<number>(x.length - fShape.length).fill(1), ...fShape];
  const n = x.length;
  if (f[n - 1] !== x[n - 1]) return null;
  if (f[n - 2] !== 1 && f[n - 2] !== x[n - 2]) return null;
  const sizes: number[] = [];
  const full: boolean[] = [];
  for (let a = 0; a < n - 2; a++) {
    if (f[a] !== 1 && f[a] !== x[a]) return null;
    if (x[a] === 1) continue;
    const isFull = f[a] === x[a];
    if (full.length > 0 && full[full.length - 1] === isFull) sizes[sizes.length - 1] *= x[a];
    else {
      sizes.push(x[a]);
      full.push(isFull);
    }
  }
  if (sizes.length > WEBGL_ROPE_MAX_GROUPS) return null;
  const rows = x[n - 2];
  const d = x[n - 1];
  const fullRows = f[n - 2] === rows;
  return {
    xView: [...sizes, rows, d],
    fView: [...sizes.map((s, g) => (full[g] ? s : 1)), fullRows ? rows : 1, d],
    full,
    fullRows,
  };
}

/** GLSL: the arguments of a sampler at the texel of the given row and column expressions. */
function args(layout: Layout, factor: boolean, row: string, col: string): string {
  const lead = layout.full.map((isFull, g) => (factor && !isFull ? '0' : `rc.${FIELDS[g]}`));
  return [...lead, factor && !layout.fullRows ? '0' : row, col].join(', ');
}

/**
 * GLSL: a function `vec4 name()` giving input `input`'s values at the partner columns of the output texel
 * (`p0` = p(c), `p1` = p(c + 1)), laid out as the texel (`(r, c) (r, c+1) (r+1, c) (r+1, c+1)`).
 */
function partnerReader(layout: Layout, input: string, factor: boolean, evenHalf: boolean): string {
  const oneRow = factor && !layout.fullRows;
  if (evenHalf) {
    return `vec4 partner${input}(ivec${layout.xView.length} rc, int r, int p0, int p1) {
  vec4 t = get${input}(${args(layout, factor, 'r', 'p0')});
  return ${oneRow ? 't.xyxy' : 't'};
}`;
  }
  return `vec4 partner${input}(ivec${layout.xView.length} rc, int r, int p0, int p1) {
  vec2 a = column(get${input}(${args(layout, factor, 'r', 'p0')}), p0);
  vec2 b = column(get${input}(${args(layout, factor, 'r', 'p1')}), p1);
  return ${oneRow ? 'vec4(a.x, b.x, a.x, b.x)' : 'vec4(a.x, b.x, a.y, b.y)'};
}`;
}

/** The packed program over x's view (forward, or with `transpose` the backward). */
function ropeProgram(layout: Layout, transpose: boolean): WebGLProgram {
  const rank = layout.xView.length;
  const d = layout.xView[rank - 1];
  const half = d / 2;
  const evenHalf = half % 2 === 0;
  const coords = `ivec${rank}`;
  const factorAt = (input: string) => `get${input}(${args(layout, true, 'r', 'c')})${layout.fullRows ? '' : '.xyxy'}`;
  const userCode = `
vec2 column(vec4 t, int p) {
  return p - 2 * (p / 2) == 1 ? t.yw : t.xz;
}
${partnerReader(layout, 'X', false, evenHalf)}
${transpose ? partnerReader(layout, 'S', true, evenHalf) : ''}
void main() {
  ${coords} rc = getOutputCoords();
  int r = rc.${FIELDS[rank - 2]};
  int c = rc.${FIELDS[rank - 1]};
  int p0 = c < ${half} ? c + ${half} : c - ${half};
  int p1 = c + 1 < ${half} ? c + ${half + 1} : c - ${half - 1};
  vec4 x = getX(${args(layout, false, 'r', 'c')});
  vec4 cs = ${factorAt('C')};
  vec4 sn = ${transpose ? 'partnerS(rc, r, p0, p1)' : factorAt('S')};
  setOutput(x * cs + partnerX(rc, r, p0, p1) * sn);
}
`;
  return { variableNames: ['X', 'C', 'S'], outputShape: layout.xView, userCode, packedInputs: true, packedOutput: true };
}

function ropeKernel(args: WebGLKernelArgs): tf.TensorInfo {
  const backend = args.backend as WebGLBackendLike;
  const { x, cos, sinSigned } = args.inputs;
  const { transpose } = args.attrs as unknown as { transpose: boolean };
  const layout = webglRopeLayout(x!.shape, cos!.shape);
  if (layout === null)
    throw new ValueError(`${ROPE_KERNEL}: factors [${cos!.shape}] do not broadcast over x [${x!.shape}] in the fused layout.`);
  const shapes = [layout.xView, layout.fView, layout.fView];
  return runReshaped(backend, ropeProgram(layout, transpose), [x!, cos!, sinSigned!], shapes, x!.shape);
}

/** Registers the RoPE kernel for the webgl backend (once). */
export function registerWebGLRopeKernel(): void {
  if (tf.getKernel(ROPE_KERNEL, 'webgl') !== undefined) return;
  tf.registerKernel({ kernelName: ROPE_KERNEL, backendName: 'webgl', kernelFunc: ropeKernel as unknown as tf.KernelFunc });
}
