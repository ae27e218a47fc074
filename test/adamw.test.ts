import { test } from "node:test";
import assert from "node:assert/strict";
import { AdamW } from "../src/engine/adamw.js";
import { Rng } from "../src/engine/rng.js";

const opts = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

test("two AdamW steps match a hand computation (torch.optim.AdamW semantics)", () => {
  const params = new Float64Array([1, -2]);
  const grads = new Float64Array([0.5, 0]);
  const opt = new AdamW(params, grads, opts);
  // Step 1 on p0 = 1, g = 0.5: decay 1 → 0.999; m = 0.05, v = 0.00025; m̂ = 0.5, v̂ = 0.25;
  // p = 0.999 − 0.1·0.5/(0.5 + 1e-8) = 0.899000002. p1 = −2 has g = 0: decay only, −1.998.
  opt.step();
  assert.ok(Math.abs(params[0] - 0.899000002) < 1e-15, `${params[0]}`);
  assert.ok(Math.abs(params[1] - -1.998) < 1e-15, `${params[1]}`);
  // Step 2 with g = −0.25: m = 0.045 − 0.025 = 0.02, v = 0.999·0.00025 + 0.001·0.0625 = 0.00031225,
  // p = 0.899000002·0.999 − (0.1/0.19)·0.02 / (√0.00031225/√0.001999 + 1e-8) ≈ 0.8714672987
  grads[0] = -0.25;
  opt.step();
  const want =
    0.899000002 * 0.999 - ((0.1 / 0.19) * 0.02) / (Math.sqrt(0.00031225) / Math.sqrt(0.001999) + 1e-8);
  assert.ok(Math.abs(params[0] - want) < 1e-13, `${params[0]} vs ${want}`);
  assert.ok(Math.abs(params[0] - 0.8714672987) < 1e-10);
  assert.ok(Math.abs(params[1] - -1.996002) < 1e-15, `${params[1]}`);
  assert.ok(Math.abs(opt.m[0] - 0.02) < 1e-16 && Math.abs(opt.v[0] - 0.00031225) < 1e-18);
  assert.equal(opt.stepCount, 2);
});

test("decay mask: masked-out elements are not decayed; decayed ones shrink by (1 − lr·wd) per step", () => {
  const params = new Float64Array([3, 3]);
  const grads = new Float64Array(2); // zero grads: the Adam term is 0/(0 + eps) = 0
  const opt = new AdamW(params, grads, { ...opts, weightDecay: 0.5, decayMask: new Uint8Array([1, 0]) });
  for (let i = 0; i < 3; i++) opt.step();
  assert.ok(Math.abs(params[0] - 3 * 0.95 ** 3) < 1e-15, `${params[0]}`);
  assert.equal(params[1], 3);
  opt.step(0); // lr override 0: nothing moves, the step still counts
  assert.ok(Math.abs(params[0] - 3 * 0.95 ** 3) < 1e-15);
  assert.equal(opt.stepCount, 4);
});

test("clipGradNorm returns the pre-clip norm and scales by max/(norm + 1e-6) only when above", () => {
  const grads = new Float64Array([3, 4]);
  const opt = new AdamW(new Float64Array(2), grads, opts);
  assert.equal(opt.clipGradNorm(10), 5);
  assert.deepEqual(Array.from(grads), [3, 4]);
  assert.equal(opt.clipGradNorm(0), 5, "0 = measure only");
  assert.deepEqual(Array.from(grads), [3, 4]);
  assert.equal(opt.clipGradNorm(1), 5);
  const coef = 1 / (5 + 1e-6);
  assert.deepEqual(Array.from(grads), [3 * coef, 4 * coef]);
  assert.ok(Math.abs(opt.clipGradNorm(0) - 1) < 1e-6);
  grads[0] = NaN;
  assert.ok(Number.isNaN(opt.clipGradNorm(1)), "a non-finite norm is reported");
  assert.equal(grads[1], 4 * coef, "and the grads are left alone");
  opt.zeroGrad();
  assert.deepEqual(Array.from(grads), [0, 0]);
});

test("snapshot/restore resumes bit-exactly, including the step count, in float32", () => {
  const rng = new Rng(26);
  const n = 50;
  const params = Float32Array.from({ length: n }, () => rng.normal());
  const grads = new Float32Array(n);
  const opt = new AdamW(params, grads, { ...opts, lr: 1e-2 });
  assert.ok(opt.m instanceof Float32Array && opt.v instanceof Float32Array, "moments follow the param dtype");
  const fill = (r: Rng) => grads.forEach((_, i) => (grads[i] = r.normal()));
  const g = new Rng(27);
  for (let s = 0; s < 3; s++) (fill(g), opt.step());
  const snap = opt.snapshot();
  const paramsAt3 = params.slice();
  const gradRngState = g.getState();
  const run = () => {
    for (let s = 0; s < 4; s++) (fill(g), opt.clipGradNorm(1), opt.step());
    return params.slice();
  };
  const first = run();
  assert.equal(opt.stepCount, 7);
  assert.notDeepEqual(snap.m, opt.m, "the snapshot is a copy");
  opt.restore(snap);
  params.set(paramsAt3);
  g.setState(gradRngState);
  assert.equal(opt.stepCount, 3);
  const second = run();
  assert.deepEqual(second, first);
  assert.throws(
    () => opt.restore({ step: 1, m: new Float32Array(3), v: new Float32Array(3) }),
    /state has 3 moments, optimizer has 50/,
  );
});

test("constructor rejects inconsistent buffers and hyperparameters", () => {
  const p = new Float64Array(4);
  assert.throws(() => new AdamW(p, new Float64Array(3), opts), /grads length 3 != params length 4/);
  assert.throws(
    () => new AdamW(p, p.slice(), { ...opts, decayMask: new Uint8Array(2) }),
    /decayMask length 2/,
  );
  assert.throws(() => new AdamW(p, p.slice(), { ...opts, beta2: 1 }), /beta2 must be in \[0, 1\)/);
  assert.throws(() => new AdamW(p, p.slice(), { ...opts, eps: 0 }), /eps must be > 0/);
});
