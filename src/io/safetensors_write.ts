/**
 * Writes the safetensors format (Hugging Face), the inverse of `parseSafetensors`: an 8-byte little-endian
 * header length, a JSON header `{__metadata__: {format: 'pt'}, name: {dtype, shape, data_offsets}}` with
 * the tensors sorted by name and padded with spaces to a multiple of 8 bytes, then the raw little-endian
 * bytes of every tensor in the same order. Float32 (`F32`) tensors only. Works in browsers and Node.
 *
 * ```ts
 * const bytes = serializeSafetensors({ 'w': { dtype: 'F32', shape: [2, 2], data: new Float32Array(4) } });
 * ```
 */
import { ValueError } from '../utils/errors.js';

/** One float32 tensor in torch layout: row-major `data` of `shape`. */
export interface F32Tensor {
  dtype: 'F32';
  shape: number[];
  data: Float32Array;
}

interface HeaderEntry {
  dtype: 'F32';
  shape: number[];
  data_offsets: [number, number];
}

const OWNER = 'serializeSafetensors';
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (ArrayBuffer.isView(value)) return value.constructor.name;
  return typeof value;
}

/** Checks one entry (name, dtype, shape, data) and returns its element count. */
function checkTensor(name: string, tensor: unknown): number {
  if (name.length === 0) throw new ValueError(`${OWNER}: tensor names must be non-empty strings, got "".`);
  if (name === '__metadata__') throw new ValueError(`${OWNER}: "__metadata__" is reserved and cannot name a tensor.`);
  if (tensor === null || typeof tensor !== 'object') {
    throw new ValueError(`${OWNER}: tensors["${name}"] must be {dtype: 'F32', shape, data}, got ${describe(tensor)}.`);
  }
  const { dtype, shape, data } = tensor as Partial<F32Tensor>;
  if (dtype !== 'F32') {
    throw new ValueError(`${OWNER}: tensors["${name}"].dtype must be 'F32' (only float32 is written), got ${JSON.stringify(dtype)}.`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new ValueError(`${OWNER}: tensors["${name}"].shape must be an array of non-negative integers, got ${JSON.stringify(shape)}.`);
  }
  if (!(data instanceof Float32Array)) {
    throw new ValueError(`${OWNER}: tensors["${name}"].data must be a Float32Array, got ${describe(data)}.`);
  }
  const size = shape.reduce((a, b) => a * b, 1);
  if (data.length !== size) {
    throw new ValueError(`${OWNER}: tensors["${name}"] has ${data.length} values but shape [${shape}] needs ${size}.`);
  }
  return size;
}

/** The header bytes, padded with spaces so that the tensor data starts at a multiple of 8. */
function encodeHeader(header: Record<string, unknown>): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = new Uint8Array(Math.ceil(json.length / 8) * 8).fill(0x20);
  padded.set(json);
  return padded;
}

/** Copies `data` into `out` at `offset` as little-endian float32 bytes. */
function writeFloats(out: Uint8Array, offset: number, data: Float32Array): void {
  if (LITTLE_ENDIAN) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset);
    return;
  }
  const view = new DataView(out.buffer, out.byteOffset + offset, data.byteLength);
  for (let i = 0; i < data.length; i++) view.setFloat32(4 * i, data[i], true);
}

/**
 * Serializes named float32 tensors into one safetensors buffer (readable by `parseSafetensors`, the
 * Python `safetensors` package and `transformers`). Names must be non-empty; every `data` must be a
 * Float32Array whose length matches its `shape`. NaN and infinities are written as they are.
 */
export function serializeSafetensors(tensors: Record<string, F32Tensor>): Uint8Array {
  if (tensors === null || typeof tensors !== 'object' || Array.isArray(tensors)) {
    throw new ValueError(`${OWNER}: tensors must be an object of {name: {dtype: 'F32', shape, data}}, got ${describe(tensors)}.`);
  }
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let end = 0;
  for (const name of names) {
    const bytes = 4 * checkTensor(name, tensors[name]);
    const entry: HeaderEntry = { dtype: 'F32', shape: [...tensors[name].shape], data_offsets: [end, end + bytes] };
    header[name] = entry;
    end += bytes;
  }
  const head = encodeHeader(header);
  const total = 8 + head.length + end;
  let out: Uint8Array;
  try {
    out = new Uint8Array(total);
  } catch (e) {
    throw new ValueError(
      `${OWNER}: cannot allocate ${total} bytes for the file (${(e as Error).message}); ` + 'split the tensors over several files.',
    );
  }
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  const base = 8 + head.length;
  for (const name of names) {
    writeFloats(out, base + (header[name] as HeaderEntry).data_offsets[0], tensors[name].data);
  }
  return out;
}
