import { test } from "node:test";
import assert from "node:assert/strict";
import { expectAllClose } from "../src/engine/check.js";
import { Rng } from "../src/engine/rng.js";
import {
  addPositionBackward,
  addPositionForward,
  embeddingBackward,
  embeddingForward,
} from "../src/engine/ops/embedding.js";
import { accumulated, dot, gradCheck, randn, toF32 } from "./ops-gradcheck.js";

test("embedding picks rows and position adds rows by explicit positions", () => {
  const wte = new Float64Array([0, 1, 10, 11, 20, 21]); // (V=3, C=2)
  const wpe = new Float64Array([100, 200, 300, 400]); // (P=2, C=2)
  const out = new Float64Array(6); // (N=3, C=2)
  embeddingForward(out, new Int32Array([2, 0, 2]), wte, 3, 2);
  assert.deepEqual(Array.from(out), [20, 21, 0, 1, 20, 21]);
  addPositionForward(out, wpe, new Int32Array([0, 1, 1]), 3, 2);
  assert.deepEqual(Array.from(out), [120, 221, 300, 401, 320, 421]);
});

test("embedding backward sums the gradients of repeated ids", () => {
  const dwte = new Float64Array(6); // (V=3, C=2)
  embeddingBackward(dwte, new Float64Array([1, 2, 3, 4, 5, 6]), new Int32Array([2, 0, 2]), 3, 2);
  assert.deepEqual(Array.from(dwte), [3, 4, 0, 0, 6, 8]);
  const dwpe = new Float64Array(4);
  addPositionBackward(dwpe, new Float64Array([1, 2, 3, 4, 5, 6]), new Int32Array([1, 1, 0]), 3, 2);
  assert.deepEqual(Array.from(dwpe), [5, 6, 4, 6]);
});

test("embedding and position gradients match finite differences (float64)", () => {
  const rng = new Rng(1);
  const [N, C, V, P] = [5, 3, 4, 6];
  const ids = new Int32Array([1, 3, 1, 0, 3]);
  const pos = new Int32Array([0, 1, 2, 5, 1]);
  const wte = randn(rng, V * C);
  const wpe = randn(rng, P * C);
  const w = randn(rng, N * C); // upstream gradient
  const out = new Float64Array(N * C);
  const loss = () => {
    embeddingForward(out, ids, wte, N, C);
    addPositionForward(out, wpe, pos, N, C);
    return dot(out, w);
  };
  gradCheck(
    "dwte",
    wte,
    accumulated(V * C, (g) => embeddingBackward(g, w, ids, N, C)),
    loss,
  );
  gradCheck(
    "dwpe",
    wpe,
    accumulated(P * C, (g) => addPositionBackward(g, w, pos, N, C)),
    loss,
  );
});

test("embedding float32 forward agrees with float64", () => {
  const rng = new Rng(2);
  const [N, C, V] = [4, 8, 5];
  const ids = new Int32Array([4, 0, 2, 2]);
  const pos = new Int32Array([0, 1, 2, 3]);
  const wte = randn(rng, V * C);
  const wpe = randn(rng, 4 * C);
  const o64 = new Float64Array(N * C);
  const o32 = new Float32Array(N * C);
  embeddingForward(o64, ids, wte, N, C);
  addPositionForward(o64, wpe, pos, N, C);
  embeddingForward(o32, ids, toF32(wte), N, C);
  addPositionForward(o32, toF32(wpe), pos, N, C);
  expectAllClose(o32, o64, 1e-6, 1e-6, "embedding f32 vs f64");
});
