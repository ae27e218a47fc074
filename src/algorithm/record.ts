/**
 * The stage record (a plain, JSON-serialisable object) and the statistics that fill it: rewards of
 * the stage batch, and per agent the trust-region outcome, importance weights, advantages and the
 * rollout-vs-trainer log-prob check (sat-method §2). Names map to conventions.md §2 in metrics.ts.
 */
import type { AdvantageResult } from "./advantages.js";
import type { PreparedBatch } from "./batch.js";
import type { Certificate, EmpiricalImprovement } from "./certificate.js";
import type { StageConfig } from "./config.js";
import { dkwSlack, entropyRow, weightedQuantile } from "./kl.js";
import type { AgentRef, UpdateOutcome } from "./update.js";

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

export function rewardStats(batch: PreparedBatch) {
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

export interface AgentRecordInput {
  agent: number;
  position: number;
  /** The stage batch and the agent's π_cur scores on it (for the log-prob check). */
  stageBatch: PreparedBatch;
  stageRef: AgentRef;
  /** The batch the agent was updated on (the stage batch, or a resampled one) and its π_cur scores. */
  batch: PreparedBatch;
  ref: AgentRef;
  trajList: number[];
  /** (N) surrogate weights and untruncated ratio products. */
  wSur: Float64Array;
  wFull: Float64Array;
  adv: AdvantageResult;
  out: UpdateOutcome | null;
  /** β used in the update, and the agent's β on entry (kept for baselines that do not use it). */
  beta: number;
  betaIn: number;
  gainPredicted: number | null;
  cfg: StageConfig;
  V: number;
}

/**
 * β for the next stage. adaptive (default): PPO's adaptive-KL rule on the full step's KL quantile q,
 * q > δ → β·g, q < δ/g → β/g, clamped to [β_min, β_max]; grow: β·g after any violating candidate.
 * An agent that did not update keeps its β.
 */
export function nextKlCoef(
  beta: number,
  out: UpdateOutcome | null,
  radius: number,
  cfg: StageConfig,
): number {
  if (!out) return beta;
  const g = cfg.klCoefGrowth;
  let next = beta;
  if (cfg.klCoefRule === "grow") next = out.violations > 0 ? beta * g : beta;
  else if (out.fullQuantile > radius) next = beta * g;
  else if (out.fullQuantile < radius / g) next = beta / g;
  return Math.min(cfg.klCoefMax, Math.max(cfg.klCoefMin, next));
}

export function agentRecord(x: AgentRecordInput): AgentStageRecord {
  const {
    agent,
    position,
    stageBatch,
    stageRef,
    batch,
    ref,
    trajList,
    wSur,
    wFull,
    adv,
    out,
    beta,
    betaIn,
    gainPredicted,
    cfg,
    V,
  } = x;
  const ag = batch.agents[agent];
  let sp = 0;
  let wMean = 0;
  let wMin = Infinity;
  let w2 = 0;
  let zeta = 0;
  let aMean = 0;
  let aMin = Infinity;
  let aMax = -Infinity;
  for (const i of trajList) {
    const p = batch.prior[i];
    sp += p;
    wMean += p * wSur[i];
    w2 += p * wSur[i] * wSur[i];
    wMin = Math.min(wMin, wSur[i]);
    zeta += p * Math.abs(wFull[i] - wSur[i]) * Math.abs(adv.adv[i]);
    aMean += p * adv.adv[i];
    aMin = Math.min(aMin, adv.adv[i]);
    aMax = Math.max(aMax, adv.adv[i]);
  }
  let spAll = 0;
  for (let i = 0; i < batch.trajs.length; i++) spAll += batch.prior[i];
  let entropy = 0;
  let diffSum = 0;
  let diffMax = 0;
  let spStates = 0;
  const agCur = stageBatch.agents[agent];
  for (let k = 0; k < agCur.refs.length; k++) {
    const r = agCur.refs[k];
    const diff = Math.abs(stageBatch.trajs[r.traj].behaviourLogp[r.t] - stageRef.chosen[k]);
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
  return {
    agent,
    position,
    klCoef: beta,
    klCoefNext: cfg.algo !== "sat" ? betaIn : nextKlCoef(beta, out, cfg.klRadius[agent], cfg),
    klRadius: cfg.klRadius[agent],
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
    gainPredicted,
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
    advClipFrac: adv.clipFrac,
    pgClipFrac: out ? out.clipFrac : 0,
    pgLoss: out ? -out.clipTerm : 0,
    ppoKl: out ? out.ppoKl : 0,
    entropy: spStates > 0 ? entropy / spStates : 0,
  };
}
