/**
 * One SAT stage (Algorithm 1, sat-method §3) and the baselines that share its code path:
 *   sat    sequential block updates in order σ, intermediate weights w(τ) = Π min(1, ρ_t), clipped
 *          sequence-ratio surrogate − β·exact KL, exact trust-region check, backtracking, null update;
 *   joint  every agent from the same batch at once: w = 1, π_cur advantages, clip only, no check;
 *   happo  order σ, w = untruncated product of earlier agents' ratios, π_cur advantages, clip only;
 *   single one agent, GRPO (clip only).
 * KL statistics are measured for every algorithm (so violation rates compare), enforced for sat only.
 * The per-agent update, trust-region check and backtracking live in update.ts.
 *
 * Held-out improvement: two independent reward samples (Welch interval); when both held-out batches
 * are exact enumerations (every trajectory has a weight) the difference of exact means is used.
 *
 * Greedy order: each agent's predicted gain is its clipped-surrogate gain L̂ after one full-batch
 * optimizer step from θ_cur (β·KL included in the step), measured and then undone by restore();
 * agents go in descending predicted gain, ties to the lower index.
 */
import type { Rng } from "../engine/rng.js";
import { prepareBatch, type PreparedBatch } from "./batch.js";
import { gaeScores, normaliseAdvantages } from "./advantages.js";
import {
  certificate,
  certificateAMax,
  empiricalImprovement,
  exactImprovement,
  type EmpiricalImprovement,
} from "./certificate.js";
import { validateStageConfig, type StageConfig } from "./config.js";
import { stageMetrics } from "./metrics.js";
import { agentRecord, rewardStats, type AgentStageRecord, type StageRecord } from "./record.js";
import type { MetricsSink, TrainablePolicy, Trajectory, ValuePolicy } from "../contracts/policy.js";
import type { SurrogateData } from "./surrogate.js";
import { predictGain, scoreAgent, trajectoriesOf, updateAgent, type AgentRef } from "./update.js";

export type { AgentStageRecord, StageRecord } from "./record.js";

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
  /** Called when agent `agent` (at `position` in σ) has been updated, for progress display. */
  onAgentDone?: (agent: number, position: number) => void;
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
    const gains = team.map((p, a) =>
      predictGain(p, batch, {
        V,
        agent: batch.agents[a],
        curRows: refs[a].rows,
        curChosen: refs[a].chosen,
        adv: curAdv[a].adv,
        w: ones,
        prior: batch.prior,
        clipLow: cfg.clipLow,
        clipHigh: cfg.clipHigh,
        beta: cfg.algo === "sat" ? input.klCoef[a] : 0,
      }),
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

    records[a] = agentRecord({
      agent: a,
      position: pos,
      stageBatch: batch,
      stageRef: refs[a],
      batch: b,
      ref,
      trajList,
      wSur,
      wFull,
      adv: advRes,
      out,
      beta,
      betaIn: input.klCoef[a],
      gainPredicted: predicted ? predicted[a] : null,
      cfg,
      V,
    });
    if (out) timing[a]["timing_s/backtrack"] = out.checkSeconds;
    input.onAgentDone?.(a, pos);
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
