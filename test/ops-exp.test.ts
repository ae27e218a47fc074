import { test } from "node:test";
import assert from "node:assert/strict";
import { exp } from "../src/engine/ops/exp.js";

/** Largest |exp(x) − Math.exp(x)| / Math.exp(x) in units of 2^−52 over n points of [lo, hi]. */
function worstUlps(lo: number, hi: number, n: number): { ulps: number; at: number } {
  let ulps = 0;
  let at = lo;
  for (let i = 0; i <= n; i++) {
    // The sine jitter moves points off any grid that could line up with the 1/64 table steps.
    const x = lo + ((hi - lo) * i) / n + 1e-7 * Math.sin(i);
    const ref = Math.exp(x);
    const e = Math.abs(exp(x) - ref) / ref / Number.EPSILON;
    if (e > ulps) [ulps, at] = [e, x];
  }
  return { ulps, at };
}

test("exp agrees with Math.exp to 3 ulps over the normal range and near 0", () => {
  for (const [lo, hi] of [
    [-708, 709],
    [-30, 30],
    [-1, 1],
    [-1e-3, 1e-3],
  ]) {
    const { ulps, at } = worstUlps(lo, hi, 200_000);
    assert.ok(ulps <= 3, `[${lo}, ${hi}]: ${ulps.toFixed(2)} ulps at x = ${at}`);
  }
});

test("exp known values: e^0 = 1 exactly, e^1, e^(ln 2) = 2, e^(-x)·e^x = 1", () => {
  assert.equal(exp(0), 1);
  assert.equal(exp(-0), 1);
  assert.ok(Math.abs(exp(1) - Math.E) <= 2 * Number.EPSILON * Math.E);
  assert.ok(Math.abs(exp(Math.LN2) - 2) <= 4 * Number.EPSILON);
  for (const x of [0.3, 7.25, 40, 300]) assert.ok(Math.abs(exp(-x) * exp(x) - 1) < 1e-15, `x = ${x}`);
});

test("exp edge cases: underflow to 0, overflow to Infinity, subnormals and NaN as Math.exp", () => {
  assert.equal(exp(-Infinity), 0);
  assert.equal(exp(Infinity), Infinity);
  assert.ok(Number.isNaN(exp(NaN)));
  assert.equal(exp(-746), 0);
  assert.equal(exp(-1e4), 0);
  assert.equal(exp(710), Infinity);
  assert.equal(exp(1e4), Infinity);
  // Just inside the float64 range at both ends (the fast path hands these to Math.exp).
  for (const x of [709.78, -745, -740, -708.5]) assert.equal(exp(x), Math.exp(x), `x = ${x}`);
  assert.ok(exp(709.78) < Infinity && exp(-745) > 0);
});
