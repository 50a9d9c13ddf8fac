/**
 * Reads the safetensors format (Hugging Face): 8-byte little-endian header length, a JSON header of
 * `{name: {dtype, shape, data_offsets: [begin, end]}}`, then the raw little-endian tensor bytes.
 * F32, F64, F16 and BF16 tensors are returned as Float32Array.
 */
import { ValueError } from '../utils/errors.js';

export interface NamedTensor {
  shape: number[];
  dtype: string;
  data: Float32Array;
}

function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/** Parses a safetensors buffer into named float32 tensors. */
export function parseSafetensors(buffer: ArrayBuffer | Uint8Array, source = 'safetensors'): Record<string, NamedTensor> {
  const bytes = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer);
  if (bytes.byteLength < 8) throw new ValueError(`${source}: too short to be a safetensors file.`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength <= 0 || 8 + headerLength > bytes.byteLength) throw new ValueError(`${source}: invalid header length ${headerLength}.`);
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch (e) {
    throw new ValueError(`${source}: the header is not valid JSON (${(e as Error).message}).`);
  }
  const base = 8 + headerLength;
  const out: Record<string, NamedTensor> = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [begin, end] = info.data_offsets;
    const size = info.shape.reduce((a, b) => a * b, 1);
    const start = base + begin;
    const data = new Float32Array(size);
    const width: Record<string, number> = { F32: 4, F64: 8, F16: 2, BF16: 2 };
    const w = width[info.dtype];
    if (w === undefined) throw new ValueError(`${source}: tensor ${name} has unsupported dtype ${info.dtype}.`);
    if (end - begin !== size * w || base + end > bytes.byteLength) {
      throw new ValueError(`${source}: tensor ${name} has inconsistent offsets for shape [${info.shape}] ${info.dtype}.`);
    }
    for (let i = 0; i < size; i++) {
      const o = start + i * w;
      switch (info.dtype) {
        case 'F32': data[i] = view.getFloat32(o, true); break;
        case 'F64': data[i] = view.getFloat64(o, true); break;
        case 'F16': data[i] = f16ToF32(view.getUint16(o, true)); break;
        case 'BF16': {
          const tmp = new DataView(new ArrayBuffer(4));
          tmp.setUint32(0, view.getUint16(o, true) << 16, true);
          data[i] = tmp.getFloat32(0, true);
          break;
        }
      }
    }
    out[name] = { shape: info.shape, dtype: info.dtype, data };
  }
  return out;
}

/**
 * Reads a plain JSON of arrays: `{name: {shape, data}}` or `{name: nested arrays}`.
 */
export function parseTensorJSON(text: string, source = 'weights JSON'): Record<string, NamedTensor> {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ValueError(`${source}: not valid JSON (${(e as Error).message}).`);
  }
  const out: Record<string, NamedTensor> = {};
  for (const [name, value] of Object.entries(parsed)) {
    if (value && typeof value === 'object' && !Array.isArray(value) && 'shape' in value && 'data' in value) {
      const v = value as { shape: number[]; data: number[] };
      out[name] = { shape: v.shape, dtype: 'F32', data: Float32Array.from(v.data.flat(Infinity as 1) as number[]) };
    } else if (Array.isArray(value)) {
      const shape: number[] = [];
      let cur: unknown = value;
      while (Array.isArray(cur)) {
        shape.push(cur.length);
        cur = cur[0];
      }
      out[name] = { shape, dtype: 'F32', data: Float32Array.from((value as unknown[]).flat(Infinity as 1) as number[]) };
    } else {
      throw new ValueError(`${source}: entry ${name} must be {shape, data} or a nested array.`);
    }
  }
  return out;
}
