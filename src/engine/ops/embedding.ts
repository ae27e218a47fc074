/**
 * Token embedding lookup and learned absolute position embedding (GPT-2 wte / wpe).
 * Forward writes `out`; backward scatters (+=) rows into the table gradients. Ids are trusted
 * to be in range (the tokenizer and data loader check them once, at the edge).
 */
import type { Buf } from "../kernels/types.js";

/** out[n,:] = wte[ids[n],:]. */
export function embeddingForward(
  out: Buf, // (N, C)
  ids: Int32Array, // (N)
  wte: Buf, // (V, C)
  N: number,
  C: number,
): void {
  for (let n = 0; n < N; n++) {
    const src = ids[n] * C;
    const dst = n * C;
    for (let c = 0; c < C; c++) out[dst + c] = wte[src + c];
  }
}

/** dwte[ids[n],:] += dout[n,:]. */
export function embeddingBackward(
  dwte: Buf, // (V, C)
  dout: Buf, // (N, C)
  ids: Int32Array, // (N)
  N: number,
  C: number,
): void {
  for (let n = 0; n < N; n++) {
    const dst = ids[n] * C;
    const src = n * C;
    for (let c = 0; c < C; c++) dwte[dst + c] += dout[src + c];
  }
}

/** x[n,:] += wpe[pos[n],:], in place (positions are explicit so packed/shifted rows work). */
export function addPositionForward(
  x: Buf, // (N, C) in place
  wpe: Buf, // (P, C)
  pos: Int32Array, // (N)
  N: number,
  C: number,
): void {
  for (let n = 0; n < N; n++) {
    const src = pos[n] * C;
    const dst = n * C;
    for (let c = 0; c < C; c++) x[dst + c] += wpe[src + c];
  }
}

/** dwpe[pos[n],:] += dx[n,:]. The gradient w.r.t. x passes through unchanged (identity). */
export function addPositionBackward(
  dwpe: Buf, // (P, C)
  dx: Buf, // (N, C)
  pos: Int32Array, // (N)
  N: number,
  C: number,
): void {
  for (let n = 0; n < N; n++) {
    const dst = pos[n] * C;
    const src = n * C;
    for (let c = 0; c < C; c++) dwpe[dst + c] += dx[src + c];
  }
}
