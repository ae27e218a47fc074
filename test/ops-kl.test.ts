import { test } from "node:test";
import assert from "node:assert/strict";
import { expectAllClose } from "../src/engine/check.js";
import { Rng } from "../src/engine/rng.js";
import { entropyBackward, entropyForward, klBackward, klForward } from "../src/engine/ops/kl.js";
import { logSoftmaxBackward, logSoftmaxForward } from "../src/engine/ops/softmax.js";
import { accumulated, dot, gradCheck, randn, toF32 } from "./ops-gradcheck.js";

const logs = (p: number[]) => Float64Array.from(p, Math.log);

test("KL and entropy of known distributions", () => {
  const kl = new Float64Array(1);
  klForward(kl, logs([0.5, 0.5]), logs([0.25, 0.75]), 1, 2);
  const want = 0.5 * Math.log(2) + 0.5 * Math.log(0.5 / 0.75);
  assert.ok(Math.abs(kl[0] - want) < 1e-16, `${kl[0]} vs ${want}`);
  const ent = new Float64Array(2);
  entropyForward(ent, Float64Array.from([...logs([0.25, 0.25, 0.25, 0.25]), ...logs([1, 0, 0, 0])]), 2, 4);
  expectAllClose(ent, [Math.log(4), 0], 1e-15, 0, "entropy uniform / one-hot");
});

test("KL(p‖p) is exactly 0 and KL ≥ 0 on random pairs, including near-equal ones", () => {
  const rng = new Rng(23);
  const [N, V] = [50, 17];
  const lp = new Float64Array(N * V);
  const lq = new Float64Array(N * V);
  logSoftmaxForward(lp, randn(rng, N * V, 3), N, V, 1);
  const kl = new Float64Array(N);
  klForward(kl, lp, lp, N, V);
  assert.ok(
    kl.every((x) => x === 0),
    "KL(p‖p) = 0",
  );
  const near = lp.map((x) => x + 1e-9 * rng.normal());
  logSoftmaxForward(lq, near, N, V, 1);
  klForward(kl, lp, lq, N, V);
  assert.ok(
    kl.every((x) => x >= 0 && x < 1e-15),
    `near-equal: max ${Math.max(...kl)}`,
  );
  logSoftmaxForward(lq, randn(rng, N * V, 3), N, V, 1);
  klForward(kl, lp, lq, N, V);
  assert.ok(kl.every((x) => x > 0 && Number.isFinite(x)));
});

test("KL with zero probabilities: 0·log 0 = 0, p > 0 where q = 0 gives +Infinity, ±1e4 logits stay finite", () => {
  const kl = new Float64Array(1);
  klForward(kl, logs([0, 1]), logs([0.5, 0.5]), 1, 2);
  assert.ok(Math.abs(kl[0] - Math.log(2)) < 1e-15);
  klForward(kl, logs([0.5, 0.5]), logs([0, 1]), 1, 2);
  assert.equal(kl[0], Infinity);
  const d = new Float64Array(2);
  klBackward(d, new Float64Array([1]), logs([0, 1]), logs([0.5, 0.5]), 1, 2);
  assert.ok(d.every(Number.isFinite), `grad ${Array.from(d)}`);
  const lp = new Float64Array(3);
  const lq = new Float64Array(3);
  logSoftmaxForward(lp, new Float64Array([1e4, -1e4, 0]), 1, 3, 1);
  logSoftmaxForward(lq, new Float64Array([-1e4, 1e4, 0]), 1, 3, 1);
  klForward(kl, lp, lq, 1, 3);
  assert.ok(Math.abs(kl[0] - 2e4) < 1e-9, `${kl[0]}`);
});

test("KL and entropy gradients match finite differences, w.r.t. log-probs and through log-softmax to logits", () => {
  const rng = new Rng(24);
  const [N, V] = [3, 5];
  const logits = randn(rng, N * V, 1.5);
  const lq = new Float64Array(N * V);
  logSoftmaxForward(lq, randn(rng, N * V, 1.5), N, V, 1);
  const w = randn(rng, N);
  const lp = new Float64Array(N * V);
  const out = new Float64Array(N);
  // w.r.t. the log-probs as free variables (the exact form computed by klForward)
  logSoftmaxForward(lp, logits, N, V, 1);
  const lpFree = lp.slice();
  const klFree = () => (klForward(out, lpFree, lq, N, V), dot(out, w));
  gradCheck(
    "KL dlogpP",
    lpFree,
    accumulated(N * V, (g) => klBackward(g, w, lpFree, lq, N, V)),
    klFree,
  );
  const entFree = () => (entropyForward(out, lpFree, N, V), dot(out, w));
  gradCheck(
    "entropy dlogp",
    lpFree,
    accumulated(N * V, (g) => entropyBackward(g, w, lpFree, N, V)),
    entFree,
  );
  // through log-softmax, at invTemp 0.8, to the logits
  for (const [name, fwd, bwd] of [
    [
      "KL",
      (o: Float64Array) => klForward(o, lp, lq, N, V),
      (g: Float64Array) => klBackward(g, w, lp, lq, N, V),
    ],
    [
      "entropy",
      (o: Float64Array) => entropyForward(o, lp, N, V),
      (g: Float64Array) => entropyBackward(g, w, lp, N, V),
    ],
  ] as const) {
    const loss = () => (logSoftmaxForward(lp, logits, N, V, 0.8), fwd(out), dot(out, w));
    loss();
    const dlogp = new Float64Array(N * V);
    bwd(dlogp);
    const dlogits = accumulated(N * V, (g) => logSoftmaxBackward(g, dlogp, lp, N, V, 0.8));
    gradCheck(`${name} dlogits`, logits, dlogits, loss);
  }
});

test("KL and entropy float32 agree with float64", () => {
  const rng = new Rng(25);
  const [N, V] = [8, 64];
  const lp = new Float64Array(N * V);
  const lq = new Float64Array(N * V);
  logSoftmaxForward(lp, randn(rng, N * V, 2), N, V, 1);
  logSoftmaxForward(lq, randn(rng, N * V, 2), N, V, 1);
  const k64 = new Float64Array(N);
  const k32 = new Float32Array(N);
  klForward(k64, lp, lq, N, V);
  klForward(k32, toF32(lp), toF32(lq), N, V);
  expectAllClose(k32, k64, 1e-5, 1e-6, "KL f32 vs f64");
  entropyForward(k64, lp, N, V);
  entropyForward(k32, toF32(lp), N, V);
  expectAllClose(k32, k64, 1e-5, 1e-6, "entropy f32 vs f64");
});
