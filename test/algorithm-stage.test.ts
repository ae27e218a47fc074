/**
 * runStage (Algorithm 1) on the tabular test bed: surrogate gradients, backtracking that never
 * accepts a violation and restores the optimizer state bit for bit, the null update, determinism,
 * reweight vs resample, exact intermediate weights, a really computed greedy order, GAE, baselines,
 * metric names, and config errors.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/engine/rng.js";
import { numericGrad } from "../src/engine/check.js";
import { withoutTiming } from "./sat-process.js";
const recordJson = (r: unknown) => JSON.stringify(withoutTiming(r));
import {
  defaultStageConfig,
  klRow,
  prepareBatch,
  runStage,
  surrogate,
  weightedQuantile,
  type MetricRecord,
  type StageConfig,
  type StageRecord,
  type TrainablePolicy,
  type Trajectory,
} from "../src/algorithm/index.js";
import {
  ExactValue,
  TabularPolicy,
  climbingGame,
  makeCollect,
  matrixGame,
  randomGame,
  sampleTrajectories,
  type TabularGame,
} from "../src/testbed/index.js";

const GAME_OPTS = { numStates: 5, numActions: 3, numAgents: 3, gamma: 0.8 };

function makeTeam(n: number, S: number, A: number, lr: number, rng?: Rng): TabularPolicy[] {
  return Array.from(
    { length: n },
    () =>
      new TabularPolicy(
        S,
        A,
        { kind: "adam", lr },
        rng ? Float64Array.from({ length: S * A }, () => rng.normal()) : undefined,
      ),
  );
}

test("surrogate gradient matches finite differences, through rows and through the tabular policy", () => {
  const rng = new Rng(1);
  const game = randomGame(rng, GAME_OPTS);
  const team = makeTeam(3, 5, 3, 0.1, rng);
  const trajs = sampleTrajectories(game, team, 4, rng, { groupSize: 3 });
  const batch = prepareBatch(trajs, 3, 3);
  const a = 1;
  const ag = batch.agents[a];
  const cur = Float64Array.from(team[a].logProbs(trajs, ag.refs));
  const curChosen = Float64Array.from(ag.tokens, (tok, k) => cur[k * 3 + tok]);
  const N = trajs.length;
  const d = {
    V: 3,
    agent: ag,
    curRows: cur,
    curChosen,
    adv: Float64Array.from({ length: N }, () => rng.normal()),
    w: Float64Array.from({ length: N }, () => 0.3 + rng.uniform()),
    prior: new Float64Array(N).fill(1),
    clipLow: 0.2,
    clipHigh: 0.3,
    beta: 0.7,
  };
  const trajList = [...Array(N).keys()].filter((i) => ag.offsets[i + 1] > ag.offsets[i]);
  // Move the policy a little so ratios differ from 1 (some clipped, some not).
  const logits = team[a].getParams();
  for (let i = 0; i < logits.length; i++) logits[i] += 0.15 * rng.normal();
  const rows = Float64Array.from(team[a].logProbs(trajs, ag.refs));
  const dlogp = new Float64Array(rows.length);
  surrogate(d, trajList, rows, dlogp);
  const num = numericGrad(() => -surrogate(d, trajList, rows, null).objective, rows, 1e-6);
  for (let k = 0; k < rows.length; k++)
    assert.ok(Math.abs(num[k] - dlogp[k]) < 1e-6, `row entry ${k}: ${num[k]} vs ${dlogp[k]}`);
  // Chain through log-softmax: gradient on the logits.
  team[a].logProbs(trajs, ag.refs);
  team[a].zeroGrad();
  team[a].backward(dlogp);
  const analytic = team[a].gradient();
  const numLogits = numericGrad(
    () => -surrogate(d, trajList, team[a].logProbs(trajs, ag.refs), null).objective,
    logits,
    1e-6,
  );
  for (let i = 0; i < logits.length; i++)
    assert.ok(Math.abs(numLogits[i] - analytic[i]) < 1e-6, `logit ${i}: ${numLogits[i]} vs ${analytic[i]}`);
});

/** A TabularPolicy that records its optimizer state when the epochs end (first setStepScale or endUpdate). */
class RecordingPolicy extends TabularPolicy {
  postEpoch: ReturnType<TabularPolicy["optimizerState"]> | null = null;
  scales: number[] = [];
  override beginUpdate(): void {
    this.postEpoch = null;
    this.scales = [];
    super.beginUpdate();
  }
  override setStepScale(scale: number): void {
    this.postEpoch ??= this.optimizerState();
    this.scales.push(scale);
    super.setStepScale(scale);
  }
  override endUpdate(kept: number): void {
    this.postEpoch ??= this.optimizerState();
    super.endUpdate(kept);
  }
}

test("adam rewind: accepted, backtracked and null updates keep the epochs' second moments and step count; parameters are exact", async () => {
  const rng = new Rng(4);
  const game = randomGame(rng, GAME_OPTS);
  const delta = 1e-3;
  const team = [0, 1, 2].map(() => new RecordingPolicy(5, 3, { kind: "adam", lr: 0.3 }));
  const cfg = defaultStageConfig(3, {
    promptsPerStage: 8,
    miniBatchGroups: 2,
    epochs: 2,
    klRadius: [delta, delta, delta],
  });
  const sampler = makeCollect(game, { kind: "sample", rng: rng.fork("rollout"), groupSize: 4 });
  let lastBatch: Trajectory[] = [];
  const collect = (t: TrainablePolicy[], n: number) => (lastBatch = sampler(t, n) as Trajectory[]);
  let beta = [0.01, 0.01, 0.01];
  const seen = { nulls: 0, backtracked: 0, full: 0 };
  for (let step = 0; step < 6; step++) {
    const before = team.map((p) => ({
      probs: p.probTable(),
      logits: Float64Array.from(p.getParams()),
      opt: p.optimizerState(),
    }));
    const rec = await runStage({ team, collect, config: cfg, klCoef: beta, rng: new Rng(100 + step), step });
    for (const r of rec.agents) {
      const p = team[r.agent];
      const after = p.optimizerState();
      const post = p.postEpoch!;
      // The epochs took E × minibatch steps; none of them is ever rewound.
      const steps =
        cfg.epochs * Math.ceil(new Set(lastBatch.map((t) => t.groupId)).size / cfg.miniBatchGroups);
      assert.equal(after.step, before[r.agent].opt.step + steps, "step count kept");
      assert.deepEqual(after.v, post.v, "second moments kept");
      if (!r.accepted) {
        seen.nulls++;
        assert.equal(r.stepScale, 0);
        assert.deepEqual(p.getParams(), before[r.agent].logits, "null update restores θ_cur bit for bit");
        assert.ok(
          after.m.every((x) => x === 0),
          "null update clears the momentum",
        );
        continue;
      }
      // Independent check of the kept parameters: exact per-state KL over the agent's states in the batch.
      const kls: number[] = [];
      for (const tr of lastBatch)
        tr.owner.forEach((o, t) => {
          if (o !== r.agent) return;
          const s = tr.states![t];
          kls.push(
            klRow(
              Float64Array.from(p.probTable().subarray(s * 3, s * 3 + 3), Math.log),
              0,
              Float64Array.from(before[r.agent].probs.subarray(s * 3, s * 3 + 3), Math.log),
              0,
              3,
            ),
          );
        });
      assert.ok(
        weightedQuantile(kls, null, cfg.klQuantile) <= delta,
        "accepted update outside the trust region",
      );
      assert.ok(r.klQuantile <= delta && r.surrogateGain > 0);
      assert.ok(Math.abs(r.stepScale - 0.8 ** r.backtracks) < 1e-15);
      assert.deepEqual(
        p.scales,
        Array.from({ length: r.backtracks }, (_, j) => 0.8 ** (j + 1)),
      );
      if (r.backtracks > 0) seen.backtracked++;
      else seen.full++;
      // Momentum kept in proportion to the step taken: ξ^j · m_post.
      assert.deepEqual(
        after.m,
        post.m.map((x) => x * r.stepScale),
      );
    }
    beta = rec.agents.map((a) => a.klCoefNext);
  }
  assert.ok(seen.nulls > 0 && seen.backtracked > 0, JSON.stringify(seen));
});

async function runStages(
  cfg: StageConfig,
  game: TabularGame,
  seed: number,
  stages: number,
  gae = false,
): Promise<StageRecord[]> {
  const rng = new Rng(seed);
  const team = makeTeam(game.numAgents, game.numStates, game.numActions, 0.05, rng.fork("init"));
  const collect = makeCollect(game, { kind: "sample", rng: rng.fork("rollout"), groupSize: 4 });
  const value = gae ? new ExactValue(game, team) : undefined;
  let beta = new Array(game.numAgents).fill(0.05);
  const out: StageRecord[] = [];
  for (let step = 0; step < stages; step++) {
    const rec = await runStage({
      team,
      collect,
      config: cfg,
      klCoef: beta,
      rng: rng.fork(`stage/${step}`),
      step,
      value,
    });
    beta = rec.agents.map((a) => a.klCoefNext);
    out.push(rec);
  }
  return out;
}

test("same seed gives bit-identical stage records (sampled rollouts, random order, reweight and gae)", async () => {
  const game = randomGame(new Rng(3), GAME_OPTS);
  for (const cfg of [
    defaultStageConfig(3, { order: "random" }),
    defaultStageConfig(3, { order: "greedy", advEstimator: "gae", gamma: 1 }),
  ]) {
    const gae = cfg.advEstimator === "gae";
    const a = await runStages(cfg, game, 12, 3, gae);
    const b = await runStages(cfg, game, 12, 3, gae);
    assert.equal(recordJson(a), recordJson(b));
    const c = await runStages(cfg, game, 13, 3, gae);
    assert.notEqual(recordJson(a), recordJson(c));
  }
});

test("reweight and resample both run: resample collects once per agent and is on-policy (w = 1)", async () => {
  const game = randomGame(new Rng(5), GAME_OPTS);
  for (const intermediate of ["reweight", "resample"] as const) {
    const rng = new Rng(6);
    const team = makeTeam(3, 5, 3, 0.05, rng);
    const sampler = makeCollect(game, { kind: "sample", rng: rng.fork("rollout"), groupSize: 4 });
    let calls = 0;
    const collect = (t: TrainablePolicy[], n: number) => {
      calls++;
      return sampler(t, n);
    };
    const cfg = defaultStageConfig(3, { intermediate, order: "static", klRadius: [0.02, 0.02, 0.02] });
    let truncated = 0;
    for (let step = 0; step < 3; step++) {
      const rec = await runStage({
        team,
        collect,
        config: cfg,
        klCoef: [0.05, 0.05, 0.05],
        rng: new Rng(step),
        step,
      });
      for (const r of rec.agents) {
        assert.ok(Number.isFinite(r.surrogateGain) && Number.isFinite(r.klMean));
        if (intermediate === "resample") {
          assert.equal(r.isWeightMean, 1);
          assert.equal(r.truncBias, 0);
        } else if (r.position > 0 && r.isWeightMin < 1) truncated++;
      }
    }
    assert.equal(calls, intermediate === "resample" ? 9 : 3);
    if (intermediate === "reweight") assert.ok(truncated > 0, "later agents should see truncated weights");
  }
});

test("intermediate weights are w(τ) = Π min(1, ρ_t) of the agents already updated (exact climbing game)", async () => {
  const game = climbingGame();
  const team = makeTeam(2, 1, 3, 0.05, new Rng(2));
  const p0 = team[0].probTable();
  const p1 = team[1].probTable();
  const cfg = defaultStageConfig(2, {
    order: "static",
    promptsPerStage: 1,
    miniBatchGroups: 1,
    epochs: 4,
    scaleRewards: "none",
    advClip: 100,
  });
  const rec = await runStage({
    team,
    collect: makeCollect(game, { kind: "exact" }),
    config: cfg,
    klCoef: [0.1, 0.1],
    rng: new Rng(0),
    step: 0,
  });
  assert.equal(rec.agents[0].accepted, 1);
  const q0 = team[0].probTable();
  // Independent: E_{π_cur}[min(1, π0_new/π0_cur)] and its minimum.
  let mean = 0;
  let min = Infinity;
  for (let a0 = 0; a0 < 3; a0++) {
    const w = Math.min(1, q0[a0] / p0[a0]);
    for (let a1 = 0; a1 < 3; a1++) mean += p0[a0] * p1[a1] * w;
    min = Math.min(min, w);
  }
  assert.ok(Math.abs(rec.agents[1].isWeightMean - mean) < 1e-12, `${rec.agents[1].isWeightMean} vs ${mean}`);
  assert.ok(Math.abs(rec.agents[1].isWeightMin - min) < 1e-12);
  assert.equal(rec.agents[0].isWeightMean, 1);
});

test("greedy order is computed from predicted gains: the agent whose action matters goes first", async () => {
  // Reward depends on one agent's action only; the other agent's exact predicted gain is 0.
  for (const leader of [0, 1]) {
    const M = [0, 1, 2].map((a0) => [0, 1, 2].map((a1) => ((leader === 0 ? a0 : a1) === 2 ? 1 : 0)));
    const game = matrixGame("one-matters", M);
    const team = makeTeam(2, 1, 3, 0.05);
    const cfg = defaultStageConfig(2, {
      order: "greedy",
      promptsPerStage: 1,
      miniBatchGroups: 1,
      scaleRewards: "none",
    });
    const rec = await runStage({
      team,
      collect: makeCollect(game, { kind: "exact" }),
      config: cfg,
      klCoef: [0.1, 0.1],
      rng: new Rng(1),
      step: 0,
    });
    assert.deepEqual(rec.sigma, [leader, 1 - leader]);
    const g = rec.agents.map((r) => r.gainPredicted!);
    assert.ok(g[leader] > 1e-4, `leader gain ${g[leader]}`);
    assert.ok(Math.abs(g[1 - leader]) < 1e-12, `follower gain ${g[1 - leader]}`);
    if (leader === 0) {
      // σ equals the static order here: the trial steps were undone, so everything else is identical.
      const staticTeam = makeTeam(2, 1, 3, 0.05);
      const st = await runStage({
        team: staticTeam,
        collect: makeCollect(game, { kind: "exact" }),
        config: { ...cfg, order: "static" },
        klCoef: [0.1, 0.1],
        rng: new Rng(1),
        step: 0,
      });
      const strip = (r: StageRecord) => recordJson(r.agents.map((a) => ({ ...a, gainPredicted: null })));
      assert.equal(strip(rec), strip(st));
      assert.deepEqual(
        team.map((p) => Array.from(p.logits)),
        staticTeam.map((p) => Array.from(p.logits)),
      );
    }
  }
});

test("gae with exact values, γ = λ = 1: the first agent's advantages equal the group estimator's", async () => {
  const game = climbingGame();
  const records: StageRecord[] = [];
  for (const advEstimator of ["group", "gae"] as const) {
    const team = makeTeam(2, 1, 3, 0.05, new Rng(9));
    const cfg = defaultStageConfig(2, {
      order: "static",
      advEstimator,
      gamma: 1,
      lam: 1,
      promptsPerStage: 1,
      miniBatchGroups: 1,
    });
    const value = new ExactValue(game, team);
    records.push(
      await runStage({
        team,
        collect: makeCollect(game, { kind: "exact" }),
        config: cfg,
        klCoef: [0.1, 0.1],
        rng: new Rng(3),
        step: 0,
        value,
      }),
    );
  }
  const [g, e] = records.map((r) => r.agents[0]);
  for (const k of ["advMean", "advMin", "advMax", "surrogateGain", "klMax"] as const)
    assert.ok(Math.abs(g[k] - e[k]) < 1e-9, `${k}: ${g[k]} vs ${e[k]}`);
  // Agent 1 acts second: its GAE advantage R − V(s, a0) differs from the group one.
  assert.ok(Math.abs(records[0].agents[1].advMax - records[1].agents[1].advMax) > 1e-6);
  await assert.rejects(
    runStage({
      team: makeTeam(2, 1, 3, 0.05),
      collect: makeCollect(game, { kind: "exact" }),
      config: defaultStageConfig(2, { advEstimator: "gae", promptsPerStage: 1, miniBatchGroups: 1 }),
      klCoef: [0.1, 0.1],
      rng: new Rng(0),
      step: 0,
    }),
    /needs a value function/,
  );
});

test("baselines run through the same code path; metrics carry the conventions.md names", async () => {
  const game = randomGame(new Rng(8), GAME_OPTS);
  for (const algo of ["joint", "happo"] as const) {
    const recs = await runStages(
      defaultStageConfig(3, { algo, order: algo === "joint" ? "static" : "random" }),
      game,
      4,
      2,
    );
    for (const r of recs)
      for (const a of r.agents) {
        assert.equal(a.accepted, 1);
        assert.equal(a.stepScale, 1);
        assert.equal(a.klCoef, 0);
        assert.equal(a.truncBias, 0);
        assert.ok(a.klMax >= 0 && a.klMax > 0);
      }
    if (algo === "joint") assert.ok(recs.every((r) => r.agents.every((a) => a.isWeightMean === 1)));
    else assert.ok(recs.some((r) => r.agents.some((a) => a.position > 0 && a.isWeightMean !== 1)));
  }
  const single = matrixGame("solo", [
    [1, 0],
    [0, 0],
  ]);
  const solo = {
    ...single,
    numAgents: 1,
    active: [[0]],
    reward: [Float64Array.of(1, 0)],
    transition: [new Float64Array(2)],
  };
  const recs = await runStages(defaultStageConfig(1, { algo: "single", order: "static" }), solo, 1, 2);
  assert.equal(recs[1].agents.length, 1);
  await assert.rejects(
    runStages(defaultStageConfig(3, { algo: "single" }), game, 1, 1),
    /algo.name=single trains one agent, the team has 3/,
  );

  const metrics: MetricRecord[] = [];
  const team = makeTeam(3, 5, 3, 0.05);
  const rng = new Rng(2);
  const collect = makeCollect(game, { kind: "sample", rng, groupSize: 4 });
  await runStage({
    team,
    collect,
    config: defaultStageConfig(3),
    klCoef: [0.1, 0.1, 0.1],
    rng,
    step: 7,
    sink: (m) => metrics.push(m),
    collectHeldOut: collect,
    heldOutPrompts: 8,
  });
  const keys = new Set(metrics.map((m) => `${m.agent === null ? "T" : "A"}:${m.key}`));
  for (const k of [
    "T:order/sigma",
    "T:reward/mean",
    "T:reward/frac_zero_std",
    "T:cert/lower_bound",
    "T:cert/vacuous",
    "T:cert/improvement_ci_low",
    "T:cert/monotonicity_violation",
    "T:timing_s/gen",
    "A:trust_region/kl_quantile",
    "A:trust_region/violation_rate",
    "A:trust_region/step_scale",
    "A:surrogate/gain",
    "A:is/ess",
    "A:is/trunc_bias",
    "A:sampling/logp_diff/max",
    "A:timing_s/update_actor",
  ])
    assert.ok(keys.has(k), `missing metric ${k}`);
  assert.ok(metrics.every((m) => m.step === 7));
  // The test bed samples from exactly the policy the trainer scores.
  assert.ok(metrics.filter((m) => m.key === "sampling/logp_diff/max").every((m) => m.value === 0));
});

test("config errors name the key and the fix", async () => {
  const game = randomGame(new Rng(8), GAME_OPTS);
  const cases: [Partial<StageConfig>, RegExp][] = [
    [{ klRadius: [0.01] }, /algo.kl_radius: needs one radius per agent \(3\)/],
    [{ epochs: 1, miniBatchGroups: 8 }, /algo.ppo_epochs × minibatches = 1/],
    [{ trustRegion: "tight" as never }, /algo.trust_region: .*got "tight"/],
    [{ klCoefRule: "shrink" as never }, /algo.kl_coef_rule: .*got "shrink"/],
    [{ algo: "joint", order: "greedy" }, /greedy has no meaning for algo.name=joint/],
    [{ algo: "joint", intermediate: "resample" }, /resample has no meaning/],
    [{ backtrackRatio: 1 }, /algo.backtrack_ratio: .*got 1$/],
    [{ order: "sideways" as never }, /algo.order: .*got "sideways"/],
  ];
  for (const [over, re] of cases)
    await assert.rejects(runStages(defaultStageConfig(3, over), game, 1, 1), re);
});
