/**
 * The stage record: a plain, JSON-serialisable object and the only channel through which a stage
 * reports (the metrics sink and stages.jsonl are derived from it in metrics.ts). Rewards of the stage
 * batch, σ, tokens generated, timings, the certificate and the measured improvement; per agent the
 * trust-region outcome, β, importance weights, advantages and the rollout-vs-trainer log-prob check
 * (sat-method §2).
 */
import type { AdvantageResult } from "./advantages.js";
import type { PreparedBatch } from "./batch.js";
import type { Certificate, EmpiricalImprovement } from "./certificate.js";
import type { StageConfig, TrustRegion } from "./config.js";
import { dkwSlack, weightedQuantile } from "./kl.js";
import type { UpdateOutcome } from "./update.js";

export interface AgentStageRecord {
  agent: number;
  /** 0-based place in σ. */
  position: number;
  /** β used in this update (0 when the trust region is `none`) and β for the next stage. */
  klCoef: number;
  klCoefNext: number;
  klRadius: number;
  /** Exact per-state KL(π_new ‖ π_cur) of the kept parameters: quantile at config.klQuantile, max, mean. */
  klQuantile: number;
  klMax: number;
  klMean: number;
  /** KL quantile of the full step (before backtracking). */
  klQuantileFull: number;
  /** Mean total variation ½Σ|π_new − π_cur| over the agent's states. */
  tvMean: number;
  numStates: number;
  /** DKW slack sqrt(log(2/η)/(2N)) with N = independent trajectories (numEpisodes). */
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
  /** 1 when the advantage weights ω = p·w were equal within every group (then |z| ≤ sqrt(G−1)). */
  uniformWeights: 0 | 1;
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
  /** Seconds: the whole update, and the check with backtracking within it. */
  timing: Record<string, number>;
}

export interface StageRecord {
  step: number;
  algo: StageConfig["algo"];
  trustRegion: TrustRegion;
  intermediate: StageConfig["intermediate"];
  advEstimator: StageConfig["advEstimator"];
  sigma: number[];
  numTrajectories: number;
  maxGroupSize: number;
  /** Tokens the agents generated in this stage's training rollouts (resampled batches included). */
  generatedTokens: number;
  rewardMean: number;
  rewardStd: number;
  rewardMin: number;
  rewardMax: number;
  fracZeroStd: number;
  /** In agent index order. */
  agents: AgentStageRecord[];
  certificate: Certificate;
  improvement: EmpiricalImprovement | null;
  /** Team-level seconds: rollout (gen), advantages, held-out measurement (testing). */
  timing: Record<string, number>;
  /** The value function's fit after the stage (gae), filled in by the trainer that owns it. */
  critic?: { lossBefore: number; lossAfter: number; numStates: number; steps: number; gradNorm: number };
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

/**
 * β for the next stage. adaptive (default): PPO's adaptive-KL rule on the full step's KL quantile q,
 * q > δ → β·g, q < δ/g → β/g, clamped to [β_min, β_max]; grow: β·g after any violating candidate.
 * An agent that did not update, or whose update used no penalty, keeps its β.
 */
export function nextKlCoef(
  beta: number,
  out: UpdateOutcome | null,
  radius: number,
  cfg: StageConfig,
  trustRegion: TrustRegion,
): number {
  if (!out || trustRegion === "none") return beta;
  const g = cfg.klCoefGrowth;
  let next = beta;
  if (cfg.klCoefRule === "grow") next = out.violations > 0 ? beta * g : beta;
  else if (out.fullQuantile > radius) next = beta * g;
  else if (out.fullQuantile < radius / g) next = beta / g;
  return Math.min(cfg.klCoefMax, Math.max(cfg.klCoefMin, next));
}

export interface AgentRecordInput {
  agent: number;
  position: number;
  /** The batch the agent was updated on (the stage batch, or a resampled one). */
  batch: PreparedBatch;
  /** (S) π_cur chosen-token log-probs and entropies on that batch. */
  curChosen: Float64Array;
  entropy: Float64Array;
  trajList: number[];
  /** (N) surrogate weights and untruncated ratio products. */
  wSur: Float64Array;
  wFull: Float64Array;
  adv: AdvantageResult;
  out: UpdateOutcome | null;
  /** β on entry and the β the update used. */
  betaIn: number;
  beta: number;
  trustRegion: TrustRegion;
  gainPredicted: number | null;
  cfg: StageConfig;
  timing: Record<string, number>;
}

export function agentRecord(x: AgentRecordInput): AgentStageRecord {
  const { agent, batch, trajList, wSur, wFull, adv, out, cfg } = x;
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
  const S = ag.refs.length;
  let entropy = 0;
  let diffSum = 0;
  let diffMax = 0;
  let spStates = 0;
  let klMean = 0;
  let klMax = 0;
  let tvMean = 0;
  const kls = out ? out.kls : new Float64Array(S);
  for (let k = 0; k < S; k++) {
    const r = ag.refs[k];
    const diff = Math.abs(batch.trajs[r.traj].behaviourLogp[r.t] - x.curChosen[k]);
    diffSum += diff;
    diffMax = Math.max(diffMax, diff);
    const wk = ag.weights[k];
    entropy += wk * x.entropy[k];
    spStates += wk;
    klMean += wk * kls[k];
    klMax = Math.max(klMax, kls[k]);
    if (out) tvMean += wk * out.tvs[k];
  }
  const violations = out ? out.violations : 0;
  const tried = out ? out.candidatesTried : 0;
  const mean = (v: number) => (spStates > 0 ? v / spStates : 0);
  return {
    agent,
    position: x.position,
    klCoef: x.beta,
    klCoefNext: nextKlCoef(x.betaIn, out, cfg.klRadius[agent], cfg, x.trustRegion),
    klRadius: cfg.klRadius[agent],
    klQuantile: weightedQuantile(kls, ag.weights, cfg.klQuantile),
    klMax,
    klMean: mean(klMean),
    klQuantileFull: out ? out.fullQuantile : 0,
    tvMean: mean(tvMean),
    numStates: S,
    dkwSlack: dkwSlack(ag.numEpisodes, cfg.dkwEta),
    violation: out ? out.firstViolation : 0,
    violationRate: tried > 0 ? violations / tried : 0,
    candidatesTried: tried,
    backtracks: out ? out.backtracks : 0,
    stepScale: out ? out.stepScale : 0,
    accepted: out ? out.accepted : 0,
    surrogateGain: out ? out.gain : 0,
    fracEpisodes: spAll > 0 ? sp / spAll : 0,
    gainPredicted: x.gainPredicted,
    truncBias: sp > 0 ? zeta / sp : 0,
    numEpisodes: ag.numEpisodes,
    uniformWeights: adv.uniformWeights ? 1 : 0,
    logpDiffMean: S > 0 ? diffSum / S : 0,
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
    entropy: mean(entropy),
    timing: x.timing,
  };
}
