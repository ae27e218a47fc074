/**
 * Numeric test helpers shared by the test suite: closeness with a readable report (max abs and
 * relative difference plus the first mismatches, as llm.c's check_tensor prints them), and a
 * central finite-difference gradient check.
 */
import type { Buf } from "./kernels/types.js";

export interface CloseReport {
  ok: boolean;
  maxAbs: number;
  maxRel: number;
  message: string;
}

/** |a-b| ≤ atol + rtol·|b| elementwise. */
export function allClose(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  rtol: number,
  atol: number,
): CloseReport {
  if (a.length !== b.length) {
    return { ok: false, maxAbs: Infinity, maxRel: Infinity, message: `length ${a.length} != ${b.length}` };
  }
  let maxAbs = 0;
  let maxRel = 0;
  const bad: string[] = [];
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    const rel = d / Math.max(Math.abs(b[i]), 1e-30);
    if (!(d <= maxAbs)) maxAbs = d;
    if (d > atol && rel > maxRel) maxRel = rel;
    if (!(d <= atol + rtol * Math.abs(b[i])) && bad.length < 5) bad.push(`[${i}] ${a[i]} vs ${b[i]}`);
  }
  const ok = bad.length === 0;
  return {
    ok,
    maxAbs,
    maxRel,
    message: `maxAbs=${maxAbs.toExponential(3)} maxRel=${maxRel.toExponential(3)} ${bad.join(" ")}`,
  };
}

/** Throws with the report when not close. */
export function expectAllClose(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  rtol: number,
  atol: number,
  what = "values",
): CloseReport {
  const r = allClose(a, b, rtol, atol);
  if (!r.ok) throw new Error(`${what} differ: ${r.message}`);
  return r;
}

/**
 * Central finite differences of a scalar function of `x` (perturbed in place and restored).
 * Use float64 buffers: in float32 the truncation/rounding trade-off leaves ~3 digits at best.
 */
export function numericGrad(f: () => number, x: Buf, eps = 1e-6, indices?: number[]): Float64Array {
  const idx = indices ?? Array.from({ length: x.length }, (_, i) => i);
  const g = new Float64Array(idx.length);
  for (let n = 0; n < idx.length; n++) {
    const i = idx[n];
    const orig = x[i];
    x[i] = orig + eps;
    const fp = f();
    x[i] = orig - eps;
    const fm = f();
    x[i] = orig;
    g[n] = (fp - fm) / (2 * eps);
  }
  return g;
}
