/**
 * attentionGemmForward / attentionGemmBackward (attention on the matmul kernels) against the
 * kernel-free reference in attention.ts, finite differences, and the WebAssembly kernels in float32
 * (1 and 2 threads must agree bit for bit).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { expectAllClose } from "../src/engine/check.js";
import { Rng } from "../src/engine/rng.js";
import { tsKernels } from "../src/engine/kernels/ts.js";
import { createKernels, type EngineKernels } from "../src/engine/kernels/select.js";
import type { Buf, Kernels } from "../src/engine/kernels/types.js";
import { attentionBackward, attentionForward } from "../src/engine/ops/attention.js";
import {
  attentionGemmBackward,
  attentionGemmForward,
  attentionScratchSize,
} from "../src/engine/ops/attention-gemm.js";
import { accumulated, dot, gradCheck, randn } from "./ops-gradcheck.js";

type Dims = [B: number, T: number, Hq: number, Hkv: number, hd: number];

interface Case {
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
  dout: Float64Array;
}

function makeCase(rng: Rng, [B, T, Hq, Hkv, hd]: Dims, scale = 1): Case {
  return {
    q: randn(rng, B * T * Hq * hd, scale),
    k: randn(rng, B * T * Hkv * hd, scale),
    v: randn(rng, B * T * Hkv * hd),
    dout: randn(rng, B * T * Hq * hd),
  };
}

/** Forward then backward (into zeroed grads) with the gemm ops; `alloc` makes every buffer. */
function runGemm(kern: Kernels, c: Case, [B, T, Hq, Hkv, hd]: Dims, alloc: (n: number) => Buf) {
  const from = (x: Float64Array) => {
    const y = alloc(x.length);
    y.set(x);
    return y;
  };
  const [q, k, v, dout] = [from(c.q), from(c.k), from(c.v), from(c.dout)];
  const out = alloc(q.length);
  const att = alloc(B * Hq * T * T);
  const scratch = alloc(attentionScratchSize(T, hd));
  const [dq, dk, dv] = [alloc(q.length), alloc(k.length), alloc(v.length)];
  attentionGemmForward(kern, out, att, q, k, v, scratch, B, T, Hq, Hkv, hd);
  attentionGemmBackward(kern, dq, dk, dv, dout, att, q, k, v, scratch, B, T, Hq, Hkv, hd);
  return { out, att, dq, dk, dv };
}

/** The same with the reference ops of attention.ts, float64. */
function runReference(c: Case, [B, T, Hq, Hkv, hd]: Dims) {
  const out = new Float64Array(c.q.length);
  const att = new Float64Array(B * Hq * T * T);
  const [dq, dk, dv] = [c.q, c.k, c.v].map((x) => new Float64Array(x.length));
  attentionForward(out, att, c.q, c.k, c.v, B, T, Hq, Hkv, hd);
  attentionBackward(dq, dk, dv, c.dout, att, c.q, c.k, c.v, B, T, Hq, Hkv, hd);
  return { out, att, dq, dk, dv };
}

const f64 = (n: number) => new Float64Array(n);

// Shapes: grouped-query with leftover rows/columns (T, hd not multiples of 4), plain multi-head.
for (const dims of [
  [2, 5, 4, 2, 3],
  [1, 7, 2, 1, 6],
  [2, 9, 3, 3, 8],
] as Dims[]) {
  test(`gemm attention equals the reference ops in float64 (B,T,Hq,Hkv,hd = ${dims})`, () => {
    const c = makeCase(new Rng(40 + dims[1]), dims);
    const g = runGemm(tsKernels, c, dims, f64);
    const r = runReference(c, dims);
    for (const key of ["out", "att", "dq", "dk", "dv"] as const)
      expectAllClose(g[key], r[key], 1e-13, 1e-14, `${key} gemm vs reference`);
  });
}

test("gemm attention gradients match finite differences (float64, GQA, T and hd not multiples of 4)", () => {
  const [B, T, Hq, Hkv, hd] = [2, 5, 4, 2, 3];
  const rng = new Rng(44);
  const c = makeCase(rng, [B, T, Hq, Hkv, hd]);
  const { q, k, v } = c;
  const w = c.dout;
  const out = f64(w.length);
  const att = f64(B * Hq * T * T);
  const scratch = f64(attentionScratchSize(T, hd));
  const loss = () => {
    attentionGemmForward(tsKernels, out, att, q, k, v, scratch, B, T, Hq, Hkv, hd);
    return dot(out, w);
  };
  loss();
  const back = (dq: Float64Array, dk: Float64Array, dv: Float64Array) =>
    attentionGemmBackward(tsKernels, dq, dk, dv, w, att, q, k, v, scratch, B, T, Hq, Hkv, hd);
  // All analytic grads first: the finite-difference loop leaves `att` from a perturbed input.
  const dq = accumulated(q.length, (g) => back(g, f64(k.length), f64(v.length)));
  const dk = accumulated(k.length, (g) => back(f64(q.length), g, f64(v.length)));
  const dv = accumulated(v.length, (g) => back(f64(q.length), f64(k.length), g));
  gradCheck("gemm attention dq", q, dq, loss);
  gradCheck("gemm attention dk", k, dk, loss);
  gradCheck("gemm attention dv", v, dv, loss);
});

test("gemm attention rejects a short scratch and a bad head grouping, naming the sizes", () => {
  const [B, T, Hq, Hkv, hd] = [1, 4, 2, 1, 4];
  const x = f64(B * T * Hq * hd);
  const att = f64(B * Hq * T * T);
  const short = f64(attentionScratchSize(T, hd) - 1);
  assert.throws(
    () => attentionGemmForward(tsKernels, x, att, x, x, x, short, B, T, Hq, Hkv, hd),
    /attentionGemmForward: scratch has \d+ floats, needs \d+ \(T=4, hd=4\)/,
  );
  const scratch = f64(attentionScratchSize(T, hd));
  assert.throws(
    () => attentionGemmBackward(tsKernels, x, x, x, x, att, x, x, x, scratch, B, T, 3, 2, hd),
    /Hq=3 must be a positive multiple of Hkv=2/,
  );
});

async function withKernels(threads: number, fn: (k: EngineKernels) => void): Promise<void> {
  const k = await createKernels({ impl: "wasm", threads });
  try {
    fn(k);
  } finally {
    await k.close();
  }
}

test("float32 on the WebAssembly kernels agrees with float64; saved probabilities are causal rows summing to 1", async () => {
  const dims: Dims = [2, 24, 4, 2, 16];
  const [B, T, Hq] = dims;
  const c = makeCase(new Rng(45), dims);
  const r = runReference(c, dims);
  await withKernels(1, (k) => {
    const g = runGemm(k, c, dims, (n) => k.heap!.f32(n));
    // Float32 sums over T and hd terms: errors of a few 1e-7 relative to the largest entry.
    expectAllClose(g.out, r.out, 1e-5, 1e-5, "out f32 vs f64");
    expectAllClose(g.att, r.att, 1e-5, 1e-6, "probabilities f32 vs f64");
    for (const key of ["dq", "dk", "dv"] as const)
      expectAllClose(g[key], r[key], 1e-4, 1e-5, `${key} f32 vs f64`);
    for (let row = 0; row < B * Hq * T; row++) {
      const i = row % T;
      let s = 0;
      for (let j = 0; j < T; j++) {
        const p = g.att[row * T + j];
        if (j > i) assert.equal(p, 0, `row ${row} col ${j} above the diagonal`);
        s += p;
      }
      assert.ok(Math.abs(s - 1) < 1e-6, `row ${row} sums to ${s}`);
    }
  });
});

test("float32 gemm attention: large scores stay finite; 1 and 2 kernel threads give identical bits", async () => {
  // T·T·hd ≥ 2^21 multiply-adds, so the 2-thread kernels split these products between threads.
  const dims: Dims = [1, 256, 2, 1, 32];
  const c = makeCase(new Rng(46), dims, 3);
  const results: Array<Record<string, Float32Array>> = [];
  for (const threads of [1, 2]) {
    await withKernels(threads, (k) => {
      const g = runGemm(k, c, dims, (n) => k.heap!.f32(n));
      results.push(Object.fromEntries(Object.entries(g).map(([key, x]) => [key, Float32Array.from(x)])));
    });
  }
  for (const key of ["out", "att", "dq", "dk", "dv"]) {
    assert.ok(results[0][key].every(Number.isFinite), `${key} finite`);
    assert.deepEqual(results[1][key], results[0][key], `${key}: 2 threads differ from 1`);
  }
  // Scores ~1e3·1e3: the softmax max-shift keeps them finite.
  const big = makeCase(new Rng(47), [1, 8, 1, 1, 4], 1e3);
  await withKernels(1, (k) => {
    const g = runGemm(k, big, [1, 8, 1, 1, 4], (n) => k.heap!.f32(n));
    for (const key of ["out", "att", "dq", "dk", "dv"] as const)
      assert.ok(g[key].every(Number.isFinite), `${key} finite with large scores`);
  });
});
