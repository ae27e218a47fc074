import { test } from "node:test";
import assert from "node:assert/strict";
import { expectAllClose } from "../src/engine/check.js";
import { Rng } from "../src/engine/rng.js";
import { layerNormBackward, layerNormForward } from "../src/engine/ops/layernorm.js";
import { accumulated, dot, gradCheck, randn, toF32 } from "./ops-gradcheck.js";

test("layernorm of a known row uses the biased variance", () => {
  // x = [1,2,3,4]: mean 2.5, biased variance 1.25 -> xhat = (x - 2.5)/sqrt(1.25)
  const out = new Float64Array(4);
  const mean = new Float64Array(1);
  const rstd = new Float64Array(1);
  const weight = new Float64Array([1, 2, 1, 1]);
  const bias = new Float64Array([0, 0, 0, 10]);
  layerNormForward(out, mean, rstd, new Float64Array([1, 2, 3, 4]), weight, bias, 1, 4, 0);
  const s = Math.sqrt(1.25);
  expectAllClose(out, [-1.5 / s, (2 * -0.5) / s, 0.5 / s, 10 + 1.5 / s], 1e-15, 1e-15, "layernorm row");
  assert.equal(mean[0], 2.5);
  expectAllClose(rstd, [1 / s], 1e-15, 0, "rstd");
});

test("layernorm of a constant row gives the bias (eps keeps it finite) and of a shifted row is shift-invariant", () => {
  const out = new Float64Array(3);
  const mean = new Float64Array(1);
  const rstd = new Float64Array(1);
  const ones = new Float64Array([1, 1, 1]);
  layerNormForward(
    out,
    mean,
    rstd,
    new Float64Array([7, 7, 7]),
    ones,
    new Float64Array([0.5, -1, 2]),
    1,
    3,
    1e-5,
  );
  assert.deepEqual(Array.from(out), [0.5, -1, 2]);
  const a = new Float64Array(3);
  const b = new Float64Array(3);
  layerNormForward(a, mean, rstd, new Float64Array([1, 2, 4]), ones, null, 1, 3, 1e-5);
  layerNormForward(b, mean, rstd, new Float64Array([1e4 + 1, 1e4 + 2, 1e4 + 4]), ones, null, 1, 3, 1e-5);
  expectAllClose(b, a, 1e-10, 1e-10, "shifted row");
});

test("layernorm gradients match finite differences (float64), with and without bias", () => {
  const rng = new Rng(3);
  const [N, C] = [3, 5];
  const inp = randn(rng, N * C);
  const weight = randn(rng, C);
  const bias = randn(rng, C);
  const w = randn(rng, N * C);
  const out = new Float64Array(N * C);
  const mean = new Float64Array(N);
  const rstd = new Float64Array(N);
  for (const b of [bias, null]) {
    const loss = () => {
      layerNormForward(out, mean, rstd, inp, weight, b, N, C, 1e-5);
      return dot(out, w);
    };
    loss();
    const dinp = accumulated(N * C, (g) =>
      layerNormBackward(g, new Float64Array(C), null, w, inp, weight, mean, rstd, N, C),
    );
    const dweight = accumulated(C, (g) =>
      layerNormBackward(new Float64Array(N * C), g, null, w, inp, weight, mean, rstd, N, C),
    );
    const dbias = accumulated(C, (g) =>
      layerNormBackward(new Float64Array(N * C), new Float64Array(C), g, w, inp, weight, mean, rstd, N, C),
    );
    // Analytic grads are all taken before the finite-difference loop perturbs mean/rstd.
    gradCheck("layernorm dinp", inp, dinp, loss);
    gradCheck("layernorm dweight", weight, dweight, loss);
    if (b !== null) gradCheck("layernorm dbias", b, dbias, loss);
  }
});

test("layernorm float32 forward agrees with float64", () => {
  const rng = new Rng(4);
  const [N, C] = [4, 64];
  const inp = randn(rng, N * C, 3);
  const weight = randn(rng, C);
  const bias = randn(rng, C);
  const o64 = new Float64Array(N * C);
  const o32 = new Float32Array(N * C);
  layerNormForward(o64, new Float64Array(N), new Float64Array(N), inp, weight, bias, N, C, 1e-5);
  layerNormForward(
    o32,
    new Float32Array(N),
    new Float32Array(N),
    toF32(inp),
    toF32(weight),
    toF32(bias),
    N,
    C,
    1e-5,
  );
  expectAllClose(o32, o64, 1e-5, 1e-5, "layernorm f32 vs f64");
});

test("layernorm backward: dinp and dweight do not depend on whether dbias is given (C = 9: 4-wide blocks + rest)", () => {
  const rng = new Rng(5);
  const [N, C] = [3, 9];
  const inp = randn(rng, N * C);
  const weight = randn(rng, C);
  const dout = randn(rng, N * C);
  const mean = new Float64Array(N);
  const rstd = new Float64Array(N);
  layerNormForward(new Float64Array(N * C), mean, rstd, inp, weight, null, N, C, 1e-5);
  const run = (withBias: boolean) => {
    const dinp = new Float64Array(N * C).fill(0.5);
    const dweight = new Float64Array(C).fill(0.5);
    const dbias = withBias ? new Float64Array(C).fill(0.5) : null;
    layerNormBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
    return { dinp, dweight, dbias };
  };
  const a = run(true);
  const b = run(false);
  expectAllClose(a.dinp, b.dinp, 0, 0, "dinp");
  expectAllClose(a.dweight, b.dweight, 0, 0, "dweight");
  for (let c = 0; c < C; c++) {
    let s = 0.5;
    for (let n = 0; n < N; n++) s += dout[n * C + c];
    assert.ok(Math.abs(a.dbias![c] - s) < 1e-14, `dbias[${c}] = ${a.dbias![c]}, want ${s}`);
  }
});
