/**
 * Fully connected layer with the weight in PyTorch nn.Linear layout (OC, IC), so checkpoints load
 * by name without transposes: out = inp @ weightᵀ + bias. The matmuls go through `k.gemm`.
 */
import type { Buf, Kernels } from "../kernels/types.js";

export function linearForward(
  k: Kernels,
  out: Buf, // (N, OC)
  inp: Buf, // (N, IC)
  weight: Buf, // (OC, IC)
  bias: Buf | null, // (OC) or none
  N: number,
  IC: number,
  OC: number,
): void {
  k.gemm(false, true, N, OC, IC, inp, weight, out, false);
  if (bias === null) return;
  for (let n = 0; n < N; n++) {
    const o = n * OC;
    for (let j = 0; j < OC; j++) out[o + j] += bias[j];
  }
}

/** dinp += dout @ weight;  dweight += doutᵀ @ inp;  dbias += Σ_n dout. Pass dinp = null for the first layer. */
export function linearBackward(
  k: Kernels,
  dinp: Buf | null, // (N, IC) += or none
  dweight: Buf, // (OC, IC) +=
  dbias: Buf | null, // (OC) += or none
  dout: Buf, // (N, OC)
  inp: Buf, // (N, IC)
  weight: Buf, // (OC, IC)
  N: number,
  IC: number,
  OC: number,
): void {
  if (dinp !== null) k.gemm(false, false, N, IC, OC, dout, weight, dinp, true);
  k.gemm(true, false, OC, IC, N, dout, inp, dweight, true);
  if (dbias === null) return;
  for (let j = 0; j < OC; j++) {
    let s = 0;
    for (let n = 0; n < N; n++) s += dout[n * OC + j];
    dbias[j] += s;
  }
}
