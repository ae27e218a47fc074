/**
 * The statistics and verdict rules behind experiments/README.md's verdict table, against values
 * computed by hand or by an independent formula.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  allOf,
  directional,
  nonInferior,
  normalCdf,
  normalQuantile,
  pairedEstimate,
  powerAgainstDrop,
  promptsForPower,
  quantile,
  ratioEstimate,
  tEstimate,
} from "../experiments/stats.js";
import { boundsAt } from "../experiments/certificate.js";
import { monotonicity, positionRates } from "../experiments/ablations.js";

const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

test("experiments: a directional claim is reproduced only when the whole interval is on its side", () => {
  assert.equal(directional([0.01, 0.05], 1), "reproduced");
  assert.equal(directional([-0.05, -0.01], 1), "not reproduced");
  assert.equal(directional([-0.01, 0.05], 1), "inconclusive at this scale");
  assert.equal(directional([0, 0], 1), "inconclusive at this scale");
  assert.equal(directional([-0.05, -0.01], -1), "reproduced");
  assert.equal(directional(null, 1), "inconclusive at this scale");
});

test("experiments: 'about as much' is non-inferiority against the margin; a claim of parts needs all", () => {
  assert.equal(nonInferior([-0.015, 0.03], 0.02), "reproduced");
  assert.equal(nonInferior([-0.08, -0.03], 0.02), "not reproduced");
  assert.equal(nonInferior([-0.05, 0.01], 0.02), "inconclusive at this scale");
  assert.equal(allOf(["reproduced", "reproduced"]), "reproduced");
  assert.equal(allOf(["reproduced", "inconclusive at this scale"]), "inconclusive at this scale");
  assert.equal(allOf(["inconclusive at this scale", "not reproduced"]), "not reproduced");
  assert.equal(allOf([]), "inconclusive at this scale");
});

test("experiments: normal quantiles, power and the prompts needed match the closed forms", () => {
  close(normalQuantile(0.975), 1.959964, 1e-5, "z 0.975");
  close(normalQuantile(0.8), 0.841621, 1e-5, "z 0.8");
  close(normalCdf(1.959964), 0.975, 1e-6, "Φ(1.96)");
  // se = drop / (z_.975 + z_.8) gives exactly 80% power.
  close(powerAgainstDrop(0.02 / (1.959964 + 0.841621), 0.02), 0.8, 1e-5, "power at the design se");
  close(powerAgainstDrop(0.01, 0.02), normalCdf(2 - 1.959964), 1e-6, "power at se 0.01");
  // ((1.959964 + 0.841621) · 0.1 / 0.02)² = 196.22 → 197 prompts.
  assert.equal(promptsForPower(0.1, 0.02, 0.8), 197);
  assert.equal(promptsForPower(0.2, 0.02, 0.8), 785);
});

test("experiments: seed intervals are t-intervals; pairing removes the shared seed effect", () => {
  const e = tEstimate([1, 2, 3, 4, 5]);
  // mean 3, sd √2.5, t(4) = 2.776
  close(e.mean, 3, 1e-12, "mean");
  close(e.ci![1] - 3, (2.776 * Math.sqrt(2.5)) / Math.sqrt(5), 1e-9, "half-width");
  const a = [0.3, 0.5, 0.4, 0.6];
  const b = a.map((x) => x - 0.05);
  const p = pairedEstimate(a, b);
  close(p.mean, 0.05, 1e-12, "paired mean");
  close(p.ci![0], 0.05, 1e-12, "paired interval of a constant difference has zero width");
  assert.throws(() => pairedEstimate([1, 2], [1]), /paired estimate: 2 values against 1/);
  assert.equal(tEstimate([0.4]).ci, null);
  close(quantile([1, 2, 3, 4], 0.5), 2.5, 1e-12, "median");
});

test("experiments: the fraction recovered is a ratio of seed means with a bootstrap interval around it", () => {
  const r = ratioEstimate([0.1, 0.12, 0.08], [0.2, 0.2, 0.2]);
  close(r.mean, 0.5, 1e-12, "ratio");
  assert.ok(
    r.ci![0] <= 0.5 && r.ci![1] >= 0.5 && r.ci![0] >= 0.4 - 1e-9 && r.ci![1] <= 0.6 + 1e-9,
    `interval ${r.ci}`,
  );
  assert.equal(ratioEstimate([0.1, 0.1], [0, 0]).ci, null, "a zero denominator has no interval");
});

test("experiments: bounds recomputed at another γ scale each term by its γ factor", () => {
  const stage = {
    gamma: 0.99,
    surrogate_sum: 0.05,
    occupancy_penalty: 2 * 0.99 * 100 ** 2 * 0.1, // 2γ/(1−γ)² · A_max · Σ√(δ/2) with A_max·Σ = 0.1
    cpo_occupancy_penalty: 2 * 0.99 * 100 ** 2 * 0.02,
    bias_penalty: 100 * 0.001,
    sample_penalty: 100 * 0.3,
  };
  const at = boundsAt(stage, 0.5);
  // At γ = 0.5: 2γ/(1−γ)² = 4, 1/(1−γ) = 2.
  close(at.paper, 0.05 - 4 * 0.1 - 2 * 0.001 - 2 * 0.3, 1e-12, "paper bound at 0.5");
  close(at.cpo, 0.05 - 4 * 0.02 - 2 * 0.001 - 2 * 0.3, 1e-12, "CPO bound at 0.5");
  const same = boundsAt(stage, 0.99);
  close(same.paper, 0.05 - stage.occupancy_penalty - 0.1 - 30, 1e-9, "unchanged at the logged γ");
});

test("experiments: monotonicity and position summaries count what the stage records say", () => {
  const st = [
    { improvement: 0.01, se: 0.005, violation: 0 },
    { improvement: -0.03, se: 0.006, violation: 1 },
    { improvement: -0.001, se: 0.02, violation: 0 },
    { improvement: null, se: null, violation: null },
  ];
  const m = monotonicity(st);
  assert.equal(m.stages, 3);
  assert.equal(m.violations, 1);
  close(m.violation_rate as number, 1 / 3, 1e-4, "violation rate");
  close(m.negative_rate as number, 2 / 3, 1e-4, "negative share");
  // se 0.005 and 0.006 give ≥ 80% power against 0.02; se 0.02 does not.
  close(m.powered_rate as number, 2 / 3, 1e-4, "powered share");
  const ag = [
    {
      arm: "sat",
      seed: 1,
      position: 0,
      first_step_violation: 1,
      violation_rate: 0.5,
      candidates: 2,
      accepted: 1,
    },
    {
      arm: "sat",
      seed: 1,
      position: 0,
      first_step_violation: 0,
      violation_rate: 0,
      candidates: 1,
      accepted: 1,
    },
    {
      arm: "sat",
      seed: 1,
      position: 0,
      first_step_violation: 1,
      violation_rate: 1,
      candidates: 3,
      accepted: 0,
    },
  ];
  const p = positionRates(ag, "sat", 1, 0);
  close(p.first_step as number, 2 / 3, 1e-12, "full step outside δ");
  close(p.candidates as number, (0.5 * 2 + 3) / 6, 1e-12, "candidates outside ÷ tried");
  close(p.null_updates as number, 1 / 3, 1e-12, "null updates");
});
