import { test } from "node:test";
import { expectAllClose } from "../src/engine/check.js";
import { tsKernels } from "../src/engine/kernels/ts.js";
import { Rng } from "../src/engine/rng.js";
import { linearBackward, linearForward } from "../src/engine/ops/linear.js";
import { accumulated, dot, gradCheck, randn, toF32 } from "./ops-gradcheck.js";

test("linear uses the (OC, IC) weight layout: out = inp @ weightᵀ + bias", () => {
  const inp = new Float64Array([1, 2, 3, 4, 5, 6]); // (N=2, IC=3)
  const weight = new Float64Array([1, 0, 0, 0, 1, 1]); // (OC=2, IC=3): rows pick x0 and x1+x2
  const out = new Float64Array(4);
  linearForward(tsKernels, out, inp, weight, new Float64Array([10, 20]), 2, 3, 2);
  expectAllClose(out, [11, 25, 14, 31], 0, 0, "linear with bias");
  linearForward(tsKernels, out, inp, weight, null, 2, 3, 2);
  expectAllClose(out, [1, 5, 4, 11], 0, 0, "linear without bias");
});

test("linear gradients match finite differences (float64)", () => {
  const rng = new Rng(7);
  const [N, IC, OC] = [4, 3, 5];
  const inp = randn(rng, N * IC);
  const weight = randn(rng, OC * IC);
  const bias = randn(rng, OC);
  const w = randn(rng, N * OC);
  const out = new Float64Array(N * OC);
  const loss = () => {
    linearForward(tsKernels, out, inp, weight, bias, N, IC, OC);
    return dot(out, w);
  };
  const back = (dinp: Float64Array | null, dw: Float64Array, db: Float64Array | null) =>
    linearBackward(tsKernels, dinp, dw, db, w, inp, weight, N, IC, OC);
  gradCheck(
    "linear dinp",
    inp,
    accumulated(N * IC, (g) => back(g, new Float64Array(OC * IC), null)),
    loss,
  );
  gradCheck(
    "linear dweight",
    weight,
    accumulated(OC * IC, (g) => back(null, g, null)),
    loss,
  );
  gradCheck(
    "linear dbias",
    bias,
    accumulated(OC, (g) => back(null, new Float64Array(OC * IC), g)),
    loss,
  );
});

test("linear float32 forward agrees with float64", () => {
  const rng = new Rng(8);
  const [N, IC, OC] = [8, 64, 16];
  const inp = randn(rng, N * IC);
  const weight = randn(rng, OC * IC, 0.1);
  const bias = randn(rng, OC);
  const o64 = new Float64Array(N * OC);
  const o32 = new Float32Array(N * OC);
  linearForward(tsKernels, o64, inp, weight, bias, N, IC, OC);
  linearForward(tsKernels, o32, toF32(inp), toF32(weight), toF32(bias), N, IC, OC);
  expectAllClose(o32, o64, 1e-5, 1e-5, "linear f32 vs f64");
});
