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
  if (bias === null) {
    k.gemm(false, true, N, OC, IC, inp, weight, out, false);
    return;
  }
  // Rows start as the bias and the gemm adds its products: a row copy (memcpy) instead of a
  // read-modify-write pass over the output. The kernels add each finished dot product to C, so
  // the float32 kernels give the same bits as adding the bias afterwards.
  const b = bias.length === OC ? bias : bias.subarray(0, OC);
  for (let n = 0; n < N; n++) out.set(b, n * OC);
  k.gemm(false, true, N, OC, IC, inp, weight, out, true);
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
  // Row by row into float64 sums, in the same order as a column walk, which strides OC floats and
  // misses the cache. Unrolled by 4: the loop's own overhead was half its time in V8.
  if (colSums.length < OC) colSums = new Float64Array(OC);
  const s = colSums;
  s.fill(0, 0, OC);
  const OC4 = OC & ~3;
  for (let n = 0; n < N; n++) {
    const o = n * OC;
    let j = 0;
    for (; j < OC4; j += 4) {
      s[j] += dout[o + j];
      s[j + 1] += dout[o + j + 1];
      s[j + 2] += dout[o + j + 2];
      s[j + 3] += dout[o + j + 3];
    }
    for (; j < OC; j++) s[j] += dout[o + j];
  }
  for (let j = 0; j < OC; j++) dbias[j] += s[j];
}

let colSums = new Float64Array(0); // (OC) scratch for the bias gradient, grown on demand
