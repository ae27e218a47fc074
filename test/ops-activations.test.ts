import { test } from "node:test";
import assert from "node:assert/strict";
import { expectAllClose } from "../src/engine/check.js";
import { Rng } from "../src/engine/rng.js";
import {
  geluBackward,
  geluBackwardFromOutput,
  geluForward,
  swigluBackward,
  swigluForward,
} from "../src/engine/ops/activations.js";
import { accumulated, dot, gradCheck, randn, toF32 } from "./ops-gradcheck.js";

test("gelu (tanh approximation) known values", () => {
  const out = new Float64Array(4);
  geluForward(out, new Float64Array([0, 1, -1, 3]), 4);
  // torch.nn.functional.gelu(x, approximate="tanh"): 0, 0.8411920, -0.1588080, 2.9963627
  expectAllClose(out, [0, 0.841192, -0.158808, 2.9963627], 0, 1e-6, "gelu");
});

test("gelu saturates without NaN at ±50 and ±1e4", () => {
  const x = new Float64Array([1e4, -1e4, 50, -50]);
  const out = new Float64Array(4);
  geluForward(out, x, 4);
  assert.deepEqual(Array.from(out), [1e4, -0, 50, -0]);
  const d = new Float64Array(4);
  geluBackward(d, x, new Float64Array([1, 1, 1, 1]), 4);
  assert.deepEqual(Array.from(d), [1, 0, 1, 0]);
});

test("swiglu known values: silu(gate)·up", () => {
  const out = new Float64Array(3);
  swigluForward(out, new Float64Array([0, 1, 2]), new Float64Array([5, 1, -1]), 3);
  const silu1 = 1 / (1 + Math.exp(-1));
  expectAllClose(out, [0, silu1, (-2 * 1) / (1 + Math.exp(-2))], 1e-15, 0, "swiglu");
  assert.ok(Math.abs(silu1 - 0.7310585786300049) < 1e-15);
});

test("swiglu saturates without NaN at gate = ±1e4", () => {
  const gate = new Float64Array([1e4, -1e4]);
  const up = new Float64Array([2, 2]);
  const out = new Float64Array(2);
  swigluForward(out, gate, up, 2);
  assert.equal(out[0], 2e4);
  assert.equal(Math.abs(out[1]), 0);
  const dg = new Float64Array(2);
  const du = new Float64Array(2);
  swigluBackward(dg, du, new Float64Array([1, 1]), gate, up, 2);
  assert.deepEqual(Array.from(dg).map(Math.abs), [2, 0]);
  assert.deepEqual(Array.from(du).map(Math.abs), [1e4, 0]);
});

test("gelu and swiglu gradients match finite differences (float64)", () => {
  const rng = new Rng(9);
  const n = 12;
  const x = randn(rng, n, 2);
  const up = randn(rng, n);
  const w = randn(rng, n);
  const out = new Float64Array(n);
  const geluLoss = () => (geluForward(out, x, n), dot(out, w));
  gradCheck(
    "gelu dinp",
    x,
    accumulated(n, (g) => geluBackward(g, x, w, n)),
    geluLoss,
  );
  const swigluLoss = () => (swigluForward(out, x, up, n), dot(out, w));
  gradCheck(
    "swiglu dgate",
    x,
    accumulated(n, (g) => swigluBackward(g, new Float64Array(n), w, x, up, n)),
    swigluLoss,
  );
  gradCheck(
    "swiglu dup",
    up,
    accumulated(n, (g) => swigluBackward(new Float64Array(n), g, w, x, up, n)),
    swigluLoss,
  );
});

test("activations float32 forward agrees with float64", () => {
  const rng = new Rng(10);
  const n = 256;
  const x = randn(rng, n, 3);
  const up = randn(rng, n);
  const o64 = new Float64Array(n);
  const o32 = new Float32Array(n);
  geluForward(o64, x, n);
  geluForward(o32, toF32(x), n);
  expectAllClose(o32, o64, 1e-6, 1e-6, "gelu f32 vs f64");
  swigluForward(o64, x, up, n);
  swigluForward(o32, toF32(x), toF32(up), n);
  expectAllClose(o32, o64, 1e-6, 1e-6, "swiglu f32 vs f64");
});

test("geluBackwardFromOutput (s = out / x) equals geluBackward and matches finite differences", () => {
  const rng = new Rng(11);
  const n = 64;
  const x = randn(rng, n, 3);
  x[0] = 0;
  x[1] = 1e-300; // out/x near 0 must still give σ ≈ 1/2
  x[2] = 1e4;
  x[3] = -1e4; // out = −0: s = 0, no NaN
  x[4] = -9;
  const w = randn(rng, n);
  const out = new Float64Array(n);
  geluForward(out, x, n);
  const viaOut = accumulated(n, (g) => geluBackwardFromOutput(g, x, out, w, n));
  const viaExp = accumulated(n, (g) => geluBackward(g, x, w, n));
  expectAllClose(viaOut, viaExp, 1e-13, 1e-15, "from output vs recomputed");
  assert.ok(viaOut.every(Number.isFinite));
  const m = 12;
  const xs = x.subarray(5, 5 + m);
  const ws = w.subarray(0, m);
  const o = new Float64Array(m);
  const loss = () => (geluForward(o, xs, m), dot(o, ws));
  loss();
  const saved = Float64Array.from(o);
  gradCheck(
    "gelu dinp from output",
    xs,
    accumulated(m, (g) => geluBackwardFromOutput(g, xs, saved, ws, m)),
    loss,
  );
  // float32 buffers: out's rounding enters s; the gradient stays within a few 1e-7 of float64.
  const x32 = toF32(x.subarray(5));
  const out32 = new Float32Array(x32.length);
  geluForward(out32, x32, x32.length);
  const g32 = new Float32Array(x32.length);
  geluBackwardFromOutput(g32, x32, out32, toF32(w.subarray(5)), x32.length);
  const g64 = accumulated(x32.length, (g) =>
    geluBackward(g, Float64Array.from(x32), Float64Array.from(toF32(w.subarray(5))), x32.length),
  );
  expectAllClose(g32, g64, 2e-6, 2e-6, "float32 from output vs float64");
});

test("gelu forward: the 4-wide loop and the remainder agree, and only n elements are written", () => {
  const rng = new Rng(12);
  const x = randn(rng, 11, 2);
  const full = new Float64Array(11);
  geluForward(full, x, 11);
  for (let n = 0; n <= 10; n++) {
    const out = new Float64Array(11).fill(9);
    geluForward(out, x.subarray(11 - n), n); // the last n inputs: remainder elements land in other lanes
    for (let i = 0; i < 11; i++) assert.equal(out[i], i < n ? full[11 - n + i] : 9, `n=${n} [${i}]`);
  }
});
