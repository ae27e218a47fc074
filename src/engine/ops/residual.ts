/**
 * Residual-stream helpers: elementwise add and gradient accumulation (the residual's backward is a
 * copy-add). Loops are unrolled by 4: for a body this small V8's per-iteration overhead dominates
 * (~2× faster at N·C = 131k).
 */
import type { Buf } from "../kernels/types.js";

/** out = a + b; `out` may be the same buffer as `a` or `b`. */
export function addInto(out: Buf /* (n) */, a: Buf /* (n) */, b: Buf /* (n) */, n: number): void {
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    out[i] = a[i] + b[i];
    out[i + 1] = a[i + 1] + b[i + 1];
    out[i + 2] = a[i + 2] + b[i + 2];
    out[i + 3] = a[i + 3] + b[i + 3];
  }
  for (; i < n; i++) out[i] = a[i] + b[i];
}

/** dst += src. */
export function accumulate(dst: Buf /* (n) */, src: Buf /* (n) */, n: number): void {
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    dst[i] += src[i];
    dst[i + 1] += src[i + 1];
    dst[i + 2] += src[i + 2];
    dst[i + 3] += src[i + 3];
  }
  for (; i < n; i++) dst[i] += src[i];
}
