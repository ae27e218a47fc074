/** Residual-stream helpers: elementwise add and gradient accumulation (the residual's backward is a copy-add). */
import type { Buf } from "../kernels/types.js";

/** out = a + b; `out` may be the same buffer as `a` or `b`. */
export function addInto(out: Buf /* (n) */, a: Buf /* (n) */, b: Buf /* (n) */, n: number): void {
  for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/** dst += src. */
export function accumulate(dst: Buf /* (n) */, src: Buf /* (n) */, n: number): void {
  for (let i = 0; i < n; i++) dst[i] += src[i];
}
