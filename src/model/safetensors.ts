/**
 * Reading and writing the safetensors format (Hugging Face checkpoints and our own fixtures):
 *   [u64 little-endian N][N bytes of JSON header, space-padded][data section]
 * The header maps tensor names to {dtype, shape, data_offsets: [begin, end)} relative to the data
 * section, plus an optional "__metadata__" map of string to string.
 *
 * Reading validates the whole file before decoding anything and converts to the types the engine
 * computes with: F16/BF16 widen to Float32Array, I64 narrows to Int32Array (overflow is an error).
 * Writing covers F32, F64, I32 and F16 (given as half-precision bits), tensors sorted by name,
 * header padded to 8 bytes.
 * Left out: lazy/mmap loading (files are read whole) and the 8-bit float and U16/U32/U64 dtypes.
 */
import { readFileSync } from "node:fs";
import { endianness } from "node:os";
import { writeFileAtomic } from "../io/atomic.js";

export type TensorData = Float32Array | Float64Array | Int32Array | Uint8Array;

export interface SafeTensor {
  /** dtype as stored in the file ("F16" stays "F16" even though `data` is a Float32Array). */
  dtype: string;
  shape: number[];
  data: TensorData;
}

export interface SafetensorsFile {
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
}

/** What the writer accepts; `dtype` defaults from the array type (a Uint16Array holds F16 bits). */
export interface TensorToWrite {
  dtype?: "F32" | "F64" | "I32" | "F16";
  shape: number[];
  data: Float32Array | Float64Array | Int32Array | Uint16Array;
}

/** Bytes per element of each dtype the reader decodes. */
const DTYPE_SIZE: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  U8: 1,
  BOOL: 1,
};

/** The official reader refuses headers above 100 MB; so do we (a corrupt length is usually huge). */
const MAX_HEADER_BYTES = 100_000_000;

const LITTLE_ENDIAN = endianness() === "LE";

export class SafetensorsError extends Error {
  override name = "SafetensorsError";
}

function fail(source: string, what: string): never {
  throw new SafetensorsError(`${source}: ${what}`);
}

export function readSafetensors(path: string): SafetensorsFile {
  return parseSafetensors(readFileSync(path), path);
}

export function parseSafetensors(bytes: Uint8Array, sourceName = "<buffer>"): SafetensorsFile {
  const src = sourceName;
  if (bytes.length < 8) fail(src, `file is ${bytes.length} bytes, too short for the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen64 = view.getBigUint64(0, true);
  if (headerLen64 > BigInt(bytes.length - 8)) {
    fail(src, `header length ${headerLen64} exceeds the ${bytes.length - 8} bytes after the length field`);
  }
  const headerLen = Number(headerLen64);
  if (headerLen > MAX_HEADER_BYTES)
    fail(src, `header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  if (headerLen < 2) fail(src, `header length ${headerLen} is too small for a JSON object`);

  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLen));
  } catch {
    fail(src, `header is not valid UTF-8`);
  }
  if (text[0] !== "{") fail(src, `header does not start with '{'`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    fail(src, `header is not valid JSON (${(err as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail(src, `header is not a JSON object`);
  }

  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: string; shape: number[]; begin: number; end: number }[] = [];

  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof raw !== "object" || raw === null || Array.isArray(raw))
        fail(src, `__metadata__ is not an object`);
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") fail(src, `__metadata__ key "${k}" is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const where = `tensor "${name}"`;
    if (typeof raw !== "object" || raw === null || Array.isArray(raw))
      fail(src, `${where}: entry is not an object`);
    const info = raw as Record<string, unknown>;
    for (const key of Object.keys(info)) {
      if (key !== "dtype" && key !== "shape" && key !== "data_offsets")
        fail(src, `${where}: unknown key "${key}"`);
    }
    const dtype = info.dtype;
    if (typeof dtype !== "string") fail(src, `${where}: dtype is missing or not a string`);
    const size = DTYPE_SIZE[dtype];
    if (size === undefined) {
      fail(src, `${where}: unsupported dtype "${dtype}" (supported: ${Object.keys(DTYPE_SIZE).join(", ")})`);
    }
    const shape = info.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(src, `${where}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    const offsets = info.data_offsets;
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offsets[0] > offsets[1]
    ) {
      fail(
        src,
        `${where}: data_offsets ${JSON.stringify(offsets)} is not [begin, end] with 0 <= begin <= end`,
      );
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataLen) {
      fail(
        src,
        `${where}: data_offsets [${begin}, ${end}] exceed the ${dataLen}-byte data section (file truncated?)`,
      );
    }
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (count * size !== end - begin) {
      fail(
        src,
        `${where}: ${end - begin} bytes but shape [${shape}] of ${dtype} needs ${count} x ${size} = ${count * size}`,
      );
    }
    entries.push({ name, dtype, shape: shape as number[], begin, end });
  }

  // The tensors must tile the data section exactly: no overlap, no gap, nothing trailing.
  const byOffset = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  let prev: (typeof entries)[number] | undefined;
  for (const e of byOffset) {
    if (e.begin < pos) {
      fail(
        src,
        `tensor "${e.name}" [${e.begin}, ${e.end}) overlaps tensor "${prev!.name}" [${prev!.begin}, ${prev!.end})`,
      );
    }
    if (e.begin > pos)
      fail(src, `tensor "${e.name}" starts at ${e.begin}, leaving unused bytes [${pos}, ${e.begin})`);
    pos = e.end;
    prev = e;
  }
  if (pos !== dataLen)
    fail(src, `data section has ${dataLen - pos} unused bytes after the last tensor (at ${pos})`);

  const tensors = new Map<string, SafeTensor>();
  for (const e of entries) {
    const raw = bytes.subarray(dataStart + e.begin, dataStart + e.end);
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: decode(raw, e.dtype, src, e.name) });
  }
  return { tensors, metadata };
}

/** Copies `raw` into a fresh, aligned buffer (the file's offsets need not be aligned). */
function alignedCopy(raw: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(raw.length);
  copy.set(raw);
  return copy.buffer;
}

function decode(raw: Uint8Array, dtype: string, src: string, name: string): TensorData {
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  switch (dtype) {
    case "F32": {
      if (LITTLE_ENDIAN) return new Float32Array(alignedCopy(raw));
      const out = new Float32Array(raw.length / 4);
      for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(4 * i, true);
      return out;
    }
    case "F64": {
      if (LITTLE_ENDIAN) return new Float64Array(alignedCopy(raw));
      const out = new Float64Array(raw.length / 8);
      for (let i = 0; i < out.length; i++) out[i] = dv.getFloat64(8 * i, true);
      return out;
    }
    case "I32": {
      if (LITTLE_ENDIAN) return new Int32Array(alignedCopy(raw));
      const out = new Int32Array(raw.length / 4);
      for (let i = 0; i < out.length; i++) out[i] = dv.getInt32(4 * i, true);
      return out;
    }
    case "F16": {
      const out = new Float32Array(raw.length / 2);
      for (let i = 0; i < out.length; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true));
      return out;
    }
    case "BF16": {
      // bfloat16 is the top half of a float32 (bits and floats share the host's byte order).
      const out = new Float32Array(raw.length / 2);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < out.length; i++) bits[i] = dv.getUint16(2 * i, true) << 16;
      return out;
    }
    case "I64": {
      const out = new Int32Array(raw.length / 8);
      for (let i = 0; i < out.length; i++) {
        const lo = dv.getInt32(8 * i, true);
        const hi = dv.getInt32(8 * i + 4, true);
        // Fits in int32 exactly when the high word is the sign extension of the low word.
        if (hi !== lo >> 31) {
          fail(
            src,
            `tensor "${name}": I64 value ${dv.getBigInt64(8 * i, true)} at index ${i} does not fit in int32`,
          );
        }
        out[i] = lo;
      }
      return out;
    }
    case "U8":
      return new Uint8Array(alignedCopy(raw));
    case "BOOL": {
      const out = new Uint8Array(alignedCopy(raw));
      const bad = out.findIndex((v) => v > 1);
      if (bad >= 0) fail(src, `tensor "${name}": BOOL value ${out[bad]} at index ${bad} is not 0 or 1`);
      return out;
    }
    default:
      fail(src, `tensor "${name}": unsupported dtype "${dtype}"`);
  }
}

/** IEEE 754 binary16 → number (exact: every half is representable as a float32). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero and subnormals
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** float32 → IEEE half bits, round to nearest even (overflow → ±Inf, tiny → subnormal or 0). */
export function floatToHalf(x: number): number {
  halfScratch[0] = x;
  const bits = halfBits[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf, NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // rounds to zero
    mant |= 0x800000; // subnormal half: shift the implicit bit in
    const shift = 14 - e;
    const half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rest > mid || (rest === mid && half & 1) ? 1 : 0));
  }
  const half = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and may reach Inf).
  return sign | (half + (rest > 0x1000 || (rest === 0x1000 && half & 1) ? 1 : 0));
}

const halfScratch = new Float32Array(1);
const halfBits = new Uint32Array(halfScratch.buffer);

export function toHalf(src: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = floatToHalf(src[i]);
  return out;
}

const WRITE_DTYPE = (data: TensorToWrite["data"]): "F32" | "F64" | "I32" | "F16" =>
  data instanceof Float32Array
    ? "F32"
    : data instanceof Float64Array
      ? "F64"
      : data instanceof Uint16Array
        ? "F16"
        : "I32";

/**
 * Encodes tensors as safetensors bytes (header first, then one chunk per tensor, in name order).
 * Metadata keys are sorted too, so equal inputs always give equal bytes.
 */
export function encodeSafetensors(
  tensors: Map<string, TensorToWrite> | Record<string, TensorToWrite>,
  metadata: Record<string, string> = {},
  targetName = "<buffer>",
): Uint8Array[] {
  const map = tensors instanceof Map ? tensors : new Map(Object.entries(tensors));
  const names = [...map.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  const metaKeys = Object.keys(metadata).sort();
  if (metaKeys.length > 0) {
    const meta: Record<string, string> = {};
    for (const k of metaKeys) {
      if (typeof metadata[k] !== "string") fail(targetName, `metadata key "${k}" is not a string`);
      meta[k] = metadata[k];
    }
    header.__metadata__ = meta;
  }
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    const t = map.get(name)!;
    const where = `tensor "${name}"`;
    if (name === "" || name === "__metadata__") fail(targetName, `${where}: invalid tensor name`);
    const dtype = WRITE_DTYPE(t.data);
    if (!(
      t.data instanceof Float32Array ||
      t.data instanceof Float64Array ||
      t.data instanceof Int32Array ||
      t.data instanceof Uint16Array
    )) {
      fail(
        targetName,
        `${where}: data must be a Float32Array, Float64Array, Int32Array or Uint16Array (F16)`,
      );
    }
    if (t.dtype !== undefined && t.dtype !== dtype)
      fail(targetName, `${where}: dtype ${t.dtype} but data is ${dtype}`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(targetName, `${where}: shape [${t.shape}] is not a list of non-negative integers`);
    }
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length)
      fail(targetName, `${where}: shape [${t.shape}] has ${count} elements, data has ${t.data.length}`);
    const bytes = littleEndianBytes(t.data);
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  // The spec pads the header with spaces so the data section starts 8-byte aligned.
  const jsonBytes = Buffer.byteLength(json, "utf8");
  json += " ".repeat((8 - (jsonBytes % 8)) % 8);
  const headerBytes = Buffer.from(json, "utf8");
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  return [prefix, headerBytes, ...chunks];
}

/** Writes a safetensors file atomically (a reader sees the old file or the complete new one). */
export function writeSafetensors(
  path: string,
  tensors: Map<string, TensorToWrite> | Record<string, TensorToWrite>,
  metadata: Record<string, string> = {},
): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata, path));
}

function littleEndianBytes(data: TensorToWrite["data"]): Uint8Array {
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (LITTLE_ENDIAN) return view;
  const out = new Uint8Array(data.byteLength);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) {
    if (data instanceof Float32Array) dv.setFloat32(4 * i, data[i], true);
    else if (data instanceof Float64Array) dv.setFloat64(8 * i, data[i], true);
    else if (data instanceof Uint16Array) dv.setUint16(2 * i, data[i], true);
    else dv.setInt32(4 * i, data[i], true);
  }
  return out;
}
