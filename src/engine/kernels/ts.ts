/**
 * Reference kernels in plain TypeScript. Works on float32 and float64 buffers; used by gradient
 * checks (float64) and as the oracle the faster implementations are tested against. Accumulates
 * each output element in a float64 register, then stores.
 */
import type { Buf, Kernels } from "./types.js";

export function gemmReference(
  transA: boolean,
  transB: boolean,
  M: number,
  N: number,
  K: number,
  A: Buf,
  B: Buf,
  C: Buf,
  accumulate: boolean,
): void {
  // Strides so that op(A)[i,k] = A[i*aI + k*aK] and op(B)[k,j] = B[k*bK + j*bJ].
  const aI = transA ? 1 : K;
  const aK = transA ? M : 1;
  const bK = transB ? 1 : N;
  const bJ = transB ? K : 1;
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let acc = 0;
      let ai = i * aI;
      let bj = j * bJ;
      for (let k = 0; k < K; k++) {
        acc += A[ai] * B[bj];
        ai += aK;
        bj += bK;
      }
      const o = i * N + j;
      C[o] = accumulate ? C[o] + acc : acc;
    }
  }
}

export const tsKernels: Kernels = { name: "ts", gemm: gemmReference };
