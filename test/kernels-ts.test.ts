import { test } from "node:test";
import assert from "node:assert/strict";
import { gemmReference } from "../src/engine/kernels/ts.js";

test("reference gemm matches hand-computed products for every transpose", () => {
  // A = [[1,2,3],[4,5,6]] (2x3), B = [[1,0],[0,1],[1,1]] (3x2) -> AB = [[4,5],[10,11]]
  const A = new Float64Array([1, 2, 3, 4, 5, 6]);
  const At = new Float64Array([1, 4, 2, 5, 3, 6]);
  const B = new Float64Array([1, 0, 0, 1, 1, 1]);
  const Bt = new Float64Array([1, 0, 1, 0, 1, 1]);
  const want = [4, 5, 10, 11];
  for (const [ta, tb, a, b] of [
    [false, false, A, B],
    [true, false, At, B],
    [false, true, A, Bt],
    [true, true, At, Bt],
  ] as const) {
    const C = new Float64Array(4);
    gemmReference(ta, tb, 2, 2, 3, a, b, C, false);
    assert.deepEqual(Array.from(C), want, `transA=${ta} transB=${tb}`);
    gemmReference(ta, tb, 2, 2, 3, a, b, C, true);
    assert.deepEqual(
      Array.from(C),
      want.map((x) => 2 * x),
    );
  }
});
