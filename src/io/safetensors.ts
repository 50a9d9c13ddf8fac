/**
 * Reads the safetensors format (Hugging Face): 8-byte little-endian header length, a JSON header of
 * `{name: {dtype, shape, data_offsets: [begin, end]}}`, then the raw little-endian tensor bytes.
 * F32, F64, F16 and BF16 tensors are returned as Float32Array.
 *
 * The header is validated completely before anything is allocated: a JSON object whose entries have a
 * known dtype, a shape of non-negative integers and integer offsets that tile the data section exactly
 * (contiguous, non-overlapping, no trailing bytes), each spanning dtype size x element count bytes. So
 * no output is larger than twice the input. Results are objects without a prototype, so a tensor
 * named `__proto__` is an ordinary entry.
 */
import { ValueError } from '../utils/errors.js';

export interface NamedTensor {
  shape: number[];
  dtype: string;
  data: Float32Array;
}

/** Bytes per element of the dtypes this reader converts to float32. */
const DTYPE_BYTES: Readonly<Record<string, number>> = Object.freeze({ F32: 4, F64: 8, F16: 2, BF16: 2 });

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

interface HeaderEntry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/** A map from names to tensors with no prototype (safe for any name, including `__proto__`). */
function emptyResult(): Record<string, NamedTensor> {
  return Object.create(null) as Record<string, NamedTensor>;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The element count of `shape` (an array of non-negative safe integers), or a ValueError. */
function elementCount(shape: unknown, what: string): number {
  if (!Array.isArray(shape))
    throw new ValueError(`${what}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}.`);
  let count = 1;
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new ValueError(`${what}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}.`);
    }
    count *= d;
    if (!Number.isSafeInteger(count)) throw new ValueError(`${what}: shape [${shape}] has too many elements.`);
  }
  return count;
}

/** Checks one header entry and returns it typed. */
function headerEntry(name: string, info: unknown, source: string): HeaderEntry {
  const what = `${source}: tensor ${JSON.stringify(name)}`;
  if (!isPlainObject(info)) throw new ValueError(`${what} must be an object {dtype, shape, data_offsets}.`);
  const { dtype, shape, data_offsets: offsets } = info;
  if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype)) {
    throw new ValueError(`${what} has unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPE_BYTES).join(', ')}).`);
  }
  const count = elementCount(shape, what);
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0) ||
    offsets[0] > offsets[1]
  ) {
    throw new ValueError(
      `${what}: data_offsets must be two non-negative integers [begin, end] with begin <= end, got ${JSON.stringify(offsets)}.`,
    );
  }
  const [begin, end] = offsets as [number, number];
  if (end - begin !== count * DTYPE_BYTES[dtype]) {
    throw new ValueError(
      `${what}: data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape [${shape}] ${dtype} needs ` +
        `${count * DTYPE_BYTES[dtype]}.`,
    );
  }
  return { name, dtype, shape: (shape as number[]).slice(), begin, end };
}

/** Requires the entries to tile `[0, dataBytes)` exactly: sorted by offset, contiguous, no overlap, no gap. */
function checkTiling(entries: HeaderEntry[], dataBytes: number, source: string): void {
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const e of sorted) {
    if (e.begin !== at) {
      const why = e.begin < at ? 'overlaps the previous tensor' : `leaves a gap of ${e.begin - at} bytes before it`;
      throw new ValueError(
        `${source}: tensor ${JSON.stringify(e.name)} starts at byte ${e.begin}, which ${why} ` +
          '(data_offsets must be contiguous and non-overlapping).',
      );
    }
    at = e.end;
  }
  if (at !== dataBytes) {
    throw new ValueError(
      `${source}: the tensors cover ${at} bytes but the data section holds ${dataBytes} ` +
        '(data_offsets must cover the data section exactly).',
    );
  }
}

/** Reads and validates the header; returns the entries and where the data section starts. */
function readHeader(bytes: Uint8Array, source: string): { entries: HeaderEntry[]; base: number } {
  if (bytes.byteLength < 8) throw new ValueError(`${source}: too short to be a safetensors file (${bytes.byteLength} bytes).`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const declared = view.getBigUint64(0, true);
  if (declared < 2n || declared > BigInt(bytes.byteLength - 8)) {
    throw new ValueError(
      `${source}: invalid header length ${declared} (the file has ${bytes.byteLength - 8} bytes after the length field).`,
    );
  }
  const headerLength = Number(declared);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLength)));
  } catch (e) {
    throw new ValueError(`${source}: the header is not valid JSON (${(e as Error).message}).`);
  }
  if (!isPlainObject(header))
    throw new ValueError(
      `${source}: the header must be a JSON object of tensors, got ${Array.isArray(header) ? 'an array' : JSON.stringify(header)}.`,
    );
  const entries: HeaderEntry[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isPlainObject(info)) throw new ValueError(`${source}: __metadata__ must be an object.`);
      continue;
    }
    entries.push(headerEntry(name, info, source));
  }
  const base = 8 + headerLength;
  checkTiling(entries, bytes.byteLength - base, source);
  return { entries, base };
}

/** The bytes `[from, to)` of `bytes`, copied when needed so that a typed array of `align` bytes can view them. */
function aligned(bytes: Uint8Array, from: number, to: number, align: number): ArrayBuffer {
  const at = bytes.byteOffset + from;
  if (at % align === 0 && bytes.buffer instanceof ArrayBuffer) return bytes.buffer.slice(at, bytes.byteOffset + to);
  return bytes.slice(from, to).buffer;
}

let f16Table: Float32Array | null = null;

/** float32 value of every float16 bit pattern (256 KiB, built on first use). */
function halfTable(): Float32Array {
  if (f16Table === null) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const sign = h & 0x8000 ? -1 : 1;
      const exp = (h >> 10) & 0x1f;
      const frac = h & 0x3ff;
      if (exp === 0) f16Table[h] = sign * 2 ** -14 * (frac / 1024);
      else if (exp === 31) f16Table[h] = frac ? NaN : sign * Infinity;
      else f16Table[h] = sign * 2 ** (exp - 15) * (1 + frac / 1024);
    }
  }
  return f16Table;
}

/** Little-endian 16-bit words of `[from, to)`. */
function words16(bytes: Uint8Array, from: number, to: number): Uint16Array {
  if (LITTLE_ENDIAN) return new Uint16Array(aligned(bytes, from, to, 2));
  const view = new DataView(bytes.buffer, bytes.byteOffset + from, to - from);
  return Uint16Array.from({ length: (to - from) / 2 }, (_, i) => view.getUint16(2 * i, true));
}

/** Converts one validated tensor's bytes to float32. */
function decodeTensor(bytes: Uint8Array, e: HeaderEntry, base: number): Float32Array {
  const from = base + e.begin;
  const to = base + e.end;
  const count = (e.end - e.begin) / DTYPE_BYTES[e.dtype];
  if (!LITTLE_ENDIAN && (e.dtype === 'F32' || e.dtype === 'F64')) {
    const view = new DataView(bytes.buffer, bytes.byteOffset + from, to - from);
    return e.dtype === 'F32'
      ? Float32Array.from({ length: count }, (_, i) => view.getFloat32(4 * i, true))
      : Float32Array.from({ length: count }, (_, i) => view.getFloat64(8 * i, true));
  }
  switch (e.dtype) {
    case 'F32':
      return new Float32Array(aligned(bytes, from, to, 4));
    case 'F64':
      return Float32Array.from(new Float64Array(aligned(bytes, from, to, 8)));
    case 'F16': {
      const table = halfTable();
      const h = words16(bytes, from, to);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = table[h[i]];
      return out;
    }
    default: {
      // BF16: the upper half of a float32
      const h = words16(bytes, from, to);
      const out = new Float32Array(count);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) bits[i] = h[i] << 16;
      return out;
    }
  }
}

/**
 * Parses a safetensors buffer into named float32 tensors. Throws a `ValueError` naming the tensor and
 * the rule for any malformed header, before allocating anything.
 */
export function parseSafetensors(buffer: ArrayBuffer | Uint8Array, source = 'safetensors'): Record<string, NamedTensor> {
  const bytes = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer);
  const { entries, base } = readHeader(bytes, source);
  const out = emptyResult();
  for (const e of entries) out[e.name] = { shape: e.shape, dtype: e.dtype, data: decodeTensor(bytes, e, base) };
  return out;
}

const F32_MAX = 3.4028234663852886e38;

/** Appends the numbers of `value` (nested arrays of numbers) to `out`, checking every leaf. */
function flattenNumbers(value: unknown, out: number[], what: string): void {
  if (Array.isArray(value)) {
    for (const v of value) flattenNumbers(v, out, what);
    return;
  }
  if (typeof value !== 'number' || !Number.isFinite(value) || Math.abs(value) > F32_MAX) {
    throw new ValueError(
      `${what}: values must be finite numbers within float32 range, got ${typeof value === 'number' ? value : JSON.stringify(value)}.`,
    );
  }
  out.push(value);
}

/** The shape of a rectangular nested array (every row at each depth has the same length). */
function nestedShape(value: unknown[], what: string): number[] {
  const shape: number[] = [];
  let level: unknown[] = [value];
  while (level.length > 0 && Array.isArray(level[0])) {
    const len = (level[0] as unknown[]).length;
    const next: unknown[] = [];
    for (const row of level) {
      if (!Array.isArray(row) || row.length !== len) throw new ValueError(`${what}: nested arrays must be rectangular.`);
      for (const v of row) next.push(v);
    }
    shape.push(len);
    level = next;
  }
  if (level.some((v) => Array.isArray(v))) throw new ValueError(`${what}: nested arrays must be rectangular.`);
  return shape;
}

/** One entry of a JSON of arrays, checked: shape of non-negative integers, as many finite numbers as it needs. */
function jsonTensor(name: string, value: unknown, source: string): NamedTensor {
  const what = `${source}: entry ${JSON.stringify(name)}`;
  let shape: number[];
  let data: unknown;
  if (isPlainObject(value) && 'shape' in value && 'data' in value) {
    elementCount(value.shape, what);
    shape = (value.shape as number[]).slice();
    data = value.data;
    if (!Array.isArray(data)) throw new ValueError(`${what}: data must be an array of numbers.`);
  } else if (Array.isArray(value)) {
    shape = nestedShape(value, what);
    data = value;
  } else {
    throw new ValueError(`${what} must be {shape, data} or a nested array.`);
  }
  const count = elementCount(shape, what);
  const values: number[] = [];
  flattenNumbers(data, values, what);
  if (values.length !== count) {
    throw new ValueError(`${what}: shape [${shape}] needs ${count} values, got ${values.length}.`);
  }
  return { shape, dtype: 'F32', data: Float32Array.from(values) };
}

/**
 * Reads a plain JSON of arrays: `{name: {shape, data}}` or `{name: nested arrays}`. Every value must be
 * a finite number (within float32 range) and the counts must match the shapes; the result has no prototype.
 */
export function parseTensorJSON(text: string, source = 'weights JSON'): Record<string, NamedTensor> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ValueError(`${source}: not valid JSON (${(e as Error).message}).`);
  }
  if (!isPlainObject(parsed)) throw new ValueError(`${source}: must be a JSON object of tensors.`);
  const out = emptyResult();
  for (const [name, value] of Object.entries(parsed)) out[name] = jsonTensor(name, value, source);
  return out;
}
