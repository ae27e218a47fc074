/**
 * LayerNorm over the last dim (as torch.nn.LayerNorm: biased variance, eps inside the sqrt).
 * Forward saves the per-row mean and 1/std for the backward pass (llm.c layernorm_forward).
 */
import type { Buf } from "../kernels/types.js";

export function layerNormForward(
  out: Buf, // (N, C)
  mean: Buf, // (N) saved
  rstd: Buf, // (N) saved
  inp: Buf, // (N, C)
  weight: Buf, // (C)
  bias: Buf | null, // (C) or none
  N: number,
  C: number,
  eps: number,
): void {
  for (let n = 0; n < N; n++) {
    const o = n * C;
    let s = 0;
    for (let c = 0; c < C; c++) s += inp[o + c];
    const m = s / C;
    let v = 0;
    for (let c = 0; c < C; c++) {
      const d = inp[o + c] - m;
      v += d * d;
    }
    const r = 1 / Math.sqrt(v / C + eps);
    for (let c = 0; c < C; c++) {
      const y = (inp[o + c] - m) * r * weight[c];
      out[o + c] = bias === null ? y : y + bias[c];
    }
    mean[n] = m;
    rstd[n] = r;
  }
}

/**
 * With xhat = (x - mean)·rstd and g = dout·weight:
 *   dx = rstd·(g - mean(g) - xhat·mean(g·xhat)),  dweight += Σ_n dout·xhat,  dbias += Σ_n dout.
 */
export function layerNormBackward(
  dinp: Buf, // (N, C) +=
  dweight: Buf, // (C) +=
  dbias: Buf | null, // (C) += or none
  dout: Buf, // (N, C)
  inp: Buf, // (N, C)
  weight: Buf, // (C)
  mean: Buf, // (N)
  rstd: Buf, // (N)
  N: number,
  C: number,
): void {
  for (let n = 0; n < N; n++) {
    const o = n * C;
    const m = mean[n];
    const r = rstd[n];
    let gMean = 0;
    let gxMean = 0;
    for (let c = 0; c < C; c++) {
      const g = dout[o + c] * weight[c];
      gMean += g;
      gxMean += g * (inp[o + c] - m) * r;
    }
    gMean /= C;
    gxMean /= C;
    for (let c = 0; c < C; c++) {
      const xhat = (inp[o + c] - m) * r;
      const d = dout[o + c];
      dweight[c] += d * xhat;
      if (dbias !== null) dbias[c] += d;
      dinp[o + c] += r * (d * weight[c] - gMean - xhat * gxMean);
    }
  }
}
