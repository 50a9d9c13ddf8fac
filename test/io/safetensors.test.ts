import { expect } from 'chai';
import { IS_NODE } from '../../src/backend.js';
import { parseSafetensors, parseTensorJSON } from '../../src/io/safetensors.js';
import { ValueError } from '../../src/utils/errors.js';
import { expectThrows } from '../kit/index.js';

/** A safetensors file from a header object (or raw header text) and the data section; `pad` bytes precede it in the buffer. */
function file(header: unknown, data: Uint8Array = new Uint8Array(0), pad = 0): Uint8Array {
  const h = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const buf = new Uint8Array(pad + 8 + h.length + data.length);
  new DataView(buf.buffer).setBigUint64(pad, BigInt(h.length), true);
  buf.set(h, pad + 8);
  buf.set(data, pad + 8 + h.length);
  return buf.subarray(pad);
}

/** Little-endian 16-bit words as bytes. */
function u16Bytes(words: number[]): Uint8Array {
  const b = new Uint8Array(2 * words.length);
  const v = new DataView(b.buffer);
  words.forEach((w, i) => v.setUint16(2 * i, w, true));
  return b;
}

/** float16 by its definition (1 sign, 5 exponent, 10 fraction bits; bias 15), independent of the reader. */
function halfValue(h: number): number {
  const sign = h >> 15 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  if (e === 31) return m === 0 ? sign * Infinity : NaN;
  return e === 0 ? sign * m * 2 ** -24 : sign * (1024 + m) * 2 ** (e - 25);
}

/** bfloat16 by its definition (1 sign, 8 exponent, 7 fraction bits; bias 127). */
function bfloatValue(h: number): number {
  const sign = h >> 15 ? -1 : 1;
  const e = (h >> 7) & 255;
  const m = h & 127;
  if (e === 255) return m === 0 ? sign * Infinity : NaN;
  return e === 0 ? sign * m * 2 ** -133 : sign * (128 + m) * 2 ** (e - 134);
}

function sameValues(actual: Float32Array, expected: number[]): void {
  expect(actual.length).to.equal(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], Math.fround(expected[i]))) throw new Error(`value ${i}: got ${actual[i]}, expected ${expected[i]}`);
  }
}

describe('parseSafetensors', () => {
  it('decodes every F16 and BF16 bit pattern exactly, at aligned and unaligned offsets', () => {
    const words = Array.from({ length: 65536 }, (_, i) => i);
    for (const pad of [0, 1]) {
      // `pad` and a trailing space in the header each shift the data section by one byte (odd addresses).
      for (const extra of ['', ' ']) {
        const header =
          `{"h":{"dtype":"F16","shape":[65536],"data_offsets":[0,131072]},` +
          `"b":{"dtype":"BF16","shape":[256,256],"data_offsets":[131072,262144]}}${extra}`;
        const data = new Uint8Array(262144);
        data.set(u16Bytes(words), 0);
        data.set(u16Bytes(words), 131072);
        const t = parseSafetensors(file(header, data, pad));
        sameValues(t.h.data, words.map(halfValue));
        sameValues(t.b.data, words.map(bfloatValue));
        expect(t.b.shape).to.deep.equal([256, 256]);
      }
    }
  });

  it('decodes known F16, BF16, F32 and F64 values', () => {
    const f32 = new Uint8Array(8);
    new DataView(f32.buffer).setFloat32(0, -1.5, true);
    new DataView(f32.buffer).setFloat32(4, 3.25e-3, true);
    const f64 = new Uint8Array(8);
    new DataView(f64.buffer).setFloat64(0, 0.1, true);
    const data = new Uint8Array([...u16Bytes([0x3c00, 0x7bff, 0x0001, 0x8000]), ...u16Bytes([0x3f80, 0x4049, 0xff80]), ...f32, ...f64]);
    const t = parseSafetensors(
      file(
        {
          __metadata__: { format: 'pt' },
          h: { dtype: 'F16', shape: [4], data_offsets: [0, 8] },
          b: { dtype: 'BF16', shape: [3], data_offsets: [8, 14] },
          f: { dtype: 'F32', shape: [2], data_offsets: [14, 22] },
          d: { dtype: 'F64', shape: [1, 1], data_offsets: [22, 30] },
        },
        data,
      ),
    );
    sameValues(t.h.data, [1, 65504, 2 ** -24, -0]);
    sameValues(t.b.data, [1, 3.140625, -Infinity]);
    sameValues(t.f.data, [-1.5, 3.25e-3]);
    sameValues(t.d.data, [0.1]);
    expect(Object.keys(t).sort()).to.deep.equal(['b', 'd', 'f', 'h']);
  });

  it('rejects a huge shape before allocating it (a 100-byte file cannot reserve 8 GiB)', () => {
    const buf = file({ w: { dtype: 'F32', shape: [2 ** 31], data_offsets: [0, 4] } }, new Uint8Array(4));
    expect(buf.byteLength).to.be.below(120);
    const arrayBytes = () => (IS_NODE ? process.memoryUsage().arrayBuffers : 0); // Node reports ArrayBuffer memory
    const before = arrayBytes();
    expectThrows(
      () => parseSafetensors(buf),
      /tensor "w": data_offsets \[0, 4\] span 4 bytes but shape \[2147483648\] F32 needs 8589934592/,
    );
    expect(arrayBytes() - before).to.be.below(1 << 20);
  });

  it('rejects malformed headers with an error naming the rule', () => {
    const four = new Uint8Array(4);
    const w = (extra: Record<string, unknown>) => ({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4], ...extra } });
    const cases: Array<[Uint8Array, RegExp]> = [
      [new Uint8Array(4), /too short/],
      [
        (() => {
          const b = file({});
          new DataView(b.buffer, b.byteOffset).setBigUint64(0, 1000n, true);
          return b;
        })(),
        /invalid header length 1000/,
      ],
      [file('{"w": [}'), /not valid JSON/],
      [file([1, 2]), /header must be a JSON object.*an array/],
      [file('42'), /header must be a JSON object/],
      [file('null'), /header must be a JSON object/],
      [file({ w: 3 }, four), /tensor "w" must be an object/],
      [file(w({ dtype: 'I64' }), four), /tensor "w" has unsupported dtype "I64"/],
      [file(w({ shape: [-1] }), four), /shape must be an array of non-negative integers, got \[-1\]/],
      [file(w({ shape: [0.5, 2] }), four), /shape must be an array of non-negative integers/],
      [file(w({ shape: '1' }), four), /shape must be an array/],
      [file(w({ data_offsets: [-4, 0] }), four), /data_offsets must be two non-negative integers/],
      [file(w({ data_offsets: [0.5, 4.5] }), four), /data_offsets must be two non-negative integers/],
      [file(w({ data_offsets: [4, 0] }), four), /begin <= end/],
      [file(w({ data_offsets: [0, 4, 8] }), four), /data_offsets must be two/],
      [file(w({ data_offsets: [0, 8] }), new Uint8Array(8)), /span 8 bytes but shape \[1\] F32 needs 4/],
      [file(w({}), new Uint8Array(6)), /cover 4 bytes but the data section holds 6/],
      [file(w({ data_offsets: [4, 8] }), new Uint8Array(8)), /starts at byte 4, which leaves a gap of 4 bytes/],
      [
        file({ ...w({}), v: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)),
        /starts at byte 0, which overlaps the previous tensor/,
      ],
      [file(w({ data_offsets: [0, 4] }), new Uint8Array(0)), /cover 4 bytes but the data section holds 0/],
      [file({ __metadata__: 'x' }), /__metadata__ must be an object/],
    ];
    for (const [buf, pattern] of cases) {
      const e = expectThrows(() => parseSafetensors(buf, 'model.safetensors'), pattern);
      expect(e).to.be.instanceOf(ValueError);
      if (buf.byteLength > 8) expect(e.message).to.match(/^model\.safetensors: /);
    }
  });

  it('keeps a tensor named __proto__ as an ordinary entry of a prototype-free result', () => {
    const data = new Uint8Array(8);
    new DataView(data.buffer).setFloat32(0, 2, true);
    new DataView(data.buffer).setFloat32(4, 5, true);
    const t = parseSafetensors(
      file(
        '{"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' +
          '"constructor":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
        data,
      ),
    );
    expect(Object.getPrototypeOf(t)).to.equal(null);
    expect(Object.keys(t).sort()).to.deep.equal(['__proto__', 'constructor']);
    expect(Array.from(t['__proto__'].data)).to.deep.equal([2]);
    expect(Array.from(t['constructor'].data)).to.deep.equal([5]);
    expect(({} as Record<string, unknown>).shape).to.equal(undefined);
  });

  it('accepts zero-size tensors and an empty file', () => {
    expect(Object.keys(parseSafetensors(file({})))).to.deep.equal([]);
    const t = parseSafetensors(file({ e: { dtype: 'F32', shape: [0, 3], data_offsets: [0, 0] } }));
    expect(t.e.data.length).to.equal(0);
    expect(t.e.shape).to.deep.equal([0, 3]);
  });
});

describe('parseTensorJSON', () => {
  it('reads {shape, data} and nested arrays into a prototype-free result', () => {
    const t = parseTensorJSON('{"a": {"shape": [2, 2], "data": [1, 2, 3, 4]}, "b": [[1, 2, 3], [4, 5, 6]], "__proto__": [7]}');
    expect(Object.getPrototypeOf(t)).to.equal(null);
    expect(t.a.shape).to.deep.equal([2, 2]);
    expect(Array.from(t.a.data)).to.deep.equal([1, 2, 3, 4]);
    expect(t.b.shape).to.deep.equal([2, 3]);
    expect(Array.from(t.b.data)).to.deep.equal([1, 2, 3, 4, 5, 6]);
    expect(Array.from(t['__proto__'].data)).to.deep.equal([7]);
  });

  it('rejects counts that do not match shapes, non-finite or non-numeric values and ragged arrays', () => {
    const cases: Array<[string, RegExp]> = [
      ['[1, 2]', /must be a JSON object of tensors/],
      ['3', /must be a JSON object of tensors/],
      ['{"a": {"shape": [2, 2], "data": [1, 2, 3]}}', /entry "a": shape \[2,2\] needs 4 values, got 3/],
      ['{"a": {"shape": [2147483648], "data": [1]}}', /shape \[2147483648\] needs 2147483648 values, got 1/],
      ['{"a": {"shape": [-1], "data": []}}', /shape must be an array of non-negative integers/],
      ['{"a": {"shape": [1.5], "data": [1]}}', /shape must be an array of non-negative integers/],
      ['{"a": {"shape": [1], "data": 1}}', /data must be an array of numbers/],
      ['{"a": [1, 1e999]}', /values must be finite numbers within float32 range, got Infinity/],
      ['{"a": [1, 1e39]}', /values must be finite numbers within float32 range/],
      ['{"a": [1, "2"]}', /values must be finite numbers.*"2"/],
      ['{"a": [1, null]}', /values must be finite numbers/],
      ['{"a": [[1, 2], [3]]}', /nested arrays must be rectangular/],
      ['{"a": [[1, 2], 3]}', /nested arrays must be rectangular/],
      ['{"a": [1, [2]]}', /nested arrays must be rectangular/],
      ['{"a": "x"}', /entry "a" must be \{shape, data\} or a nested array/],
      ['{"a": ', /not valid JSON/],
    ];
    for (const [text, pattern] of cases) expect(expectThrows(() => parseTensorJSON(text), pattern)).to.be.instanceOf(ValueError);
  });
});
