/**
 * RMSNorm (as Hugging Face LlamaRMSNorm): y = x · rsqrt(mean(x²) + eps) · weight, no mean
 * subtraction, no bias. Forward saves 1/rms per row.
 */
import type { Buf } from "../kernels/types.js";

export function rmsNormForward(
  out: Buf, // (N, C)
  rstd: Buf, // (N) saved
  inp: Buf, // (N, C)
  weight: Buf, // (C)
  N: number,
  C: number,
  eps: number,
): void {
  for (let n = 0; n < N; n++) {
    const o = n * C;
    let ss = 0;
    for (let c = 0; c < C; c++) ss += inp[o + c] * inp[o + c];
    const r = 1 / Math.sqrt(ss / C + eps);
    for (let c = 0; c < C; c++) out[o + c] = inp[o + c] * r * weight[c];
    rstd[n] = r;
  }
}

/** With g = dout·weight and xhat = x·rstd:  dx = rstd·(g - xhat·mean(g·xhat)),  dweight += Σ_n dout·xhat. */
export function rmsNormBackward(
  dinp: Buf, // (N, C) +=
  dweight: Buf, // (C) +=
  dout: Buf, // (N, C)
  inp: Buf, // (N, C)
  weight: Buf, // (C)
  rstd: Buf, // (N)
  N: number,
  C: number,
): void {
  for (let n = 0; n < N; n++) {
    const o = n * C;
    const r = rstd[n];
    let gx = 0;
    for (let c = 0; c < C; c++) gx += dout[o + c] * weight[c] * inp[o + c] * r;
    gx /= C;
    for (let c = 0; c < C; c++) {
      const xhat = inp[o + c] * r;
      const d = dout[o + c];
      dweight[c] += d * xhat;
      dinp[o + c] += r * (d * weight[c] - xhat * gx);
    }
  }
}
