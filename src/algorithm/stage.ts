/**
 * One SAT stage (Algorithm 1, sat-method §3) and the baselines that share its code path:
 *   sat    sequential block updates in order σ, intermediate weights w(τ) = Π min(1, ρ_t), clipped
 *          sequence-ratio surrogate − β·exact KL, exact trust-region check, backtracking, null update;
 *   joint  every agent from the same batch at once: w = 1, π_cur advantages, clip only, no check;
 *   happo  order σ, w = untruncated product of earlier agents' ratios, π_cur advantages, clip only;
 *   single one agent, GRPO (clip only).
 * KL statistics are measured for every algorithm (so violation rates compare), enforced for sat only.
 *
 * Backtracking and optimizer state: the full step (j = 0) keeps the optimizer state the epochs
 * produced. Any rejection restores parameters and optimizer state from the snapshot; a candidate
 * θ_cur + ξ^j·Δ accepted after a rejection therefore keeps the snapshot's optimizer state.
 *
 * Held-out improvement: two independent reward samples (Welch interval); when both held-out batches
 * are exact enumerations (every trajectory has a weight) the difference of exact means is used.
 *
 * Greedy order: each agent's predicted gain is its clipped-surrogate gain L̂ after one full-batch
 * optimizer step from θ_cur (β·KL included in the step), measured and then undone by restore().
 */
import type { Rng } from "../engine/rng.js";
import { chosenLogp, prepareBatch, type PreparedBatch } from "./batch.js";
import { gaeScores, normaliseAdvantages } from "./advantages.js";
import {
  certificate,
  certificateAMax,
  empiricalImprovement,
  exactImprovement,
  type Certificate,
  type EmpiricalImprovement,
} from "./certificate.js";
import { validateStageConfig, type StageConfig } from "./config.js";
import { dkwSlack, entropyRow, klRows, weightedQuantile } from "./kl.js";
import { stageMetrics } from "./metrics.js";
import type { MetricsSink, TrainablePolicy, Trajectory, ValuePolicy } from "./policy.js";
import { statesOf, surrogate, type SurrogateData } from "./surrogate.js";

export type Collect = (team: TrainablePolicy[], nPrompts: number) => Trajectory[] | Promise<Trajectory[]>;

export interface StageInput {
  team: TrainablePolicy[];
  /** Rollouts of the team as it stands (π_cur at the start; π̂^{i−1} when `resample` asks). */
  collect: Collect;
  config: StageConfig;
  /** β per agent for this stage (the record's klCoefNext is next stage's). */
  klCoef: number[];
  rng: Rng;
  /** Global step (stage index) written into the record and the metrics. */
  step: number;
  sink?: MetricsSink;
  /** Required when config.advEstimator = gae. */
  value?: ValuePolicy;
  /** Held-out rollouts for the empirical improvement (before the stage under π_cur, after under π̄). */
  collectHeldOut?: Collect;
  heldOutPrompts?: number;
  /** Clock for timing metrics (seconds); sink only, never in the record. */
  now?: () => number;
}

export interface AgentStageRecord {
  agent: number;
  /** 0-based place in σ. */
  position: number;
  klCoef: number;
  klCoefNext: number;
  klRadius: number;
  /** Exact per-state KL(π_new ‖ π_cur) of the kept parameters: quantile at config.klQuantile, max, mean. */
  klQuantile: number;
  klMax: number;
  klMean: number;
  numStates: number;
  dkwSlack: number;
  /** 1 when the first candidate (the full step) violated the trust region. */
  violation: 0 | 1;
  /** Violating candidates ÷ candidates tried. */
  violationRate: number;
  candidatesTried: number;
  /** j of the kept candidate (0 = full step); equals candidatesTried when the null update was kept. */
  backtracks: number;
  /** ξ^j, 0 for the null update. */
  stepScale: number;
  /** 0 = null update kept. */
  accepted: 0 | 1;
  /** L̂ of the kept parameters, mean over the trajectories where the agent acted. */
  surrogateGain: number;
  /** Share of the batch's (prior-weighted) trajectories where the agent acted: L̂ per episode = gain × this. */
  fracEpisodes: number;
  gainPredicted: number | null;
  /** ζ = mean_τ |W(τ) − w(τ)|·|Ã(τ)| over the agent's trajectories. */
  truncBias: number;
  /** N_i: trajectories where the agent acted. */
  numEpisodes: number;
  logpDiffMean: number;
  logpDiffMax: number;
  isWeightMean: number;
  isWeightMin: number;
  isEss: number;
  advMean: number;
  advMin: number;
  advMax: number;
  advClipFrac: number;
  pgClipFrac: number;
  pgLoss: number;
  ppoKl: number;
  /** Mean entropy of π_cur over the agent's states. */
  entropy: number;
}

export interface StageRecord {
  step: number;
  algo: StageConfig["algo"];
  intermediate: StageConfig["intermediate"];
  advEstimator: StageConfig["advEstimator"];
  sigma: number[];
  numTrajectories: number;
  maxGroupSize: number;
  rewardMean: number;
  rewardStd: number;
  rewardMin: number;
  rewardMax: number;
  fracZeroStd: number;
  /** In agent index order. */
  agents: AgentStageRecord[];
  certificate: Certificate;
  improvement: EmpiricalImprovement | null;
}

interface AgentRef {
  /** (S_a, V) π_cur rows and (S_a) chosen-token log-probs. */
  rows: Float64Array;
  chosen: Float64Array;
}

function scoreAgent(policy: TrainablePolicy, batch: PreparedBatch, a: number, V: number): AgentRef {
  const ag = batch.agents[a];
  const raw = ag.refs.length > 0 ? policy.logProbs(batch.trajs, ag.refs) : new Float64Array(0);
  if (raw.length !== ag.refs.length * V)
    throw new Error(
      `runStage: agent ${a} logProbs returned ${raw.length} values for ${ag.refs.length} states × V=${V}`,
    );
  const rows = Float64Array.from(raw);
  return { rows, chosen: chosenLogp(rows, ag.tokens, V) };
}

function trajectoriesOf(batch: PreparedBatch, a: number): number[] {
  const off = batch.agents[a].offsets;
  const out: number[] = [];
  for (let i = 0; i < batch.trajs.length; i++) if (off[i + 1] > off[i]) out.push(i);
  return out;
}

/** Prompt groups restricted to `trajList`, for minibatching (a group is never split). */
function groupsOf(batch: PreparedBatch, trajList: readonly number[]): number[][] {
  const byGroup = new Map<number, number[]>();
  for (const i of trajList) {
    const g = batch.groupOf[i];
    const list = byGroup.get(g);
    if (list) list.push(i);
    else byGroup.set(g, [i]);
  }
  return [...byGroup.keys()].sort((x, y) => x - y).map((g) => byGroup.get(g)!);
}

interface Evaluation {
  kls: Float64Array;
  gain: number;
  clipTerm: number;
  clipFrac: number;
  ppoKl: number;
}

/** Scores all of the agent's states at the policy's current parameters. */
function evaluate(
  policy: TrainablePolicy,
  batch: PreparedBatch,
  d: SurrogateData,
  trajList: number[],
): Evaluation {
  const { V, agent } = d;
  const raw = policy.logProbs(batch.trajs, agent.refs);
  const rows = Float64Array.from(raw);
  const kls = klRows(rows, d.curRows, agent.refs.length, V);
  const val = surrogate({ ...d, beta: 0 }, trajList, rows, null);
  return { kls, gain: val.gain, clipTerm: val.objective, clipFrac: val.clipFrac, ppoKl: val.ppoKl };
}

interface UpdateOutcome {
  /** Seconds spent in the trust-region check and backtracking. */
  checkSeconds: number;
  accepted: 0 | 1;
  stepScale: number;
  backtracks: number;
  candidatesTried: number;
  violations: number;
  firstViolation: 0 | 1;
  kls: Float64Array;
  gain: number;
  clipTerm: number;
  clipFrac: number;
  ppoKl: number;
}

/** E epochs of minibatch optimizer steps on the surrogate, then (sat) the trust-region check with backtracking. */
function updateAgent(
  policy: TrainablePolicy,
  batch: PreparedBatch,
  d: SurrogateData,
  trajList: number[],
  cfg: StageConfig,
  radius: number,
  enforce: boolean,
  rng: Rng,
  now: () => number,
): UpdateOutcome {
  const { agent } = d;
  const S = agent.refs.length;
  const snap = policy.snapshot();
  const theta0 = Float64Array.from(policy.getParams());
  const groups = groupsOf(batch, trajList);
  for (let e = 0; e < cfg.epochs; e++) {
    const order = rng.shuffle(groups.map((_, g) => g));
    for (let m = 0; m < order.length; m += cfg.miniBatchGroups) {
      const tl = order.slice(m, m + cfg.miniBatchGroups).flatMap((g) => groups[g]);
      const refs = statesOf(agent, tl).map((k) => agent.refs[k]);
      const rows = policy.logProbs(batch.trajs, refs);
      const dlogp = new Float64Array(rows.length);
      surrogate(d, tl, rows, dlogp);
      policy.zeroGrad();
      policy.backward(dlogp);
      policy.optimizerStep();
    }
  }
  const tCheck = now();
  const full = evaluate(policy, batch, d, trajList);
  const quantile = (kls: Float64Array) => weightedQuantile(kls, agent.weights, cfg.klQuantile);
  if (!enforce) {
    return {
      checkSeconds: now() - tCheck,
      accepted: 1,
      stepScale: 1,
      backtracks: 0,
      candidatesTried: 1,
      violations: quantile(full.kls) > radius ? 1 : 0,
      firstViolation: quantile(full.kls) > radius ? 1 : 0,
      ...full,
    };
  }
  const thetaOpt = policy.getParams();
  const delta = new Float64Array(theta0.length);
  for (let x = 0; x < delta.length; x++) delta[x] = thetaOpt[x] - theta0[x];
  let violations = 0;
  let firstViolation: 0 | 1 = 0;
  let tried = 0;
  for (let j = 0; j <= cfg.maxBacktracks; j++) {
    const scale = cfg.backtrackRatio ** j;
    let ev = full;
    if (j > 0) {
      policy.restore(snap);
      const params = policy.getParams();
      for (let x = 0; x < params.length; x++) params[x] = theta0[x] + scale * delta[x];
      ev = evaluate(policy, batch, d, trajList);
    }
    tried++;
    const violated = quantile(ev.kls) > radius;
    if (violated) {
      violations++;
      if (j === 0) firstViolation = 1;
    }
    if (!violated && ev.gain > 0)
      return {
        checkSeconds: now() - tCheck,
        accepted: 1,
        stepScale: scale,
        backtracks: j,
        candidatesTried: tried,
        violations,
        firstViolation,
        ...ev,
      };
  }
  // Nothing passed: keep π_cur (the null update always satisfies the trust region).
  policy.restore(snap);
  return {
    checkSeconds: now() - tCheck,
    accepted: 0,
    stepScale: 0,
    backtracks: tried,
    candidatesTried: tried,
    violations,
    firstViolation,
    kls: new Float64Array(S),
    gain: 0,
    clipTerm: 0,
    clipFrac: 0,
    ppoKl: 0,
  };
}

/** Greedy scheduler: predicted gain of each agent after one trial step from θ_cur, undone by restore(). */
function predictGains(
  team: TrainablePolicy[],
  batch: PreparedBatch,
  refs: AgentRef[],
  advs: Float64Array[],
  cfg: StageConfig,
  klCoef: number[],
  V: number,
): number[] {
  const ones = new Float64Array(batch.trajs.length).fill(1);
  return team.map((policy, a) => {
    const trajList = trajectoriesOf(batch, a);
    if (trajList.length === 0) return 0;
    const d: SurrogateData = {
      V,
      agent: batch.agents[a],
      curRows: refs[a].rows,
      curChosen: refs[a].chosen,
      adv: advs[a],
      w: ones,
      prior: batch.prior,
      clipLow: cfg.clipLow,
      clipHigh: cfg.clipHigh,
      beta: cfg.algo === "sat" ? klCoef[a] : 0,
    };
    const snap = policy.snapshot();
    const rows = policy.logProbs(batch.trajs, batch.agents[a].refs);
    const dlogp = new Float64Array(rows.length);
    surrogate(d, trajList, rows, dlogp);
    policy.zeroGrad();
    policy.backward(dlogp);
    policy.optimizerStep();
    const gain = evaluate(policy, batch, d, trajList).gain;
    policy.restore(snap);
    return gain;
  });
}

function rewardStats(batch: PreparedBatch) {
  const { trajs, prior } = batch;
  let sw = 0;
  let sx = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < trajs.length; i++) {
    if (!(prior[i] > 0)) continue;
    sw += prior[i];
    sx += prior[i] * trajs[i].reward;
    min = Math.min(min, trajs[i].reward);
    max = Math.max(max, trajs[i].reward);
  }
  const mean = sw > 0 ? sx / sw : 0;
  let sv = 0;
  for (let i = 0; i < trajs.length; i++) if (prior[i] > 0) sv += prior[i] * (trajs[i].reward - mean) ** 2;
  let zero = 0;
  for (const g of batch.groups) {
    const rs = g.filter((i) => prior[i] > 0).map((i) => trajs[i].reward);
    if (rs.every((r) => r === rs[0])) zero++;
  }
  return {
    rewardMean: mean,
    rewardStd: sw > 0 ? Math.sqrt(sv / sw) : 0,
    rewardMin: min,
    rewardMax: max,
    fracZeroStd: zero / batch.groups.length,
  };
}

/** Advantages for agent a on batch b with intermediate weights w (ω = p·w). */
function advantagesFor(
  batch: PreparedBatch,
  a: number,
  w: Float64Array,
  logTrace: Float64Array[],
  cfg: StageConfig,
  value: ValuePolicy | undefined,
) {
  const N = batch.trajs.length;
  const omega = new Float64Array(N);
  for (let i = 0; i < N; i++) omega[i] = batch.prior[i] * w[i];
  let scores: Float64Array;
  const include = new Uint8Array(N).fill(1);
  if (cfg.advEstimator === "gae") {
    if (!value)
      throw new Error("runStage: config.advEstimator = gae needs a value function (StageInput.value)");
    scores = gaeScores(batch, a, value, logTrace, cfg.gamma, cfg.lam);
    for (let i = 0; i < N; i++) if (!Number.isFinite(scores[i])) include[i] = 0;
  } else {
    scores = Float64Array.from(batch.trajs, (t) => t.reward);
  }
  return normaliseAdvantages(scores, include, omega, batch.groups, cfg.scaleRewards, cfg.advClip);
}

/** An exact enumeration: every trajectory carries its probability. */
function isEnumerated(trajs: Trajectory[]): boolean {
  return trajs.length > 0 && trajs.every((t) => t.weight !== undefined);
}

function weightedMean(trajs: Trajectory[]): number {
  let sw = 0;
  let sx = 0;
  for (const t of trajs) {
    sw += t.weight!;
    sx += t.weight! * t.reward;
  }
  return sx / sw;
}

function zeroTraces(batch: PreparedBatch): Float64Array[] {
  return batch.trajs.map((t) => new Float64Array(t.tokens.length));
}

/** Runs one stage; promotes the accepted parameters into `team` in place and returns the stage record. */
export async function runStage(input: StageInput): Promise<StageRecord> {
  const { team, config: cfg, rng } = input;
  const n = team.length;
  validateStageConfig(cfg, n);
  if (input.klCoef.length !== n)
    throw new Error(`runStage: klCoef has ${input.klCoef.length} entries for ${n} agents`);
  const V = team[0].vocabSize;
  team.forEach((p, a) => {
    if (p.vocabSize !== V)
      throw new Error(`runStage: agent ${a} has vocabSize ${p.vocabSize}, agent 0 has ${V}`);
  });
  const now = input.now ?? (() => performance.now() / 1000);
  const timing: Record<string, number>[] = team.map(() => ({}));
  const teamTiming: Record<string, number> = {};
  const sequential = cfg.algo === "sat" || cfg.algo === "happo";
  const rngOrder = rng.fork("order");
  const rngMinibatch = rng.fork("minibatch");

  const heldOutBefore = input.collectHeldOut
    ? await input.collectHeldOut(team, input.heldOutPrompts ?? cfg.promptsPerStage)
    : null;
  let t0 = now();
  const batch = prepareBatch(await input.collect(team, cfg.promptsPerStage), n, V);
  teamTiming["timing_s/gen"] = now() - t0;
  const refs: AgentRef[] = team.map((p, a) => {
    const t = now();
    const r = scoreAgent(p, batch, a, V);
    timing[a]["timing_s/old_log_prob"] = now() - t;
    return r;
  });
  const N = batch.trajs.length;
  const ones = new Float64Array(N).fill(1);

  // π_cur advantages: used by joint/single/happo throughout and by the greedy scheduler.
  t0 = now();
  const curAdv = team.map((_, a) => advantagesFor(batch, a, ones, zeroTraces(batch), cfg, input.value));
  teamTiming["timing_s/adv"] = now() - t0;

  let sigma = team.map((_, a) => a);
  let predicted: number[] | null = null;
  if (sequential && cfg.order === "random") sigma = rngOrder.shuffle(sigma);
  if (sequential && cfg.order === "greedy") {
    const gains = predictGains(
      team,
      batch,
      refs,
      curAdv.map((r) => r.adv),
      cfg,
      input.klCoef,
      V,
    );
    predicted = gains;
    sigma = [...sigma].sort((x, y) => gains[y] - gains[x] || x - y);
  }

  // Per-token log ρ_t of agents already promoted in this stage (reweight mode).
  const logRatio = zeroTraces(batch);
  const records: AgentStageRecord[] = new Array(n);
  for (let pos = 0; pos < n; pos++) {
    const a = sigma[pos];
    const tStart = now();
    let b = batch;
    let ref = refs[a];
    let wTrunc = ones;
    let wFull = ones;
    let trace = zeroTraces(batch);
    if (sequential && cfg.intermediate === "resample" && pos > 0) {
      t0 = now();
      b = prepareBatch(await input.collect(team, cfg.promptsPerStage), n, V);
      ref = scoreAgent(team[a], b, a, V);
      trace = zeroTraces(b);
      wTrunc = wFull = new Float64Array(b.trajs.length).fill(1);
      timing[a]["timing_s/gen"] = now() - t0;
    } else if (sequential && pos > 0) {
      wTrunc = new Float64Array(N);
      wFull = new Float64Array(N);
      for (let i = 0; i < N; i++) {
        let lc = 0;
        let lf = 0;
        for (let t = 0; t < logRatio[i].length; t++) {
          trace[i][t] = Math.min(0, logRatio[i][t]);
          lc += trace[i][t];
          lf += logRatio[i][t];
        }
        wTrunc[i] = Math.exp(lc);
        wFull[i] = Math.exp(lf);
      }
    }
    // Surrogate weights and advantages per algorithm (see the file header).
    const wSur = cfg.algo === "sat" ? wTrunc : cfg.algo === "happo" ? wFull : ones;
    const reuseCur = b === batch && (cfg.algo !== "sat" || pos === 0);
    const advRes = reuseCur
      ? curAdv[a]
      : advantagesFor(b, a, cfg.algo === "sat" ? wTrunc : ones, trace, cfg, input.value);
    const trajList = trajectoriesOf(b, a);
    const ag = b.agents[a];
    const beta = cfg.algo === "sat" ? input.klCoef[a] : 0;
    const d: SurrogateData = {
      V,
      agent: ag,
      curRows: ref.rows,
      curChosen: ref.chosen,
      adv: advRes.adv,
      w: wSur,
      prior: b.prior,
      clipLow: cfg.clipLow,
      clipHigh: cfg.clipHigh,
      beta,
    };
    const radius = cfg.klRadius[a];
    const out =
      trajList.length > 0
        ? updateAgent(team[a], b, d, trajList, cfg, radius, cfg.algo === "sat", rngMinibatch, now)
        : null;
    timing[a]["timing_s/update_actor"] = now() - tStart;

    // Log ratios of the promoted agent on the stage batch, for the agents after it (reweight).
    if (sequential && cfg.intermediate === "reweight" && out && out.accepted && pos < n - 1) {
      const after = scoreAgent(team[a], batch, a, V);
      const agB = batch.agents[a];
      for (let k = 0; k < agB.refs.length; k++)
        logRatio[agB.refs[k].traj][agB.refs[k].t] = after.chosen[k] - refs[a].chosen[k];
    }

    // Statistics over the agent's trajectories (prior-weighted).
    let sp = 0;
    let wMean = 0;
    let wMin = Infinity;
    let w2 = 0;
    let zeta = 0;
    let aMean = 0;
    let aMin = Infinity;
    let aMax = -Infinity;
    for (const i of trajList) {
      const p = b.prior[i];
      sp += p;
      wMean += p * wSur[i];
      w2 += p * wSur[i] * wSur[i];
      wMin = Math.min(wMin, wSur[i]);
      zeta += p * Math.abs(wFull[i] - wSur[i]) * Math.abs(advRes.adv[i]);
      aMean += p * advRes.adv[i];
      aMin = Math.min(aMin, advRes.adv[i]);
      aMax = Math.max(aMax, advRes.adv[i]);
    }
    let spAll = 0;
    for (let i = 0; i < b.trajs.length; i++) spAll += b.prior[i];
    let entropy = 0;
    let diffSum = 0;
    let diffMax = 0;
    let spStates = 0;
    const agCur = batch.agents[a];
    for (let k = 0; k < agCur.refs.length; k++) {
      const r = agCur.refs[k];
      const diff = Math.abs(batch.trajs[r.traj].behaviourLogp[r.t] - refs[a].chosen[k]);
      diffSum += diff;
      diffMax = Math.max(diffMax, diff);
    }
    for (let k = 0; k < ag.refs.length; k++) {
      entropy += ag.weights[k] * entropyRow(ref.rows, k * V, V);
      spStates += ag.weights[k];
    }
    const kls = out ? out.kls : new Float64Array(0);
    let klMean = 0;
    let klMax = 0;
    for (let k = 0; k < kls.length; k++) {
      klMean += ag.weights[k] * kls[k];
      klMax = Math.max(klMax, kls[k]);
    }
    const violations = out ? out.violations : 0;
    const tried = out ? out.candidatesTried : 0;
    records[a] = {
      agent: a,
      position: pos,
      klCoef: beta,
      klCoefNext:
        violations > 0 && cfg.algo === "sat"
          ? beta * cfg.klCoefGrowth
          : cfg.algo === "sat"
            ? beta
            : input.klCoef[a],
      klRadius: radius,
      klQuantile: weightedQuantile(kls, ag.weights, cfg.klQuantile),
      klMax,
      klMean: spStates > 0 ? klMean / spStates : 0,
      numStates: ag.refs.length,
      dkwSlack: dkwSlack(ag.refs.length, cfg.dkwEta),
      violation: out ? out.firstViolation : 0,
      violationRate: tried > 0 ? violations / tried : 0,
      candidatesTried: tried,
      backtracks: out ? out.backtracks : 0,
      stepScale: out ? out.stepScale : 0,
      accepted: out ? out.accepted : 0,
      surrogateGain: out ? out.gain : 0,
      fracEpisodes: spAll > 0 ? sp / spAll : 0,
      gainPredicted: predicted ? predicted[a] : null,
      truncBias: sp > 0 ? zeta / sp : 0,
      numEpisodes: ag.numEpisodes,
      logpDiffMean: agCur.refs.length > 0 ? diffSum / agCur.refs.length : 0,
      logpDiffMax: diffMax,
      isWeightMean: sp > 0 ? wMean / sp : 1,
      isWeightMin: trajList.length > 0 ? wMin : 1,
      isEss: w2 > 0 ? (trajList.length * wMean * wMean) / (sp * w2) : 0,
      advMean: sp > 0 ? aMean / sp : 0,
      advMin: trajList.length > 0 ? aMin : 0,
      advMax: trajList.length > 0 ? aMax : 0,
      advClipFrac: advRes.clipFrac,
      pgClipFrac: out ? out.clipFrac : 0,
      pgLoss: out ? -out.clipTerm : 0,
      ppoKl: out ? out.ppoKl : 0,
      entropy: spStates > 0 ? entropy / spStates : 0,
    };
    if (out) timing[a]["timing_s/backtrack"] = out.checkSeconds;
  }

  const maxGroupSize = Math.max(...batch.groups.map((g) => g.length));
  const groupNormalised = cfg.advEstimator === "group" && cfg.scaleRewards === "group";
  const cert = certificate(
    records.map((r) => ({
      surrogateGain: r.surrogateGain * r.fracEpisodes,
      // The check bounds a quantile; the occupancy term needs the max, so the larger of the two is used.
      klRadius: r.accepted ? Math.max(r.klRadius, r.klMax) : 0,
      truncBias: r.truncBias,
      numEpisodes: r.accepted ? r.numEpisodes : 0,
    })),
    {
      gamma: cfg.certGamma,
      aMax: certificateAMax(cfg.advClip, groupNormalised, maxGroupSize),
      confidence: cfg.certConfidence,
    },
  );
  let improvement: EmpiricalImprovement | null = null;
  if (input.collectHeldOut && heldOutBefore) {
    t0 = now();
    const heldOutAfter = await input.collectHeldOut(team, input.heldOutPrompts ?? cfg.promptsPerStage);
    teamTiming["timing_s/testing"] = now() - t0;
    improvement =
      isEnumerated(heldOutBefore) && isEnumerated(heldOutAfter)
        ? exactImprovement(weightedMean(heldOutBefore), weightedMean(heldOutAfter))
        : empiricalImprovement(
            heldOutBefore.map((t) => t.reward),
            heldOutAfter.map((t) => t.reward),
          );
  }
  const record: StageRecord = {
    step: input.step,
    algo: cfg.algo,
    intermediate: cfg.intermediate,
    advEstimator: cfg.advEstimator,
    sigma,
    numTrajectories: N,
    maxGroupSize,
    ...rewardStats(batch),
    agents: records,
    certificate: cert,
    improvement,
  };
  if (input.sink) {
    for (const m of stageMetrics(record)) input.sink(m);
    for (const [key, value] of Object.entries(teamTiming))
      input.sink({ step: input.step, agent: null, key, value });
    timing.forEach((t, a) => {
      for (const [key, value] of Object.entries(t)) input.sink!({ step: input.step, agent: a, key, value });
    });
  }
  return record;
}
