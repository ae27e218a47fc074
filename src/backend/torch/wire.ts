/**
 * The bulk-array encoding of the worker protocol (docs/worker-protocol.md): a typed array travels
 * as {dtype: "i32" | "f32" | "f64", b64: base64 of its little-endian bytes}. Decoding checks the
 * dtype and the length, so a malformed reply fails here with a line naming the field.
 */

export type WireDtype = "i32" | "f32" | "f64";

export interface WireArray {
  dtype: WireDtype;
  b64: string;
}

const WIDTH: Record<WireDtype, number> = { i32: 4, f32: 4, f64: 8 };

/** Node runs on little-endian machines only; the check keeps the encoding honest elsewhere. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function encodeArray(a: Int32Array | Float32Array | Float64Array): WireArray {
  if (!LITTLE_ENDIAN) throw new Error("the worker protocol needs a little-endian host");
  const dtype: WireDtype = a instanceof Int32Array ? "i32" : a instanceof Float32Array ? "f32" : "f64";
  return { dtype, b64: Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64") };
}

export const i32 = (xs: ArrayLike<number>): WireArray => encodeArray(Int32Array.from(xs));
export const f64 = (xs: ArrayLike<number>): WireArray => encodeArray(Float64Array.from(xs));

function bytesOf(value: unknown, dtype: WireDtype, field: string): Buffer {
  const v = value as Partial<WireArray> | null;
  if (typeof v !== "object" || v === null || v.dtype !== dtype || typeof v.b64 !== "string")
    throw new Error(`field ${field}: expected a ${dtype} array ({dtype, b64})`);
  const bytes = Buffer.from(v.b64, "base64");
  if (bytes.length % WIDTH[dtype] !== 0)
    throw new Error(`field ${field}: ${bytes.length} bytes is not a whole number of ${dtype} values`);
  return bytes;
}

function checkLength(n: number, length: number | undefined, field: string): void {
  if (length !== undefined && n !== length)
    throw new Error(`field ${field}: ${n} values, expected ${length}`);
}

export function decodeF64(value: unknown, field: string, length?: number): Float64Array {
  const bytes = bytesOf(value, "f64", field);
  const out = new Float64Array(bytes.length / 8);
  new Uint8Array(out.buffer).set(bytes);
  checkLength(out.length, length, field);
  return out;
}

export function decodeI32(value: unknown, field: string, length?: number): Int32Array {
  const bytes = bytesOf(value, "i32", field);
  const out = new Int32Array(bytes.length / 4);
  new Uint8Array(out.buffer).set(bytes);
  checkLength(out.length, length, field);
  return out;
}
