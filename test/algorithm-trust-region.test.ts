/**
 * The SAT core's trust region and estimators, each checked against an independent computation so
 * that a wrong variant fails (scripts/mutation.mjs applies such variants and lists the survivors):
 * adaptive β, the trust-region switch (checked / penalty / none) on every algorithm, the token-level
 * ratio, the KL direction, intermediate-policy advantages (group and GAE), the weighted advantage
 * statistics, the truncation bias ζ, generated-token counts and the paired held-out improvement.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/engine/rng.js";
import { numericGrad } from "../src/engine/check.js";
import {
  clipTerm,
  defaultStageConfig,
  klRow,
  nextKlCoef,
  normaliseAdvantages,
  pairedImprovement,
  RowLearner,
  runStage,
  type AgentLearner,
  type Measurement,
  type StageConfig,
  type UpdateOutcome,
  type UpdateSpec,
  type Trajectory,
  type StateRef,
  type ValuePolicy,
} from "../src/algorithm/index.js";
import {
  ExactValue,
  TabularPolicy,
  makeCollect,
  randomGame,
  type TabularGame,
} from "../src/testbed/index.js";

const GAME_OPTS = { numStates: 5, numActions: 3, numAgents: 3, gamma: 0.8 };

function makeTeam(game: TabularGame, lr: number, rng: Rng): TabularPolicy[] {
  return Array.from(
    { length: game.numAgents },
    () =>
      new TabularPolicy(
        game.numStates,
        game.numActions,
        { kind: "adam", lr },
        Float64Array.from({ length: game.numStates * game.numActions }, () => rng.normal()),
      ),
  );
}

/** A learner that records what the stage hands it and what it measured last. */
class SpyLearner extends RowLearner {
  given: UpdateSpec | null = null;
  cur: Float64Array | null = null;
  last: Measurement | null = null;
  override beginUpdate(spec: UpdateSpec) {
    this.given = spec;
    const r = super.beginUpdate(spec);
    this.cur = r.chosen;
    return r;
  }
  override measure(): Measurement {
    this.last = super.measure();
    return this.last;
  }
}

function outcome(fullQuantile: number, violations: number): UpdateOutcome {
  return { fullQuantile, violations } as UpdateOutcome;
}

test("adaptive beta: β × g above δ, ÷ g below δ/g, kept between, clamped; grow only rises; none keeps β", () => {
  const cfg = defaultStageConfig(1, { klCoefGrowth: 1.5, klCoefMin: 0.01, klCoefMax: 2 });
  const d = 0.01;
  assert.equal(nextKlCoef(0.1, outcome(0.02, 1), d, cfg, "checked"), 0.1 * 1.5);
  assert.equal(nextKlCoef(0.1, outcome(0.005, 0), d, cfg, "checked"), 0.1 / 1.5);
  assert.equal(nextKlCoef(0.1, outcome(0.008, 0), d, cfg, "checked"), 0.1);
  assert.equal(nextKlCoef(0.1, outcome(0.008, 0), d, cfg, "penalty"), 0.1);
  assert.equal(nextKlCoef(0.011, outcome(0, 0), d, cfg, "checked"), 0.01, "clamped below");
  assert.equal(nextKlCoef(1.9, outcome(1, 1), d, cfg, "checked"), 2, "clamped above");
  const grow = { ...cfg, klCoefRule: "grow" as const };
  assert.equal(nextKlCoef(0.1, outcome(0, 0), d, grow, "checked"), 0.1, "grow never lowers β");
  assert.equal(
    nextKlCoef(0.1, outcome(0.001, 1), d, grow, "checked"),
    0.1 * 1.5,
    "grow: any violating candidate",
  );
  assert.equal(nextKlCoef(0.1, outcome(1, 3), d, cfg, "none"), 0.1, "no penalty, no adaptation");
  assert.equal(nextKlCoef(0.1, null, d, cfg, "checked"), 0.1, "an agent that did not act");
});

test("adaptive beta: in a run whose steps stay well inside δ, β falls, and the record's β is the one used", async () => {
  const game = randomGame(new Rng(21), GAME_OPTS);
  const rng = new Rng(22);
  const team = makeTeam(game, 0.01, rng.fork("init"));
  const collect = makeCollect(game, { kind: "sample", rng: rng.fork("rollout"), groupSize: 4 });
  const cfg = defaultStageConfig(3, { klRadius: [0.5, 0.5, 0.5] });
  let beta = [1, 1, 1];
  let fell = 0;
  for (let step = 0; step < 4; step++) {
    const rec = await runStage({ team, collect, config: cfg, klCoef: beta, rng: rng.fork(`s${step}`), step });
    for (const a of rec.agents) {
      assert.equal(a.klCoef, beta[a.agent]);
      if (a.klCoefNext < a.klCoef) fell++;
    }
    beta = rec.agents.map((a) => a.klCoefNext);
  }
  assert.ok(fell > 0, "β decreased at least once");
});

async function stagesOf(cfg: StageConfig, seed: number, stages = 3) {
  const game = randomGame(new Rng(seed), GAME_OPTS);
  const rng = new Rng(seed + 1);
  const team = makeTeam(game, 0.3, rng.fork("init"));
  const collect = makeCollect(game, { kind: "sample", rng: rng.fork("rollout"), groupSize: 4 });
  const out = [];
  let beta = [0.05, 0.05, 0.05];
  for (let step = 0; step < stages; step++) {
    const rec = await runStage({ team, collect, config: cfg, klCoef: beta, rng: rng.fork(`s${step}`), step });
    beta = rec.agents.map((a) => a.klCoefNext);
    out.push(rec);
  }
  return out;
}

test("trust region: every algorithm takes checked | penalty | none; checked never accepts a step outside δ", async () => {
  const delta = 2e-3;
  for (const algo of ["sat", "joint", "happo"] as const) {
    const order = algo === "joint" ? "static" : "random";
    const checked = await stagesOf(
      defaultStageConfig(3, { algo, order, trustRegion: "checked", klRadius: [delta, delta, delta] }),
      30,
    );
    let backtracked = 0;
    for (const r of checked) {
      assert.equal(r.trustRegion, "checked");
      for (const a of r.agents) {
        assert.ok(a.klCoef > 0, `${algo}+checked uses β`);
        if (a.accepted) assert.ok(a.klQuantile <= delta, `${algo}: accepted ${a.klQuantile} > δ`);
        if (a.backtracks > 0) backtracked++;
      }
    }
    assert.ok(backtracked > 0, `${algo}+checked backtracked at least once`);
    const penalty = await stagesOf(defaultStageConfig(3, { algo, order, trustRegion: "penalty" }), 30);
    for (const a of penalty.flatMap((r) => r.agents)) {
      assert.ok(a.klCoef > 0 && a.candidatesTried === 1 && a.accepted === 1, `${algo}+penalty`);
    }
    const none = await stagesOf(defaultStageConfig(3, { algo, order, trustRegion: "none" }), 30);
    for (const a of none.flatMap((r) => r.agents))
      assert.ok(a.klCoef === 0 && a.accepted === 1, `${algo}+none`);
  }
  assert.equal(defaultStageConfig(3, { algo: "joint" }).trustRegion, "none", "baselines default to none");
  assert.equal(defaultStageConfig(3).trustRegion, "checked", "sat defaults to checked");
});

test("token ratio: the token-level clip term and its gradient against a hand-written formula and finite differences", () => {
  const rng = new Rng(5);
  const offsets = Int32Array.of(0, 3, 5, 9);
  const N = 3;
  const S = 9;
  const d = {
    offsets,
    adv: Float64Array.of(1.2, -0.7, 0.4),
    w: Float64Array.of(1, 0.6, 0.9),
    prior: Float64Array.of(1, 1, 0.5),
    clipLow: 0.2,
    clipHigh: 0.25,
    ratio: "token" as const,
  };
  const cur = Float64Array.from({ length: S }, () => -1 - rng.uniform());
  const chosen = Float64Array.from(cur, (c) => c + 0.3 * rng.normal());
  const all = [0, 1, 2];
  let num = 0;
  let den = 0;
  for (let i = 0; i < N; i++)
    for (let k = offsets[i]; k < offsets[i + 1]; k++) {
      const r = Math.exp(chosen[k] - cur[k]);
      const c = Math.min(1.25, Math.max(0.8, r));
      num += d.prior[i] * d.w[i] * Math.min(r * d.adv[i], c * d.adv[i]);
      den += d.prior[i];
    }
  const v = clipTerm(d, all, chosen, cur, null);
  assert.ok(Math.abs(v.objective - num / den) < 1e-14, `${v.objective} vs ${num / den}`);
  const grad = new Float64Array(S);
  clipTerm(d, all, chosen, cur, grad);
  const fd = numericGrad(() => -clipTerm(d, all, chosen, cur, null).objective, chosen, 1e-7);
  for (let k = 0; k < S; k++)
    assert.ok(Math.abs(fd[k] - grad[k]) < 1e-6, `state ${k}: ${fd[k]} vs ${grad[k]}`);
});

test("token ratio: a single-agent GRPO stage with algo.ratio_level=token runs and improves its surrogate", async () => {
  const recs = await stagesOf(
    defaultStageConfig(3, { algo: "joint", order: "static", ratio: "token" }),
    33,
    2,
  );
  for (const a of recs.flatMap((r) => r.agents))
    assert.ok(Number.isFinite(a.surrogateGain) && a.accepted === 1);
});

test("mutation: the check measures KL(new ‖ cur) per state, not KL(cur ‖ new)", () => {
  const rng = new Rng(9);
  const game = randomGame(rng, GAME_OPTS);
  const [p] = makeTeam(game, 0.5, rng);
  const trajs = makeCollect(game, { kind: "sample", rng, groupSize: 2 })([p, p, p], 3) as Trajectory[];
  const states = trajs.flatMap((t, i) =>
    [...t.owner].flatMap((o, s) => (o === 0 ? [{ traj: i, t: s }] : [])),
  );
  const offsets = new Int32Array(trajs.length + 1);
  for (const s of states) offsets[s.traj + 1]++;
  for (let i = 0; i < trajs.length; i++) offsets[i + 1] += offsets[i];
  const N = trajs.length;
  const learner = new RowLearner(p);
  const before = Float64Array.from(p.logProbs(trajs, states));
  learner.beginUpdate({
    ...{ trajs, states, offsets, adv: new Float64Array(N).fill(1), w: new Float64Array(N).fill(1) },
    ...{ prior: new Float64Array(N).fill(1), clipLow: 0.2, clipHigh: 0.2, beta: 0, ratio: "sequence" },
  });
  for (let i = 0; i < p.logits.length; i++) p.logits[i] += rng.normal();
  const ms = learner.measure();
  const after = p.logProbs(trajs, states);
  let differs = false;
  states.forEach((_, k) => {
    const fwd = klRow(after, k * 3, before, k * 3, 3);
    const rev = klRow(before, k * 3, after, k * 3, 3);
    assert.ok(Math.abs(ms.kl[k] - fwd) < 1e-12, `state ${k}: ${ms.kl[k]} vs KL(new‖cur) ${fwd}`);
    if (Math.abs(fwd - rev) > 1e-3) differs = true;
  });
  assert.ok(differs, "the two directions differ on this case");
  learner.endUpdate(1);
});

/** A value function that records every answer it gives, in call order. */
class RecordingValue implements ValuePolicy {
  calls: { states: StateRef[]; values: Float64Array }[] = [];
  constructor(private readonly inner: ValuePolicy) {}
  values(trajs: readonly Trajectory[], states: readonly StateRef[]): Float64Array {
    const values = Float64Array.from(this.inner.values(trajs, states));
    this.calls.push({ states: [...states], values });
    return values;
  }
}

/** Runs one SAT stage with spy learners and returns them with the record. */
async function spiedStage(cfg: StageConfig, seed: number, gae = false) {
  const game = randomGame(new Rng(seed), GAME_OPTS);
  const rng = new Rng(seed + 1);
  const tab = makeTeam(game, 0.5, rng.fork("init"));
  const spies = tab.map((p) => new SpyLearner(p));
  const sample = makeCollect(game, { kind: "sample", rng: rng.fork("rollout"), groupSize: 4 });
  const value = new RecordingValue(new ExactValue(game, tab));
  const rec = await runStage({
    team: spies as AgentLearner[],
    collect: (_t, n) => sample(tab, n),
    config: cfg,
    klCoef: [0.01, 0.01, 0.01],
    rng: rng.fork("stage"),
    step: 0,
    value: gae ? value : undefined,
  });
  return { rec, spies, game, value };
}

test("mutation: a later agent's advantages are weighted by the earlier agents' truncated ratios (group and gae)", async () => {
  for (const gae of [false, true]) {
    const cfg = defaultStageConfig(3, {
      order: "static",
      klRadius: [5, 5, 5],
      ...(gae ? { advEstimator: "gae" as const, gamma: 1, lam: 1 } : {}),
    });
    const { rec, spies, value } = await spiedStage(cfg, 40, gae);
    assert.equal(rec.agents[0].accepted, 1);
    // Agent 0 (first in σ) was promoted: its per-token ratios from its own first and last measurement.
    const s0 = spies[0];
    const ratio = new Map<string, number>();
    s0.given!.states.forEach((s, k) =>
      ratio.set(`${s.traj}/${s.t}`, Math.exp(s0.last!.chosen[k] - s0.cur![k])),
    );
    const s1 = spies[1].given!;
    const N = s1.trajs.length;
    const w = Float64Array.from(s1.trajs, (t, i) => {
      let x = 1;
      t.owner.forEach((o, s) => o === 0 && (x *= Math.min(1, ratio.get(`${i}/${s}`)!)));
      return x;
    });
    for (let i = 0; i < N; i++) assert.ok(Math.abs(s1.w[i] - w[i]) < 1e-12, `w(τ${i}) ${s1.w[i]} vs ${w[i]}`);
    assert.ok(
      w.some((x) => x < 0.999),
      "the promoted agent's ratios move the weights",
    );
    const groups = new Map<number, number[]>();
    s1.trajs.forEach((t, i) => groups.set(t.groupId, [...(groups.get(t.groupId) ?? []), i]));
    let rewards = Float64Array.from(s1.trajs, (t) => t.reward);
    if (gae) {
      // Â_t = Σ_l (γλ)^l (Π_{m=1..l} c_{t+m}) δ_{t+l} (γ = λ = 1), c = min(1, ρ) on agent 0's tokens,
      // with the values the stage read for agent 1 (the second call), averaged over agent 1's tokens.
      const { states, values } = value.calls[1];
      const V = new Map(states.map((s, k) => [`${s.traj}/${s.t}`, values[k]]));
      rewards = Float64Array.from(s1.trajs, (tr, i) => {
        const L = tr.tokens.length;
        const v = (t: number) => (t === L ? (tr.truncated ? V.get(`${i}/${L}`)! : 0) : V.get(`${i}/${t}`)!);
        const c = (t: number) => (tr.owner[t] === 0 ? Math.min(1, ratio.get(`${i}/${t}`)!) : 1);
        let sum = 0;
        let n = 0;
        for (let t = 0; t < L; t++) {
          if (tr.owner[t] !== 1) continue;
          let a = 0;
          let trace = 1;
          for (let l = 0; t + l < L; l++) {
            if (l > 0) trace *= c(t + l);
            const r = tr.stepRewards ? tr.stepRewards[t + l] : t + l === L - 1 ? tr.reward : 0;
            a += trace * (r + v(t + l + 1) - v(t + l));
          }
          sum += a;
          n++;
        }
        return n > 0 ? sum / n : NaN;
      });
    }
    const include = Uint8Array.from(rewards, (x) => (Number.isFinite(x) ? 1 : 0));
    const expected = normaliseAdvantages(rewards, include, w, [...groups.values()], "group", 5);
    const unweighted = normaliseAdvantages(
      rewards,
      include,
      new Float64Array(N).fill(1),
      [...groups.values()],
      "group",
      5,
    );
    for (let i = 0; i < N; i++)
      assert.ok(
        Math.abs(s1.adv[i] - expected.adv[i]) < 1e-12,
        `Ã(τ${i}) ${s1.adv[i]} vs ${expected.adv[i]} (gae ${gae}, score ${rewards[i]})`,
      );
    assert.ok(
      s1.adv.some((a, i) => Math.abs(a - unweighted.adv[i]) > 1e-6),
      "differs from π_cur advantages",
    );
  }
});

test("mutation: weighted advantage statistics: mean and population std under ω, by hand", () => {
  const scores = Float64Array.of(1, 0, 0, 1, 0.5);
  const omega = Float64Array.of(0.2, 1, 0.5, 0.9, 0.3);
  const { adv } = normaliseAdvantages(
    scores,
    new Uint8Array(5).fill(1),
    omega,
    [[0, 1, 2, 3, 4]],
    "group",
    100,
  );
  const sw = omega.reduce((s, x) => s + x, 0);
  const mu = scores.reduce((s, x, i) => s + omega[i] * x, 0) / sw;
  const sd = Math.sqrt(scores.reduce((s, x, i) => s + omega[i] * (x - mu) ** 2, 0) / sw);
  for (let i = 0; i < 5; i++) assert.ok(Math.abs(adv[i] - (scores[i] - mu) / (sd + 1e-6)) < 1e-12);
});

test("mutation: ζ = mean |W − w|·|Ã| over the agent's trajectories, from the promoted agent's untruncated ratios", async () => {
  const { rec, spies } = await spiedStage(
    defaultStageConfig(3, { order: "static", klRadius: [5, 5, 5] }),
    41,
  );
  const s0 = spies[0];
  const ratio = new Map<string, number>();
  s0.given!.states.forEach((s, k) =>
    ratio.set(`${s.traj}/${s.t}`, Math.exp(s0.last!.chosen[k] - s0.cur![k])),
  );
  const s1 = spies[1].given!;
  let num = 0;
  let den = 0;
  s1.trajs.forEach((t, i) => {
    if (s1.offsets[i + 1] === s1.offsets[i]) return;
    let W = 1;
    let w = 1;
    t.owner.forEach((o, s) => {
      if (o !== 0) return;
      W *= ratio.get(`${i}/${s}`)!;
      w *= Math.min(1, ratio.get(`${i}/${s}`)!);
    });
    num += Math.abs(W - w) * Math.abs(s1.adv[i]);
    den += 1;
  });
  assert.ok(num > 0, "some ratio exceeded 1, so the truncation mattered");
  assert.ok(
    Math.abs(rec.agents[1].truncBias - num / den) < 1e-12,
    `ζ ${rec.agents[1].truncBias} vs ${num / den}`,
  );
});

test("budget: generatedTokens counts the agents' tokens of every collected batch, resampled ones included", async () => {
  for (const intermediate of ["reweight", "resample"] as const) {
    const game = randomGame(new Rng(50), GAME_OPTS);
    const rng = new Rng(51);
    const team = makeTeam(game, 0.1, rng.fork("init"));
    const sample = makeCollect(game, { kind: "sample", rng: rng.fork("rollout"), groupSize: 4 });
    let counted = 0;
    let calls = 0;
    const rec = await runStage({
      team,
      collect: (t, n) => {
        calls++;
        const trajs = sample(t, n) as ReturnType<typeof sample> & unknown[];
        for (const tr of trajs as { owner: Int8Array }[]) counted += tr.owner.filter((o) => o >= 0).length;
        return trajs;
      },
      config: defaultStageConfig(3, { intermediate }),
      klCoef: [0.05, 0.05, 0.05],
      rng: rng.fork("stage"),
      step: 0,
    });
    assert.equal(calls, intermediate === "resample" ? 3 : 1);
    assert.equal(rec.generatedTokens, counted);
  }
});

test("paired improvement: the mean of per-prompt differences with its standard error, by hand", () => {
  const before = [
    { promptId: 0, reward: 1 },
    { promptId: 0, reward: 0 },
    { promptId: 1, reward: 0 },
    { promptId: 1, reward: 0 },
    { promptId: 2, reward: 1 },
    { promptId: 2, reward: 1 },
  ];
  const after = [
    { promptId: 0, reward: 1 },
    { promptId: 0, reward: 1 },
    { promptId: 1, reward: 1 },
    { promptId: 1, reward: 0 },
    { promptId: 2, reward: 1 },
    { promptId: 2, reward: 0 },
  ];
  const diffs = [0.5, 0.5, -0.5];
  const m = 0.5 / 3;
  const se = Math.sqrt(diffs.reduce((s, x) => s + (x - m) ** 2, 0) / 2 / 3);
  const r = pairedImprovement(before, after);
  assert.ok(Math.abs(r.improvement - m) < 1e-15);
  assert.ok(Math.abs(r.ciLow - (m - 1.959963984540054 * se)) < 1e-12);
  assert.equal(r.monotonicityViolation, 0);
  assert.throws(() => pairedImprovement(before.slice(0, 2), after.slice(0, 2)), /need ≥ 2 prompts/);
});
