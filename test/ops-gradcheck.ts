/**
 * Helpers for the op tests: seeded random buffers, a weighted-sum scalar loss, and a gradient
 * check that compares a backward pass against central finite differences in float64.
 * Backward passes must accumulate, so analytic gradients are taken from buffers pre-filled with
 * a constant that is subtracted afterwards (a backward that overwrites fails the check).
 */
import { numericGrad } from "../src/engine/check.js";
import type { Buf } from "../src/engine/kernels/types.js";
import { Rng } from "../src/engine/rng.js";

/** Normwise relative error bound for float64 gradient checks (see src/engine/ops/README.md). */
export const GRAD_TOL = 1e-6;
/** Finite-difference step for float64 checks. */
export const FD_STEP = 1e-5;
const PREFILL = 0.25;

export function randn(rng: Rng, n: number, scale = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return a;
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Runs `backward` into a zero-meaning buffer pre-filled with a constant and returns the increment. */
export function accumulated(n: number, backward: (g: Float64Array) => void): Float64Array {
  const g = new Float64Array(n).fill(PREFILL);
  backward(g);
  for (let i = 0; i < n; i++) g[i] -= PREFILL;
  return g;
}

/**
 * Throws unless max|analytic − numeric| ≤ tol · max(max|numeric|, 1e-3); returns the normwise
 * relative error. `loss` must recompute the scalar from the current contents of `x`.
 */
export function gradCheck(
  what: string,
  x: Buf,
  analytic: ArrayLike<number>,
  loss: () => number,
  tol = GRAD_TOL,
): number {
  const numeric = numericGrad(loss, x, FD_STEP);
  let maxDiff = 0;
  let maxRef = 0;
  let worst = 0;
  for (let i = 0; i < numeric.length; i++) {
    const d = Math.abs(analytic[i] - numeric[i]);
    if (!(d <= maxDiff)) {
      maxDiff = d;
      worst = i;
    }
    maxRef = Math.max(maxRef, Math.abs(numeric[i]));
  }
  const rel = maxDiff / Math.max(maxRef, 1e-3);
  if (!(rel <= tol)) {
    throw new Error(
      `${what}: gradient check failed, rel err ${rel.toExponential(2)} > ${tol} at [${worst}] analytic ${analytic[worst]} vs numeric ${numeric[worst]}`,
    );
  }
  return rel;
}

export function toF32(a: ArrayLike<number>): Float32Array {
  return Float32Array.from(a);
}
