import { test } from "node:test";
import assert from "node:assert/strict";
import { expectAllClose } from "../src/engine/check.js";
import { Rng } from "../src/engine/rng.js";
import { rmsNormBackward, rmsNormForward } from "../src/engine/ops/rmsnorm.js";
import { accumulated, dot, gradCheck, randn, toF32 } from "./ops-gradcheck.js";

test("rmsnorm of a known row divides by the root mean square, without centering", () => {
  // x = [3, 4]: mean(x²) = 12.5
  const out = new Float64Array(2);
  const rstd = new Float64Array(1);
  rmsNormForward(out, rstd, new Float64Array([3, 4]), new Float64Array([1, 0.5]), 1, 2, 0);
  const r = 1 / Math.sqrt(12.5);
  expectAllClose(out, [3 * r, 2 * r], 1e-15, 0, "rmsnorm row");
  expectAllClose(rstd, [r], 1e-15, 0, "rstd");
});

test("rmsnorm of a zero row is zero, not NaN (eps)", () => {
  const out = new Float64Array(3).fill(NaN);
  const rstd = new Float64Array(1);
  rmsNormForward(out, rstd, new Float64Array(3), new Float64Array([1, 1, 1]), 1, 3, 1e-6);
  assert.deepEqual(Array.from(out), [0, 0, 0]);
  const dinp = new Float64Array(3);
  rmsNormBackward(
    dinp,
    new Float64Array(3),
    new Float64Array([1, 2, 3]),
    new Float64Array(3),
    new Float64Array([1, 1, 1]),
    rstd,
    1,
    3,
  );
  assert.ok(dinp.every(Number.isFinite));
});

test("rmsnorm gradients match finite differences (float64)", () => {
  const rng = new Rng(5);
  const [N, C] = [3, 6];
  const inp = randn(rng, N * C);
  const weight = randn(rng, C);
  const w = randn(rng, N * C);
  const out = new Float64Array(N * C);
  const rstd = new Float64Array(N);
  const loss = () => {
    rmsNormForward(out, rstd, inp, weight, N, C, 1e-6);
    return dot(out, w);
  };
  loss();
  // All analytic grads first: the finite-difference loop leaves `rstd` from a perturbed input.
  const dinp = accumulated(N * C, (g) => rmsNormBackward(g, new Float64Array(C), w, inp, weight, rstd, N, C));
  const dweight = accumulated(C, (g) =>
    rmsNormBackward(new Float64Array(N * C), g, w, inp, weight, rstd, N, C),
  );
  gradCheck("rmsnorm dinp", inp, dinp, loss);
  gradCheck("rmsnorm dweight", weight, dweight, loss);
});

test("rmsnorm float32 forward agrees with float64", () => {
  const rng = new Rng(6);
  const [N, C] = [4, 64];
  const inp = randn(rng, N * C, 3);
  const weight = randn(rng, C);
  const o64 = new Float64Array(N * C);
  const o32 = new Float32Array(N * C);
  rmsNormForward(o64, new Float64Array(N), inp, weight, N, C, 1e-6);
  rmsNormForward(o32, new Float32Array(N), toF32(inp), toF32(weight), N, C, 1e-6);
  expectAllClose(o32, o64, 1e-5, 1e-5, "rmsnorm f32 vs f64");
});
