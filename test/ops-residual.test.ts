import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/engine/rng.js";
import { accumulate, addInto } from "../src/engine/ops/residual.js";
import { dot, gradCheck, randn } from "./ops-gradcheck.js";

test("addInto adds, also when the output aliases an input; accumulate adds in place", () => {
  const a = new Float64Array([1, 2, 3]);
  const b = new Float64Array([10, 20, 30]);
  const out = new Float64Array(3);
  addInto(out, a, b, 3);
  assert.deepEqual(Array.from(out), [11, 22, 33]);
  addInto(a, a, b, 3);
  assert.deepEqual(Array.from(a), [11, 22, 33]);
  accumulate(b, a, 2);
  assert.deepEqual(Array.from(b), [21, 42, 30], "only the first n elements");
});

test("residual gradient is the upstream gradient for both inputs (finite differences)", () => {
  const rng = new Rng(11);
  const n = 6;
  const a = randn(rng, n);
  const b = randn(rng, n);
  const w = randn(rng, n);
  const out = new Float64Array(n);
  const loss = () => (addInto(out, a, b, n), dot(out, w));
  // Backward of out = a + b: da += dout, db += dout, which is `accumulate`.
  const da = new Float64Array(n);
  accumulate(da, w, n);
  gradCheck("residual da", a, da, loss);
  gradCheck("residual db", b, da, loss);
});

test("addInto and accumulate touch exactly the first n elements for every n mod 4", () => {
  const rng = new Rng(12);
  for (let n = 0; n <= 9; n++) {
    const a = randn(rng, 10);
    const b = randn(rng, 10);
    const out = new Float64Array(10).fill(7);
    addInto(out, a, b, n);
    for (let i = 0; i < 10; i++) assert.equal(out[i], i < n ? a[i] + b[i] : 7, `addInto n=${n} [${i}]`);
    const dst = Float64Array.from(a);
    accumulate(dst, b, n);
    for (let i = 0; i < 10; i++) assert.equal(dst[i], i < n ? a[i] + b[i] : a[i], `accumulate n=${n} [${i}]`);
  }
});
