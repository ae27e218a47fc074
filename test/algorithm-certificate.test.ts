/**
 * Certificate terms (sat-method §4), the empirical improvement check, majority vote, advantage
 * normalisation, the GAE recursion against its defining sum, and the trust-region statistics.
 */
import { majorityVote } from "../src/team/rollout.js";
import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/engine/rng.js";
import {
  certificate,
  certificateAMax,
  expectedTvBound,
  dkwSlack,
  empiricalImprovement,
  gaeScores,
  normaliseAdvantages,
  prepareBatch,
  weightedQuantile,
  type Trajectory,
} from "../src/algorithm/index.js";

test("certificate: every term follows the discounted bound with each agent's δ_i and N_i", () => {
  const agents = [
    { surrogateGain: 0.3, klRadius: 0.01, truncBias: 0.02, numEpisodes: 64, tvBound: 0.2 },
    { surrogateGain: 0.1, klRadius: 0.04, truncBias: 0.0, numEpisodes: 16, tvBound: 0.3 },
    { surrogateGain: 0.0, klRadius: 0, truncBias: 0.0, numEpisodes: 0, tvBound: 0 },
  ];
  const gamma = 0.5;
  const aMax = 2;
  const c = certificate(agents, { gamma, aMax, confidence: 0.1 });
  // Written out by hand: 2γ/(1−γ)² = 4, 1/(1−γ) = 2, log(2n/δ_conf) = log 60.
  assert.ok(Math.abs(c.surrogateSum - 0.4) < 1e-15);
  assert.ok(Math.abs(c.occupancyPenalty - 4 * 2 * (Math.sqrt(0.005) + Math.sqrt(0.02))) < 1e-14);
  assert.ok(Math.abs(c.biasPenalty - 0.04) < 1e-15);
  const sample = 2 * 2 * (Math.sqrt(Math.log(60) / 128) + Math.sqrt(Math.log(60) / 32));
  assert.ok(Math.abs(c.samplePenalty - sample) < 1e-14);
  assert.ok(Math.abs(c.lowerBound - (0.4 - c.occupancyPenalty - 0.04 - sample)) < 1e-14);
  assert.equal(c.vacuous, 1);
  // CPO-style bound: the same terms with the expected-TV occupancy 4·A_max·Σ TV̄ = 4·2·0.5.
  assert.ok(Math.abs(c.cpoOccupancyPenalty - 4) < 1e-14);
  assert.ok(Math.abs(c.cpoBound - (0.4 - 4 - 0.04 - sample)) < 1e-14);
  const tiny = certificate(
    [{ surrogateGain: 1, klRadius: 1e-8, truncBias: 0, numEpisodes: 1e9, tvBound: 1e-5 }],
    {
      gamma: 0.1,
      aMax: 1,
      confidence: 0.05,
    },
  );
  assert.equal(tiny.vacuous, 0);
  assert.ok(tiny.lowerBound > 0);
  assert.throws(() => certificate(agents, { gamma: 1, aMax, confidence: 0.1 }), /gamma must be in \(0, 1\)/);
  assert.equal(certificateAMax(5, true, 8), Math.sqrt(7));
  assert.equal(certificateAMax(2, true, 8), 2);
  assert.equal(certificateAMax(5, false, 8), 5);
  assert.equal(certificateAMax(5, true, 8, false), 5, "weighted z-scores are bounded by A_clip only");
});

test("certificate: the paper's and the CPO-style bounds against formulas written from the papers", () => {
  const rng = new Rng(11);
  for (let trial = 0; trial < 50; trial++) {
    const n = 1 + rng.int(4);
    const gamma = 0.5 + 0.49 * rng.uniform();
    const aMax = 0.5 + 4 * rng.uniform();
    const conf = 0.01 + 0.2 * rng.uniform();
    const agents = Array.from({ length: n }, () => ({
      surrogateGain: rng.normal(),
      klRadius: 0.1 * rng.uniform(),
      truncBias: 0.05 * rng.uniform(),
      numEpisodes: 1 + rng.int(500),
      tvBound: rng.uniform(),
    }));
    const c = certificate(agents, { gamma, aMax, confidence: conf });
    // Thm 4.4 + Pinsker + Thm 4.9 of the paper, term by term over agents.
    let paper = 0;
    let cpo = 0;
    for (const a of agents) {
      const est =
        a.truncBias / (1 - gamma) +
        (aMax / (1 - gamma)) * Math.sqrt(Math.log((2 * n) / conf) / (2 * a.numEpisodes));
      paper +=
        a.surrogateGain - (2 * gamma * aMax * Math.sqrt(a.klRadius / 2)) / ((1 - gamma) * (1 - gamma)) - est;
      cpo += a.surrogateGain - (2 * gamma * aMax * a.tvBound) / ((1 - gamma) * (1 - gamma)) - est;
    }
    assert.ok(
      Math.abs(c.lowerBound - paper) < 1e-9 * (1 + Math.abs(paper)),
      `paper bound ${c.lowerBound} vs ${paper}`,
    );
    assert.ok(Math.abs(c.cpoBound - cpo) < 1e-9 * (1 + Math.abs(cpo)), `cpo bound ${c.cpoBound} vs ${cpo}`);
  }
});

test("certificate: a checked step's expected-TV bound is (1 − α − s)·sqrt(δ/2) + α + s", () => {
  assert.ok(Math.abs(expectedTvBound(0.02, 0.99, 0.05) - (0.94 * 0.1 + 0.06)) < 1e-15);
  assert.equal(expectedTvBound(0.02, 0.5, 0.6), 1);
  assert.ok(Math.abs(expectedTvBound(0.08, 1, 0) - 0.2) < 1e-15);
});

test("certificate: weighted z-scores exceed sqrt(G−1), so reweighted stages use A_clip", () => {
  // One heavy trajectory among light ones: its weighted z-score reaches 1/sqrt(w_heavy·(1−w_heavy)) > sqrt(G−1).
  const { adv } = normaliseAdvantages(
    Float64Array.of(1, 0, 0, 0),
    new Uint8Array(4).fill(1),
    Float64Array.of(0.04, 1, 1, 1),
    [[0, 1, 2, 3]],
    "group",
    100,
  );
  assert.ok(adv[0] > Math.sqrt(3) + 1, `z = ${adv[0]}`);
});

test("group z-scores respect |z| ≤ sqrt(G−1), the A_max the certificate uses", () => {
  const rng = new Rng(3);
  for (let i = 0; i < 200; i++) {
    const G = 2 + rng.int(10);
    const scores = Float64Array.from({ length: G }, () => (rng.uniform() < 0.8 ? 0 : rng.normal()));
    const { adv } = normaliseAdvantages(
      scores,
      new Uint8Array(G).fill(1),
      new Float64Array(G).fill(1),
      [[...Array(G).keys()]],
      "group",
      100,
    );
    for (const z of adv) assert.ok(Math.abs(z) <= Math.sqrt(G - 1) + 1e-9);
    let m = 0;
    for (const z of adv) m += z;
    assert.ok(Math.abs(m) < 1e-9);
  }
  // Clipping and the reported clip fraction.
  const { adv, clipFrac } = normaliseAdvantages(
    Float64Array.of(0, 0, 0, 10),
    new Uint8Array(4).fill(1),
    new Float64Array(4).fill(1),
    [[0, 1, 2, 3]],
    "none",
    5,
  );
  assert.deepEqual(Array.from(adv), [-2.5, -2.5, -2.5, 5]);
  assert.equal(clipFrac, 0.25);
});

test("empirical improvement: Welch interval, monotonicity violation only when significantly negative", () => {
  const before = [1, 2, 3, 4];
  const after = [2, 3, 4, 5];
  const r = empiricalImprovement(before, after);
  const se = Math.sqrt(5 / 3 / 4 + 5 / 3 / 4);
  assert.equal(r.improvement, 1);
  assert.ok(Math.abs(r.ciLow - (1 - 1.959963984540054 * se)) < 1e-12);
  assert.equal(r.monotonicityViolation, 0);
  const rng = new Rng(1);
  const big = (mu: number) => Array.from({ length: 400 }, () => mu + 0.1 * rng.normal());
  assert.equal(empiricalImprovement(big(1), big(0.9)).monotonicityViolation, 1);
  assert.equal(empiricalImprovement(big(1), big(1)).monotonicityViolation, 0);
  assert.throws(() => empiricalImprovement([1], [1, 2]), /need ≥ 2 rewards/);
});

test("majority vote: most frequent answer, ties to the lowest agent index, nulls ignored", () => {
  assert.equal(majorityVote(["3", "4", "4"]), "4");
  assert.equal(majorityVote(["7", "5", "5", "7"]), "7");
  assert.equal(majorityVote([null, "5", "7"]), "5");
  assert.equal(majorityVote([null, null]), null);
  assert.equal(majorityVote(["2", null, "9", "9", "2"]), "2");
});

test("weighted quantile and DKW slack", () => {
  const v = [5, 1, 4, 2, 3];
  assert.equal(weightedQuantile(v, null, 0.99), 5);
  assert.equal(weightedQuantile(v, null, 0.6), 3);
  assert.equal(weightedQuantile(v, null, 0.61), 4);
  assert.equal(weightedQuantile(v, [0, 0, 0, 1, 1], 0.5), 2);
  assert.equal(weightedQuantile([], null, 0.9), 0);
  assert.ok(Math.abs(dkwSlack(100, 0.05) - Math.sqrt(Math.log(40) / 200)) < 1e-15);
});

test("GAE recursion equals its definition Σ_l (γλ)^l Π_{m≤l} c_{t+m} δ_{t+l}", () => {
  const rng = new Rng(2);
  const L = 7;
  const owner = Int8Array.from([-1, 0, 1, 0, 1, 0, 1]);
  const tr: Trajectory = {
    promptId: 0,
    groupId: 0,
    tokens: new Int32Array(L),
    owner,
    behaviourLogp: new Float64Array(L),
    ownerVersion: new Int32Array(L),
    reward: 0,
    stepRewards: Float64Array.from({ length: L }, () => rng.normal()),
    answer: null,
    truncated: true,
  };
  const values = Float64Array.from({ length: L + 1 }, () => rng.normal());
  const value = {
    values: (_: readonly Trajectory[], refs: readonly { t: number }[]) =>
      Float64Array.from(refs, (r) => values[r.t]),
  };
  const logTrace = [Float64Array.from(owner, (o) => (o === 1 ? Math.log(rng.uniform()) : 0))];
  const gamma = 0.9;
  const lam = 0.8;
  const batch = prepareBatch([tr], 2, 1);
  const got = gaeScores(batch, 0, value, logTrace, gamma, lam)[0];
  const delta = (t: number) => tr.stepRewards![t] + gamma * values[t + 1] - values[t];
  let sum = 0;
  let cnt = 0;
  for (let t = 0; t < L; t++) {
    if (owner[t] !== 0) continue;
    let a = 0;
    for (let l = 0; t + l < L; l++) {
      let c = 1;
      for (let m = 1; m <= l; m++) c *= Math.exp(logTrace[0][t + m]);
      a += (gamma * lam) ** l * c * delta(t + l);
    }
    sum += a;
    cnt++;
  }
  assert.ok(Math.abs(got - sum / cnt) < 1e-12, `${got} vs ${sum / cnt}`);
  assert.ok(
    Number.isNaN(
      gaeScores(
        prepareBatch([{ ...tr, owner: new Int8Array(L).fill(1) }], 2, 1),
        0,
        value,
        logTrace,
        gamma,
        lam,
      )[0],
    ),
  );
});

test("batch validation names the trajectory and the field", () => {
  const tr: Trajectory = {
    promptId: 3,
    groupId: 1,
    tokens: Int32Array.of(0, 1),
    owner: Int8Array.of(0),
    behaviourLogp: new Float64Array(2),
    ownerVersion: new Int32Array(2),
    reward: 1,
    answer: null,
    truncated: false,
  };
  assert.throws(
    () => prepareBatch([tr], 1, 2),
    /trajectory 0 \(prompt 3, group 1\): owner has length 1, tokens 2/,
  );
  assert.throws(
    () => prepareBatch([{ ...tr, owner: Int8Array.of(0, 2) }], 2, 2),
    /owner\[1\] = 2 outside \[-1, 2\)/,
  );
  assert.throws(
    () => prepareBatch([{ ...tr, owner: Int8Array.of(0, 0), tokens: Int32Array.of(0, 5) }], 1, 2),
    /tokens\[1\] = 5 outside \[0, 2\)/,
  );
  assert.throws(() => prepareBatch([], 1, 2), /no trajectories/);
});
