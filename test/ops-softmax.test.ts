import { test } from "node:test";
import assert from "node:assert/strict";
import { expectAllClose } from "../src/engine/check.js";
import { Rng } from "../src/engine/rng.js";
import {
  crossEntropyBackward,
  crossEntropyForward,
  logSoftmaxBackward,
  logSoftmaxForward,
  tokenLogProbBackward,
  tokenLogProbForward,
} from "../src/engine/ops/softmax.js";
import { accumulated, dot, gradCheck, randn, toF32 } from "./ops-gradcheck.js";

const exp = (a: ArrayLike<number>) => Array.from(a, Math.exp);

test("log-softmax of known logits, with temperature", () => {
  const logp = new Float64Array(4);
  logSoftmaxForward(logp, new Float64Array([0, Math.log(2), Math.log(3), Math.log(4)]), 1, 4, 1);
  expectAllClose(exp(logp), [0.1, 0.2, 0.3, 0.4], 1e-15, 0, "p");
  // invTemp 2 squares the odds: [1, 2] -> [1, 4] / 5
  const lp2 = new Float64Array(2);
  logSoftmaxForward(lp2, new Float64Array([0, Math.log(2)]), 1, 2, 2);
  expectAllClose(exp(lp2), [0.2, 0.8], 1e-15, 0, "tempered p");
});

test("log-softmax handles ±1e4 logits and -Infinity logits without overflow or NaN", () => {
  const logits = new Float64Array([1e4, -1e4, 1e4, -Infinity]);
  const logp = new Float64Array(4);
  logSoftmaxForward(logp, logits, 1, 4, 1);
  expectAllClose(logp.subarray(0, 3), [-Math.LN2, -2e4 - Math.LN2, -Math.LN2], 1e-15, 0, "logp");
  assert.equal(logp[3], -Infinity);
  assert.deepEqual(exp(logp), [0.5, 0, 0.5, 0]);
  const d = new Float64Array(4);
  logSoftmaxBackward(d, new Float64Array([1, 2, 3, 4]), logp, 1, 4, 1);
  assert.ok(d.every(Number.isFinite), `backward ${Array.from(d)}`);
  const l32 = new Float32Array(4);
  logSoftmaxForward(l32, toF32(logits), 1, 4, 0.5);
  expectAllClose(exp(l32), [0.5, 0, 0.5, 0], 1e-6, 0, "float32 large logits");
});

test("cross-entropy: uniform logits give ln V, ignored rows give 0 and no gradient, large logits stay finite", () => {
  const V = 5;
  const logits = new Float64Array(3 * V);
  logits.set([1e4, -1e4, 0, 0, 0], 2 * V);
  const losses = new Float64Array(3);
  const logp = new Float64Array(3 * V);
  const targets = new Int32Array([3, -1, 1]);
  crossEntropyForward(losses, logp, logits, targets, 3, V);
  expectAllClose(losses, [Math.log(V), 0, 2e4], 1e-15, 0, "losses");
  const d = new Float64Array(3 * V);
  crossEntropyBackward(d, new Float64Array([1, 1, 1]), logp, targets, 3, V);
  expectAllClose(d.subarray(0, V), [0.2, 0.2, 0.2, -0.8, 0.2], 1e-15, 1e-16, "uniform row grad");
  assert.ok(
    d.subarray(V, 2 * V).every((x) => x === 0),
    "ignored row has no gradient",
  );
  expectAllClose(d.subarray(2 * V), [1, -1, 0, 0, 0], 0, 1e-15, "saturated row grad");
});

test("token log-prob reads the tempered log-softmax at the target", () => {
  const logits = new Float64Array([0, Math.log(2), 5, 5]); // (N=2, V=2)
  const out = new Float64Array(2);
  const logp = new Float64Array(4);
  tokenLogProbForward(out, logp, logits, new Int32Array([1, -1]), 2, 2, 2);
  expectAllClose(out, [Math.log(0.8), 0], 1e-15, 0, "token log-probs");
  expectAllClose(exp(logp.subarray(2)), [0.5, 0.5], 1e-15, 0, "second row still normalised");
});

test("softmax-family gradients match finite differences (float64)", () => {
  const rng = new Rng(21);
  const [N, V] = [4, 6];
  const logits = randn(rng, N * V, 2);
  const targets = new Int32Array([2, -1, 5, 0]);
  const logp = new Float64Array(N * V);
  const row = new Float64Array(N);
  const wRows = randn(rng, N);
  const wFull = randn(rng, N * V);
  for (const invTemp of [1, 0.7]) {
    const lsLoss = () => (logSoftmaxForward(logp, logits, N, V, invTemp), dot(logp, wFull));
    lsLoss();
    const dls = accumulated(N * V, (g) => logSoftmaxBackward(g, wFull, logp, N, V, invTemp));
    gradCheck(`logSoftmax dlogits invTemp=${invTemp}`, logits, dls, lsLoss);
    const tlpLoss = () => (tokenLogProbForward(row, logp, logits, targets, N, V, invTemp), dot(row, wRows));
    tlpLoss();
    const dtlp = accumulated(N * V, (g) => tokenLogProbBackward(g, wRows, logp, targets, N, V, invTemp));
    gradCheck(`tokenLogProb dlogits invTemp=${invTemp}`, logits, dtlp, tlpLoss);
  }
  const ceLoss = () => (crossEntropyForward(row, logp, logits, targets, N, V), dot(row, wRows));
  ceLoss();
  const dce = accumulated(N * V, (g) => crossEntropyBackward(g, wRows, logp, targets, N, V));
  gradCheck("crossEntropy dlogits", logits, dce, ceLoss);
});

test("softmax-family float32 forward agrees with float64", () => {
  const rng = new Rng(22);
  const [N, V] = [8, 64];
  const logits = randn(rng, N * V, 5);
  const targets = Int32Array.from({ length: N }, () => rng.int(V));
  const lp64 = new Float64Array(N * V);
  const lp32 = new Float32Array(N * V);
  const l64 = new Float64Array(N);
  const l32 = new Float32Array(N);
  crossEntropyForward(l64, lp64, logits, targets, N, V);
  crossEntropyForward(l32, lp32, toF32(logits), targets, N, V);
  expectAllClose(l32, l64, 1e-5, 1e-5, "cross-entropy f32 vs f64");
  expectAllClose(lp32, lp64, 1e-5, 1e-5, "log-softmax f32 vs f64");
  tokenLogProbForward(l64, lp64, logits, targets, N, V, 1.3);
  tokenLogProbForward(l32, lp32, toF32(logits), targets, N, V, 1.3);
  expectAllClose(l32, l64, 1e-5, 1e-5, "token log-prob f32 vs f64");
});
