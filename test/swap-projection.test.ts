/** Stage-0 projection (sat-method §5): radius hit exactly, untouched when inside, monotone in λ, wrapper scoring. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/engine/rng.js";
import { klRow, type ScoringPolicy, type StateRef, type Trajectory } from "../src/algorithm/index.js";
import { projectToTrustRegion, ProjectedPolicy } from "../src/swap/projection.js";

function randomLogp(rng: Rng, V: number, scale: number): Float64Array {
  const x = Float64Array.from({ length: V }, () => scale * rng.normal());
  const m = Math.max(...x);
  const lz = m + Math.log(x.reduce((s, v) => s + Math.exp(v - m), 0));
  return x.map((v) => v - lz);
}

function perturb(rng: Rng, logp: Float64Array, scale: number): Float64Array {
  const x = logp.map((l) => l + scale * rng.normal());
  const m = Math.max(...x);
  const lz = m + Math.log(x.reduce((s, v) => s + Math.exp(v - m), 0));
  return x.map((v) => v - lz);
}

/** Independent construction of π_λ from its definition. */
function geometric(pre: Float64Array, cur: Float64Array, lambda: number): Float64Array {
  const a = 1 / (1 + lambda);
  const x = pre.map((p, v) => a * p + (1 - a) * cur[v]);
  const m = Math.max(...x);
  const lz = m + Math.log(x.reduce((s, v) => s + Math.exp(v - m), 0));
  return x.map((v) => v - lz);
}

test("violating rows are projected onto KL = δ0 (within 1e-9); rows inside the ball come back untouched", () => {
  const rng = new Rng(8);
  let projected = 0;
  let untouched = 0;
  let worst = 0;
  for (let i = 0; i < 500; i++) {
    const V = 2 + rng.int(50);
    const cur = randomLogp(rng, V, 1);
    // Half the rows are small perturbations of π_cur (often inside the ball), half unrelated.
    const pre = i % 2 === 0 ? randomLogp(rng, V, 2) : perturb(rng, cur, 0.3 * rng.uniform());
    const delta0 = [0.001, 0.01, 0.1][i % 3];
    const kl0 = klRow(pre, 0, cur, 0, V);
    const p = projectToTrustRegion(pre, cur, delta0);
    if (kl0 <= delta0) {
      untouched++;
      assert.equal(p.projected, false);
      assert.equal(p.lambda, 0);
      for (let v = 0; v < V; v++) assert.ok(Math.abs(p.logp[v] - pre[v]) < 1e-15);
    } else {
      projected++;
      const kl = klRow(p.logp, 0, cur, 0, V);
      assert.ok(kl <= delta0, `KL ${kl} above δ0 ${delta0}`);
      worst = Math.max(worst, delta0 - kl);
      // The returned row is the geometric mixture at the returned λ.
      const ref = geometric(pre, cur, p.lambda);
      for (let v = 0; v < V; v++) assert.ok(Math.abs(p.logp[v] - ref[v]) < 1e-9);
    }
  }
  assert.ok(worst < 1e-9, `largest gap to δ0: ${worst}`);
  assert.ok(projected > 50 && untouched > 50, `projected ${projected}, untouched ${untouched}`);
});

test("KL(π_λ ‖ π_cur) decreases in λ (the property the bisection relies on)", () => {
  const rng = new Rng(9);
  for (let i = 0; i < 100; i++) {
    const V = 3 + rng.int(20);
    const pre = randomLogp(rng, V, 2);
    const cur = randomLogp(rng, V, 1);
    let prev = Infinity;
    for (const lambda of [0, 0.01, 0.1, 0.5, 1, 3, 10, 100, 1e4]) {
      const kl = klRow(geometric(pre, cur, lambda), 0, cur, 0, V);
      assert.ok(kl <= prev + 1e-15, `λ=${lambda}: ${kl} > ${prev}`);
      prev = kl;
    }
    assert.ok(prev < 1e-6);
  }
});

test("masked actions: zero-probability entries of π_cur stay zero, disjoint supports are an error", () => {
  const cur = Float64Array.of(Math.log(0.5), Math.log(0.5), -Infinity);
  const pre = Float64Array.of(Math.log(0.1), Math.log(0.2), Math.log(0.7));
  const p = projectToTrustRegion(pre, cur, 0.01);
  assert.equal(p.projected, true);
  assert.equal(p.logp[2], -Infinity);
  assert.ok(Math.abs(p.kl - 0.01) < 1e-9);
  assert.throws(
    () => projectToTrustRegion(Float64Array.of(0, -Infinity), Float64Array.of(-Infinity, 0), 0.01),
    /disjoint supports/,
  );
});

class FixedRows implements ScoringPolicy {
  constructor(
    readonly vocabSize: number,
    readonly rows: Float64Array[],
  ) {}
  logProbs(_trajs: readonly Trajectory[], states: readonly StateRef[]): Float64Array {
    const out = new Float64Array(states.length * this.vocabSize);
    states.forEach((s, k) => out.set(this.rows[s.t], k * this.vocabSize));
    return out;
  }
}

test("ProjectedPolicy scores every state with the projection of the two policies' rows", () => {
  const rng = new Rng(10);
  const V = 7;
  const pre = new FixedRows(
    V,
    Array.from({ length: 5 }, () => randomLogp(rng, V, 2)),
  );
  const cur = new FixedRows(
    V,
    Array.from({ length: 5 }, () => randomLogp(rng, V, 1)),
  );
  const policy = new ProjectedPolicy(pre, cur, 0.02);
  const states = [0, 1, 2, 3, 4].map((t) => ({ traj: 0, t }));
  const rows = policy.logProbs([], states);
  for (let t = 0; t < 5; t++) {
    const expected = projectToTrustRegion(pre.rows[t], cur.rows[t], 0.02).logp;
    for (let v = 0; v < V; v++) assert.equal(rows[t * V + v], expected[v]);
    assert.ok(klRow(rows, t * V, cur.rows[t], 0, V) <= 0.02);
  }
  assert.ok(policy.lastStats.projectedFrac > 0);
  assert.throws(() => new ProjectedPolicy(new FixedRows(3, []), cur, 0.01), /vocab sizes differ/);
});
