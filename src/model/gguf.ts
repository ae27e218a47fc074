/**
 * The GGUF container (version 3, what llama.cpp reads), little-endian:
 *   "GGUF" u32 version, u64 tensor count, u64 metadata count,
 *   metadata: (string key, u32 value type, value)*,
 *   tensor infos: (string name, u32 n_dims, u64 dims[n_dims] fastest first, u32 ggml type, u64 offset)*,
 *   padding to `general.alignment` (32), then the tensor data, each tensor aligned the same way.
 * Strings are a u64 byte length and UTF-8 bytes. Arrays are a u32 element type, a u64 count and
 * the elements. Tensors are F32 or F16 here (no quantized types); the reader is for checking what
 * we wrote and decodes F32/F16 data only.
 */
import { readFileSync } from "node:fs";
import { writeFileAtomic } from "../io/atomic.js";
import { halfToFloat } from "./safetensors.js";

/** GGUF metadata value types (gguf_type). */
const T = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
} as const;
type Scalar = "u32" | "i32" | "f32" | "bool" | "string" | "u64";

export type GgufValue =
  | { type: Scalar; value: number | boolean | string }
  | { type: "array"; of: "string"; value: string[] }
  | { type: "array"; of: "i32" | "u32" | "f32"; value: ArrayLike<number> };

/** ggml tensor types used here. */
export const GGML_F32 = 0;
export const GGML_F16 = 1;

export interface GgufTensor {
  name: string;
  /** Row-major shape as the engine stores it, slowest dimension first (GGUF lists it reversed). */
  shape: number[];
  type: typeof GGML_F32 | typeof GGML_F16;
  /** F32: Float32Array; F16: Uint16Array of half-precision bits. */
  data: Float32Array | Uint16Array;
}

const ALIGNMENT = 32;

class ByteWriter {
  private chunks: Uint8Array[] = [];
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  private pos = 0;
  length = 0;

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.flush();
    if (n > this.buf.length) {
      this.buf = new Uint8Array(n);
      this.view = new DataView(this.buf.buffer);
    }
  }
  flush(): void {
    if (this.pos > 0) this.chunks.push(this.buf.slice(0, this.pos));
    this.pos = 0;
  }
  u32(v: number): void {
    this.room(4);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
    this.length += 4;
  }
  i32(v: number): void {
    this.room(4);
    this.view.setInt32(this.pos, v, true);
    this.pos += 4;
    this.length += 4;
  }
  f32(v: number): void {
    this.room(4);
    this.view.setFloat32(this.pos, v, true);
    this.pos += 4;
    this.length += 4;
  }
  u64(v: number): void {
    this.room(8);
    this.view.setBigUint64(this.pos, BigInt(v), true);
    this.pos += 8;
    this.length += 8;
  }
  u8(v: number): void {
    this.room(1);
    this.buf[this.pos++] = v;
    this.length += 1;
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    this.length += b.length;
  }
  string(s: string): void {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    this.bytes(b);
  }
  /** Appends a large block without copying it. */
  raw(b: Uint8Array): void {
    this.flush();
    this.chunks.push(b);
    this.length += b.length;
  }
  pad(): void {
    const n = (ALIGNMENT - (this.length % ALIGNMENT)) % ALIGNMENT;
    for (let i = 0; i < n; i++) this.u8(0);
  }
  done(): Uint8Array[] {
    this.flush();
    return this.chunks;
  }
}

function writeValue(w: ByteWriter, key: string, v: GgufValue): void {
  if (v.type === "array") {
    w.u32(T.array);
    w.u32(T[v.of]);
    w.u64(v.value.length);
    if (v.of === "string") for (const s of v.value as string[]) w.string(s);
    else for (let i = 0; i < v.value.length; i++) w[v.of]((v.value as ArrayLike<number>)[i]);
    return;
  }
  w.u32(T[v.type]);
  if (v.type === "string") w.string(String(v.value));
  else if (v.type === "bool") w.u8(v.value ? 1 : 0);
  else if (typeof v.value !== "number" || !Number.isFinite(v.value))
    throw new Error(`gguf: metadata "${key}" must be a finite number, got ${String(v.value)}`);
  else w[v.type](v.value);
}

/** Encodes a GGUF file as byte chunks (tensor data chunks are views, not copies). */
export function encodeGguf(metadata: Record<string, GgufValue>, tensors: GgufTensor[]): Uint8Array[] {
  const w = new ByteWriter();
  w.bytes(Buffer.from("GGUF", "ascii"));
  w.u32(3);
  w.u64(tensors.length);
  w.u64(Object.keys(metadata).length);
  for (const [key, v] of Object.entries(metadata)) {
    w.string(key);
    writeValue(w, key, v);
  }
  let offset = 0;
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new Error(`gguf: tensor "${t.name}" listed twice`);
    names.add(t.name);
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length)
      throw new Error(`gguf: tensor "${t.name}" has shape [${t.shape}] but ${t.data.length} values`);
    w.string(t.name);
    w.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) w.u64(t.shape[i]);
    w.u32(t.type);
    w.u64(offset);
    offset += Math.ceil(t.data.byteLength / ALIGNMENT) * ALIGNMENT;
  }
  w.pad();
  for (const t of tensors) {
    w.raw(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    w.pad();
  }
  return w.done();
}

export function writeGguf(path: string, metadata: Record<string, GgufValue>, tensors: GgufTensor[]): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1)
    throw new Error("gguf: big-endian hosts are not supported");
  writeFileAtomic(path, encodeGguf(metadata, tensors));
}

export interface GgufFile {
  version: number;
  metadata: Map<string, unknown>;
  tensors: Map<string, { shape: number[]; type: number; data: Float32Array }>;
}

/** Reads a GGUF file (F32/F16 tensors) for checks; values of arrays come back as plain arrays. */
export function readGguf(path: string): GgufFile {
  const bytes = readFileSync(path);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  const fail = (what: string): never => {
    throw new Error(`${path}: ${what} (at byte ${pos})`);
  };
  const need = (n: number) => pos + n <= bytes.length || fail("unexpected end of file");
  const u32 = () => (need(4), (pos += 4), dv.getUint32(pos - 4, true));
  const u64 = () => (need(8), (pos += 8), Number(dv.getBigUint64(pos - 8, true)));
  const str = () => {
    const n = u64();
    need(n);
    pos += n;
    return bytes.subarray(pos - n, pos).toString("utf8");
  };
  const scalar = (type: number): unknown => {
    switch (type) {
      case T.u8:
        return (need(1), bytes[pos++]);
      case T.i8:
        return (need(1), dv.getInt8(pos++));
      case T.u16:
        return (need(2), (pos += 2), dv.getUint16(pos - 2, true));
      case T.i16:
        return (need(2), (pos += 2), dv.getInt16(pos - 2, true));
      case T.u32:
        return u32();
      case T.i32:
        return (need(4), (pos += 4), dv.getInt32(pos - 4, true));
      case T.f32:
        return (need(4), (pos += 4), dv.getFloat32(pos - 4, true));
      case T.bool:
        return (need(1), bytes[pos++] !== 0);
      case T.string:
        return str();
      case T.u64:
        return u64();
      case T.i64:
        return (need(8), (pos += 8), Number(dv.getBigInt64(pos - 8, true)));
      case T.f64:
        return (need(8), (pos += 8), dv.getFloat64(pos - 8, true));
      default:
        return fail(`unknown metadata type ${type}`);
    }
  };
  if (bytes.subarray(0, 4).toString("ascii") !== "GGUF") fail("not a GGUF file (magic)");
  pos = 4;
  const version = u32();
  const nTensors = u64();
  const nKv = u64();
  const metadata = new Map<string, unknown>();
  for (let i = 0; i < nKv; i++) {
    const key = str();
    const type = u32();
    if (type === T.array) {
      const of = u32();
      const n = u64();
      const arr: unknown[] = [];
      for (let j = 0; j < n; j++) arr.push(scalar(of));
      metadata.set(key, arr);
    } else metadata.set(key, scalar(type));
  }
  const infos: { name: string; shape: number[]; type: number; offset: number }[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const nd = u32();
    const dims: number[] = [];
    for (let d = 0; d < nd; d++) dims.push(u64());
    infos.push({ name, shape: dims.reverse(), type: u32(), offset: u64() });
  }
  const align = Number(metadata.get("general.alignment") ?? ALIGNMENT);
  const dataStart = Math.ceil(pos / align) * align;
  const tensors = new Map<string, { shape: number[]; type: number; data: Float32Array }>();
  for (const t of infos) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const at = dataStart + t.offset;
    const size =
      t.type === GGML_F32
        ? 4
        : t.type === GGML_F16
          ? 2
          : fail(`tensor "${t.name}": type ${t.type} not decoded`);
    if (at + n * size > bytes.length) fail(`tensor "${t.name}" runs past the end of the file`);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++)
      data[i] = size === 4 ? dv.getFloat32(at + 4 * i, true) : halfToFloat(dv.getUint16(at + 2 * i, true));
    tensors.set(t.name, { shape: t.shape, type: t.type, data });
  }
  return { version, metadata, tensors };
}
