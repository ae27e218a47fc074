/**
 * The kernel interface: the few dense primitives that dominate the cost of a step. The engine
 * selects one implementation at start-up (see select.ts): `ts` (readable reference, any float
 * type), `wasm` (WebAssembly SIMD, float32, portable), `native` (the C addon, float32, fastest).
 * The other ops of a model reach the same tier through the op table (ops/table.ts).
 *
 * Conventions: row-major, contiguous; arrays are passed as views (subarray), so an implementation
 * may use byteOffset. Every implementation splits work by output rows only, so its results are
 * bit-identical for any thread count.
 */

/** A float buffer: float32 in training, float64 in finite-difference gradient checks. */
export type Buf = Float32Array | Float64Array;

export interface Kernels {
  readonly name: string;
  /**
   * C (M,N) = op(A) @ op(B), or C += ... when `accumulate`.
   * op(A) is (M,K): A is stored (M,K), or (K,M) when transA.
   * op(B) is (K,N): B is stored (K,N), or (N,K) when transB.
   */
  gemm(
    transA: boolean,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    A: Buf,
    B: Buf,
    C: Buf,
    accumulate: boolean,
  ): void;
}
