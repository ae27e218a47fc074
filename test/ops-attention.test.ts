import { test } from "node:test";
import assert from "node:assert/strict";
import { expectAllClose } from "../src/engine/check.js";
import { Rng } from "../src/engine/rng.js";
import {
  attentionBackward,
  attentionDecode,
  attentionForward,
  kvCacheWrite,
} from "../src/engine/ops/attention.js";
import { accumulated, dot, gradCheck, randn, toF32 } from "./ops-gradcheck.js";

type Dims = { B: number; T: number; Hq: number; Hkv: number; hd: number };

function forward(d: Dims, q: Float64Array, k: Float64Array, v: Float64Array) {
  const out = new Float64Array(d.B * d.T * d.Hq * d.hd);
  const att = new Float64Array(d.B * d.Hq * d.T * d.T);
  attentionForward(out, att, q, k, v, d.B, d.T, d.Hq, d.Hkv, d.hd);
  return { out, att };
}

test("attention with a single position returns its value; with zero queries it averages the prefix", () => {
  const d = { B: 1, T: 3, Hq: 1, Hkv: 1, hd: 2 };
  const q = new Float64Array(6); // all-zero queries: uniform weights over the causal prefix
  const k = new Float64Array([1, 2, 3, 4, 5, 6]);
  const v = new Float64Array([1, 10, 2, 20, 6, 60]);
  const { out, att } = forward(d, q, k, v);
  expectAllClose(out, [1, 10, 1.5, 15, 3, 30], 1e-15, 1e-15, "prefix means");
  expectAllClose(att, [1, 0, 0, 0.5, 0.5, 0, 1 / 3, 1 / 3, 1 / 3], 1e-15, 0, "causal uniform probs");
});

test("attention follows the dominant key and uses scale 1/sqrt(hd)", () => {
  const d = { B: 1, T: 3, Hq: 1, Hkv: 1, hd: 4 };
  const k = new Float64Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]); // orthonormal keys
  const v = new Float64Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]);
  const q = new Float64Array(12);
  q.set([0, 100, 0, 0], 8); // last query points at key 1 with score 100/2 = 50
  const { out, att } = forward(d, q, k, v);
  expectAllClose(out.subarray(8), [0, 1, 0, 0], 0, 1e-20, "dominant key");
  q.set([0, 2 * Math.log(3), 0, 0], 8); // score ln 3 after scaling: probs [1, 3, 1] / 5
  const r = forward(d, q, k, v);
  expectAllClose(r.att.subarray(6), [0.2, 0.6, 0.2], 1e-14, 0, "scaled scores");
  assert.ok(att.every(Number.isFinite));
});

test("attention is causal: future keys and values do not change earlier outputs", () => {
  const rng = new Rng(16);
  const d = { B: 2, T: 5, Hq: 2, Hkv: 1, hd: 3 };
  const q = randn(rng, 2 * 5 * 2 * 3);
  const k = randn(rng, 2 * 5 * 1 * 3);
  const v = randn(rng, 2 * 5 * 1 * 3);
  const a = forward(d, q, k, v);
  for (let i = 0; i < 3; i++) {
    k[(0 * 5 + 4) * 3 + i] += 7; // sequence 0, position 4
    v[(1 * 5 + 3) * 3 + i] -= 5; // sequence 1, position 3
  }
  const b = forward(d, q, k, v);
  expectAllClose(b.out.subarray(0, 4 * 6), a.out.subarray(0, 4 * 6), 0, 0, "seq 0 positions 0..3");
  expectAllClose(
    b.out.subarray(30, 30 + 3 * 6),
    a.out.subarray(30, 30 + 3 * 6),
    0,
    0,
    "seq 1 positions 0..2",
  );
  for (let row = 0; row < 2 * 2 * 5; row++) {
    const t = row % 5;
    let s = 0;
    for (let t2 = 0; t2 < 5; t2++) {
      const p = a.att[row * 5 + t2];
      if (t2 > t) assert.equal(p, 0);
      s += p;
    }
    assert.ok(Math.abs(s - 1) < 1e-14, `row ${row} sums to ${s}`);
  }
});

/** Repeats each kv head Hq/Hkv times along the head axis: (B,T,Hkv,hd) -> (B,T,Hq,hd). */
function repeatKv(x: Float64Array, B: number, T: number, Hq: number, Hkv: number, hd: number) {
  const y = new Float64Array(B * T * Hq * hd);
  for (let bt = 0; bt < B * T; bt++)
    for (let h = 0; h < Hq; h++)
      y.set(
        x.subarray(
          (bt * Hkv + Math.floor(h / (Hq / Hkv))) * hd,
          (bt * Hkv + Math.floor(h / (Hq / Hkv)) + 1) * hd,
        ),
        (bt * Hq + h) * hd,
      );
  return y;
}

test("grouped-query attention equals multi-head attention with duplicated kv heads (values and grads)", () => {
  const rng = new Rng(17);
  const [B, T, Hq, Hkv, hd] = [2, 4, 4, 2, 3];
  const q = randn(rng, B * T * Hq * hd);
  const k = randn(rng, B * T * Hkv * hd);
  const v = randn(rng, B * T * Hkv * hd);
  const dout = randn(rng, B * T * Hq * hd);
  const kk = repeatKv(k, B, T, Hq, Hkv, hd);
  const vv = repeatKv(v, B, T, Hq, Hkv, hd);
  const g = forward({ B, T, Hq, Hkv, hd }, q, k, v);
  const m = forward({ B, T, Hq, Hkv: Hq, hd }, q, kk, vv);
  expectAllClose(g.out, m.out, 1e-14, 1e-14, "GQA vs MHA out");
  const [dqG, dkG, dvG] = [
    new Float64Array(q.length),
    new Float64Array(k.length),
    new Float64Array(v.length),
  ];
  const [dqM, dkM, dvM] = [
    new Float64Array(q.length),
    new Float64Array(kk.length),
    new Float64Array(vv.length),
  ];
  attentionBackward(dqG, dkG, dvG, dout, g.att, q, k, v, B, T, Hq, Hkv, hd);
  attentionBackward(dqM, dkM, dvM, dout, m.att, q, kk, vv, B, T, Hq, Hq, hd);
  expectAllClose(dqG, dqM, 1e-13, 1e-13, "dq");
  // A shared kv head receives the sum of the gradients of its copies.
  const sumCopies = (dx: Float64Array) => {
    const y = new Float64Array(B * T * Hkv * hd);
    for (let bt = 0; bt < B * T; bt++)
      for (let h = 0; h < Hq; h++)
        for (let i = 0; i < hd; i++) y[(bt * Hkv + Math.floor(h / 2)) * hd + i] += dx[(bt * Hq + h) * hd + i];
    return y;
  };
  expectAllClose(dkG, sumCopies(dkM), 1e-13, 1e-13, "dk");
  expectAllClose(dvG, sumCopies(dvM), 1e-13, 1e-13, "dv");
  assert.throws(
    () => forward({ B, T, Hq: 3, Hkv: 2, hd }, q, k, v),
    /Hq=3 must be a positive multiple of Hkv=2/,
  );
});

// Shapes cover full 4×4 tiles, leftover rows (T % 4) and leftover columns (hd % 4).
for (const [B, T, Hq, Hkv, hd] of [
  [2, 4, 4, 2, 3],
  [1, 7, 2, 1, 4],
]) {
  test(`attention gradients match finite differences (float64, B=${B} T=${T} Hq=${Hq} Hkv=${Hkv} hd=${hd})`, () => {
    const rng = new Rng(18 + T);
    const q = randn(rng, B * T * Hq * hd);
    const k = randn(rng, B * T * Hkv * hd);
    const v = randn(rng, B * T * Hkv * hd);
    const w = randn(rng, B * T * Hq * hd);
    const out = new Float64Array(w.length);
    const att = new Float64Array(B * Hq * T * T);
    const loss = () => {
      attentionForward(out, att, q, k, v, B, T, Hq, Hkv, hd);
      return dot(out, w);
    };
    loss();
    const back = (dq: Float64Array, dk: Float64Array, dv: Float64Array) =>
      attentionBackward(dq, dk, dv, w, att, q, k, v, B, T, Hq, Hkv, hd);
    const z = (n: number) => new Float64Array(n);
    // All analytic grads first: the finite-difference loop leaves `att` from a perturbed input.
    const dq = accumulated(q.length, (g) => back(g, z(k.length), z(v.length)));
    const dk = accumulated(k.length, (g) => back(z(q.length), g, z(v.length)));
    const dv = accumulated(v.length, (g) => back(z(q.length), z(k.length), g));
    gradCheck("attention dq", q, dq, loss);
    gradCheck("attention dk", k, dk, loss);
    gradCheck("attention dv", v, dv, loss);
  });
}

test("attentionDecode over a head-major kv cache equals the matching row of attentionForward; inactive rows are untouched", () => {
  const rng = new Rng(19);
  const [B, T, Hq, Hkv, hd, Tmax] = [3, 5, 4, 2, 4, 7];
  const q = randn(rng, B * T * Hq * hd);
  const k = randn(rng, B * T * Hkv * hd);
  const v = randn(rng, B * T * Hkv * hd);
  const full = forward({ B, T, Hq, Hkv, hd }, q, k, v);
  // Cache rows beyond a sequence's length hold junk that must be ignored. The cache is written
  // one position at a time through kvCacheWrite, as the Decoder does.
  const kCache = randn(rng, B * Tmax * Hkv * hd, 100);
  const vCache = randn(rng, B * Tmax * Hkv * hd, 100);
  const all = new Uint8Array(B).fill(1);
  for (let t = 0; t < T; t++) {
    const kt = new Float64Array(B * Hkv * hd);
    const vt = new Float64Array(B * Hkv * hd);
    for (let b = 0; b < B; b++) {
      const src = (b * T + t) * Hkv * hd;
      kt.set(k.subarray(src, src + Hkv * hd), b * Hkv * hd);
      vt.set(v.subarray(src, src + Hkv * hd), b * Hkv * hd);
    }
    kvCacheWrite(kCache, vCache, kt, vt, new Int32Array(B).fill(t), all, B, Tmax, Hkv, hd);
  }
  for (let b = 0; b < B; b++)
    for (let h = 0; h < Hkv; h++)
      for (let t = 0; t < T; t++)
        for (let d = 0; d < hd; d++)
          assert.equal(kCache[((b * Hkv + h) * Tmax + t) * hd + d], k[((b * T + t) * Hkv + h) * hd + d]);
  const lengths = new Int32Array([5, 2, 4]);
  const active = new Uint8Array([1, 0, 1]);
  const qStep = new Float64Array(B * Hq * hd);
  for (let b = 0; b < B; b++)
    qStep.set(q.subarray((b * T + lengths[b] - 1) * Hq * hd, (b * T + lengths[b]) * Hq * hd), b * Hq * hd);
  const out = new Float64Array(B * Hq * hd).fill(42);
  attentionDecode(out, qStep, kCache, vCache, lengths, active, B, Tmax, Hq, Hkv, hd);
  for (const b of [0, 2]) {
    const t = lengths[b] - 1;
    const want = full.out.subarray((b * T + t) * Hq * hd, (b * T + t + 1) * Hq * hd);
    expectAllClose(out.subarray(b * Hq * hd, (b + 1) * Hq * hd), want, 1e-13, 1e-13, `decode seq ${b}`);
  }
  assert.ok(
    out.subarray(Hq * hd, 2 * Hq * hd).every((x) => x === 42),
    "inactive row untouched",
  );
  // float32 decode agrees with the float64 forward
  const out32 = new Float32Array(B * Hq * hd);
  attentionDecode(out32, toF32(qStep), toF32(kCache), toF32(vCache), lengths, active, B, Tmax, Hq, Hkv, hd);
  const t0 = lengths[0] - 1;
  expectAllClose(
    out32.subarray(0, Hq * hd),
    full.out.subarray(t0 * Hq * hd, (t0 + 1) * Hq * hd),
    1e-5,
    1e-5,
    "decode f32",
  );
  lengths[2] = 0;
  assert.throws(
    () => attentionDecode(out, qStep, kCache, vCache, lengths, active, B, Tmax, Hq, Hkv, hd),
    /lengths\[2\]=0/,
  );
});

test("attention float32 forward agrees with float64; large scores do not overflow", () => {
  const rng = new Rng(20);
  const [B, T, Hq, Hkv, hd] = [2, 16, 4, 2, 8];
  const q = randn(rng, B * T * Hq * hd);
  const k = randn(rng, B * T * Hkv * hd);
  const v = randn(rng, B * T * Hkv * hd);
  const r64 = forward({ B, T, Hq, Hkv, hd }, q, k, v);
  const out32 = new Float32Array(r64.out.length);
  const att32 = new Float32Array(r64.att.length);
  attentionForward(out32, att32, toF32(q), toF32(k), toF32(v), B, T, Hq, Hkv, hd);
  expectAllClose(out32, r64.out, 1e-5, 1e-5, "attention out f32 vs f64");
  expectAllClose(att32, r64.att, 1e-5, 1e-6, "attention probs f32 vs f64");
  for (let i = 0; i < q.length; i++) q[i] *= 1e3; // scores ~1e6
  const big = forward({ B, T, Hq, Hkv, hd }, q, k, v);
  assert.ok(big.out.every(Number.isFinite) && big.att.every(Number.isFinite));
});
