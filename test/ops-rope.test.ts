import { test } from "node:test";
import assert from "node:assert/strict";
import { expectAllClose } from "../src/engine/check.js";
import { Rng } from "../src/engine/rng.js";
import { ropeApply, ropeTables } from "../src/engine/ops/rope.js";
import { dot, gradCheck, randn, toF32 } from "./ops-gradcheck.js";

test("rope tables: position 0 is the identity, inv_freq_i = theta^(-2i/hd)", () => {
  const hd = 8;
  const { cos, sin } = ropeTables(hd, 5, 10000);
  assert.equal(cos.length, 5 * 4);
  for (let i = 0; i < 4; i++) assert.deepEqual([cos[i], sin[i]], [1, 0]);
  // position 3, pair i = 2: angle 3 · 10000^(-4/8) = 3 / 100
  assert.ok(Math.abs(cos[3 * 4 + 2] - Math.cos(0.03)) < 1e-15);
  assert.ok(Math.abs(sin[3 * 4 + 2] - Math.sin(0.03)) < 1e-15);
  assert.throws(() => ropeTables(5, 2, 10000), /headDim must be even/);
});

test("rope rotates unit vectors within the pair (i, i + hd/2), as HF rotate_half", () => {
  const hd = 4;
  const { cos, sin } = ropeTables(hd, 3, 10000);
  const a = 2; // position 2, pair 0 has frequency 1: angle 2
  const e0 = new Float64Array([1, 0, 0, 0]);
  ropeApply(e0, new Int32Array([2]), cos, sin, 1, 1, hd, false);
  expectAllClose(e0, [Math.cos(a), 0, Math.sin(a), 0], 0, 1e-15, "R e0");
  const e2 = new Float64Array([0, 0, 1, 0]);
  ropeApply(e2, new Int32Array([2]), cos, sin, 1, 1, hd, false);
  expectAllClose(e2, [-Math.sin(a), 0, Math.cos(a), 0], 0, 1e-15, "R e2");
});

test("rope matches x·cos + rotate_half(x)·sin written out, per head", () => {
  const rng = new Rng(12);
  const [N, H, hd] = [3, 2, 6];
  const pos = new Int32Array([0, 4, 7]);
  const { cos, sin } = ropeTables(hd, 8, 500);
  const x = randn(rng, N * H * hd);
  const y = x.slice();
  ropeApply(y, pos, cos, sin, N, H, hd, false);
  const half = hd / 2;
  const want = new Float64Array(x.length);
  for (let n = 0; n < N; n++)
    for (let h = 0; h < H; h++) {
      const row = x.subarray((n * H + h) * hd, (n * H + h + 1) * hd);
      const rot = [...Array.from(row.subarray(half)).map((v) => -v), ...Array.from(row.subarray(0, half))];
      for (let j = 0; j < hd; j++) {
        const angle = pos[n] / Math.pow(500, (2 * (j % half)) / hd);
        want[(n * H + h) * hd + j] = row[j] * Math.cos(angle) + rot[j] * Math.sin(angle);
      }
    }
  expectAllClose(y, want, 1e-13, 1e-13, "rope vs rotate_half");
});

test("rope preserves norms, inverse undoes it, and q·k depends only on the position difference", () => {
  const rng = new Rng(13);
  const hd = 8;
  const { cos, sin } = ropeTables(hd, 20, 10000);
  const q = randn(rng, hd);
  const k = randn(rng, hd);
  const rot = (x: Float64Array, p: number) => {
    const y = x.slice();
    ropeApply(y, new Int32Array([p]), cos, sin, 1, 1, hd, false);
    return y;
  };
  const r = rot(q, 9);
  assert.ok(Math.abs(dot(r, r) - dot(q, q)) < 1e-12);
  ropeApply(r, new Int32Array([9]), cos, sin, 1, 1, hd, true);
  expectAllClose(r, q, 0, 1e-14, "inverse");
  const s1 = dot(rot(q, 7), rot(k, 3));
  const s2 = dot(rot(q, 15), rot(k, 11));
  assert.ok(Math.abs(s1 - s2) < 1e-12, `${s1} vs ${s2}`);
});

test("rope backward (inverse rotation of the gradient) matches finite differences", () => {
  const rng = new Rng(14);
  const [N, H, hd] = [3, 2, 4];
  const pos = new Int32Array([1, 5, 2]);
  const { cos, sin } = ropeTables(hd, 6, 10000);
  const x = randn(rng, N * H * hd);
  const w = randn(rng, N * H * hd);
  const y = new Float64Array(x.length);
  const loss = () => {
    y.set(x);
    ropeApply(y, pos, cos, sin, N, H, hd, false);
    return dot(y, w);
  };
  const dx = w.slice();
  ropeApply(dx, pos, cos, sin, N, H, hd, true);
  gradCheck("rope dx", x, dx, loss);
});

test("rope float32 agrees with float64", () => {
  const rng = new Rng(15);
  const [N, H, hd] = [16, 4, 32];
  const pos = Int32Array.from({ length: N }, (_, i) => i * 4);
  const { cos, sin } = ropeTables(hd, 64, 10000);
  const x64 = randn(rng, N * H * hd);
  const x32 = toF32(x64);
  ropeApply(x64, pos, cos, sin, N, H, hd, false);
  ropeApply(x32, pos, cos, sin, N, H, hd, false);
  expectAllClose(x32, x64, 1e-6, 1e-6, "rope f32 vs f64");
});
