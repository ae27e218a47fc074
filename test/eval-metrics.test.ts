import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/engine/rng.js";
import {
  aggregateMetrics,
  avgAtK,
  bootstrapCI,
  majAtK,
  majorityAnswer,
  meanMajAtK,
  passAtK,
  perPromptMetrics,
} from "../src/eval/metrics.js";
import { majorityVote } from "../src/team/rollout.js";

/** Fraction of k-subsets of n samples (the first c correct) that contain a correct sample. */
function bruteForcePass(n: number, c: number, k: number): number {
  let hit = 0;
  let total = 0;
  const rec = (start: number, left: number, any: boolean) => {
    if (left === 0) {
      total++;
      if (any) hit++;
      return;
    }
    for (let i = start; i <= n - left; i++) rec(i + 1, left - 1, any || i < c);
  };
  rec(0, k, false);
  return hit / total;
}

test("passAtK equals brute-force enumeration of all k-subsets", () => {
  let cases = 0;
  for (let n = 1; n <= 10; n++) {
    for (let c = 0; c <= n; c++) {
      for (let k = 1; k <= n; k++) {
        const got = passAtK(n, c, k);
        const want = bruteForcePass(n, c, k);
        assert.ok(Math.abs(got - want) <= 1e-12, `n=${n} c=${c} k=${k}: ${got} vs ${want}`);
        cases++;
      }
    }
  }
  assert.equal(cases, 440); // Σ_{n=1..10} n·(n+1)
});

test("passAtK edge cases: c=0, c=n, k=n, k=1 is c/n, large n stays in [0,1], k>n is an error", () => {
  assert.equal(passAtK(8, 0, 4), 0);
  assert.equal(passAtK(8, 8, 4), 1);
  assert.equal(passAtK(8, 1, 8), 1);
  assert.equal(passAtK(8, 0, 8), 0);
  assert.ok(Math.abs(passAtK(7, 3, 1) - 3 / 7) < 1e-15);
  // C(4000, 100) overflows doubles; the product form does not.
  const big = passAtK(4000, 2, 100);
  assert.ok(Math.abs(big - (1 - (3900 * 3899) / (4000 * 3999))) < 1e-12, `got ${big}`);
  assert.throws(() => passAtK(4, 1, 5), /k \(5\) exceeds the number of samples n \(4\)/);
  assert.throws(() => passAtK(4, 5, 2), /c \(5\) exceeds n \(4\)/);
  assert.throws(() => passAtK(4, 1, 0), /k must be an integer ≥ 1/);
});

test("avgAtK is the mean over all n samples and rejects k > n", () => {
  assert.equal(avgAtK([1, 0, 0, 1], 1), 0.5);
  assert.equal(avgAtK([1, 0, 0, 1], 4), 0.5);
  assert.throws(() => avgAtK([1, 0], 3), /k \(3\) exceeds the number of samples n \(2\)/);
});

test("maj@k: majority of the first k samples, ties to the earliest, nulls never win", () => {
  assert.equal(majAtK(["3", "5", "5", "3", "3"], 3, "5"), 1); // first 3: 5 has two votes
  assert.equal(majAtK(["3", "5", "5", "3", "3"], 5, "5"), 0); // all 5: 3 wins
  assert.equal(majAtK(["3", "5", "5", "3"], 4, "3"), 1); // 2–2 tie → earliest ("3")
  assert.equal(majAtK(["5", "3", "3", "5"], 4, "3"), 0);
  assert.equal(majAtK([null, null, "7"], 3, "7"), 1); // nulls outnumber but never win
  assert.equal(majAtK([null, null], 2, "7"), 0);
  assert.equal(
    majAtK(["8", "9"], 2, (a) => Number(a) > 8),
    0,
  ); // judge predicate; tie → "8"
  assert.throws(() => majAtK(["1"], 2, "1"), /k \(2\) exceeds the number of samples n \(1\)/);
  assert.equal(
    meanMajAtK(
      [
        ["1", "2", "2"],
        ["4", null, "4"],
        [null, null, null],
      ],
      3,
      ["2", "5", "1"],
    ),
    1 / 3,
  );
});

test("majorityAnswer agrees with the team protocol's majorityVote on random answer lists", () => {
  const rng = new Rng(11);
  const alphabet = ["a", "b", "c", null];
  for (let trial = 0; trial < 500; trial++) {
    const answers = Array.from({ length: 1 + rng.int(7) }, () => alphabet[rng.int(4)]);
    assert.equal(majorityAnswer(answers), majorityVote(answers), JSON.stringify(answers));
  }
});

test("bootstrapCI contains the mean, shrinks with more prompts, is deterministic for a seed", () => {
  const gen = new Rng(3);
  const small: number[] = Array.from({ length: 20 }, () => (gen.uniform() < 0.4 ? 1 : 0));
  const large: number[] = Array.from({ length: 500 }, () => (gen.uniform() < 0.4 ? 1 : 0));
  const a = bootstrapCI(small, new Rng(5));
  const b = bootstrapCI(small, new Rng(5));
  assert.deepEqual(a, b);
  assert.equal(a.mean, small.reduce((s, v) => s + v, 0) / small.length);
  assert.ok(a.low <= a.mean && a.mean <= a.high, JSON.stringify(a));
  const l = bootstrapCI(large, new Rng(5));
  assert.ok(l.low <= l.mean && l.mean <= l.high, JSON.stringify(l));
  const ws = a.high - a.low;
  const wl = l.high - l.low;
  // Width ∝ 1/sqrt(P): 25× more prompts → about 5× narrower.
  assert.ok(wl < ws / 3, `width ${wl} (500 prompts) vs ${ws} (20 prompts)`);
  // Binomial sd check: the 95% width is about 2·1.96·sqrt(p(1-p)/P).
  const p = l.mean;
  const expected = 2 * 1.96 * Math.sqrt((p * (1 - p)) / large.length);
  assert.ok(Math.abs(wl - expected) / expected < 0.2, `width ${wl} vs normal approximation ${expected}`);
  // Constant values: a zero-width interval at the value.
  assert.deepEqual(bootstrapCI([0.25, 0.25, 0.25], new Rng(1), 50), { mean: 0.25, low: 0.25, high: 0.25 });
  const none = bootstrapCI([], new Rng(1));
  assert.ok(Number.isNaN(none.mean) && Number.isNaN(none.low));
});

test("perPromptMetrics + aggregateMetrics: keys, means and kScale", () => {
  const prompts = [
    { correct: [1, 0, 0, 0], answers: ["4", "3", "3", null], judge: "4" },
    { correct: [0, 0, 1, 1], answers: ["1", "2", "9", "9"], judge: "9" },
  ];
  const per = perPromptMetrics(prompts, [1, 2]);
  assert.deepEqual([...per.keys()], ["avg@1", "avg@2", "pass@1", "pass@2", "maj@1", "maj@2"]);
  assert.deepEqual(per.get("pass@2"), [passAtK(4, 1, 2), passAtK(4, 2, 2)]);
  assert.deepEqual(per.get("maj@1"), [1, 0]);
  const scaled = perPromptMetrics(prompts, [1, 2], 2);
  assert.deepEqual(scaled.get("pass@1"), per.get("pass@2"));
  assert.deepEqual(scaled.get("maj@2"), [0, 1]); // first 4: "3" wins; "9" wins
  const agg = aggregateMetrics(per, new Rng(2), 200);
  assert.equal(agg["avg@1"], 0.375);
  for (const key of per.keys())
    assert.ok(agg[`${key}/ci_low`] <= agg[key] && agg[key] <= agg[`${key}/ci_high`], key);
});
