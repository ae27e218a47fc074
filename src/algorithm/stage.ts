/**
 * One SAT stage (Algorithm 1, sat-method §3) and the baselines that share its code path. `runStage`
 * reads like the method: roll out → order σ → for each agent: intermediate weights → advantages →
 * update (trust region) → absorb its ratios → certificate. What differs between algorithms is a row
 * of ALGORITHMS; the trust region (checked / penalty / none) is a separate switch.
 *
 * Greedy order: each agent's predicted gain is its clipped-surrogate gain L̂ after one full-batch
 * optimizer step from θ_cur (β·KL included), measured and undone; agents go in descending predicted
 * gain, ties to the lower index.
 */
import type { Rng } from "../engine/rng.js";
import type { AgentLearner } from "../contracts/learner.js";
import type { MetricsSink, TrainablePolicy, Trajectory, ValuePolicy } from "../contracts/policy.js";
import { prepareBatch, type PreparedBatch } from "./batch.js";
import { gaeScores, normaliseAdvantages, type AdvantageResult } from "./advantages.js";
import {
  certificate,
  certificateAMax,
  expectedTvBound,
  exactImprovement,
  pairedImprovement,
  type EmpiricalImprovement,
} from "./certificate.js";
import { validateStageConfig, type AlgoName, type StageConfig } from "./config.js";
import { stageMetrics } from "./metrics.js";
import { agentRecord, rewardStats, type AgentStageRecord, type StageRecord } from "./record.js";
import { isLearner, RowLearner } from "./row-learner.js";
import { predictGain, updateAgent, type AgentUpdate } from "./update.js";

export type { AgentStageRecord, StageRecord } from "./record.js";

/** What distinguishes the algorithms that share runStage. */
export interface AlgorithmSpec {
  /** Agents update one at a time in σ, each after its predecessors' updates (else all from π_cur). */
  sequential: boolean;
  /** Surrogate weights w(τ): Π min(1, ρ) of earlier agents (truncated), Π ρ (full), or 1 (none). */
  weights: "truncated" | "full" | "none";
  /** Advantages under the intermediate policy π̂^{i−1} (weights ω = p·w) rather than under π_cur. */
  intermediateAdvantages: boolean;
}

export const ALGORITHMS: Record<AlgoName, AlgorithmSpec> = {
  sat: { sequential: true, weights: "truncated", intermediateAdvantages: true },
  happo: { sequential: true, weights: "full", intermediateAdvantages: false },
  joint: { sequential: false, weights: "none", intermediateAdvantages: false },
  single: { sequential: false, weights: "none", intermediateAdvantages: false },
  // Agents that answer alone (independent protocol) trained side by side on their own groups.
  "independent-vote": { sequential: false, weights: "none", intermediateAdvantages: false },
};

export type Collect<P extends StagePolicy = StagePolicy> = (
  team: P[],
  nPrompts: number,
) => Trajectory[] | Promise<Trajectory[]>;
/** A learner, or an in-process row-level policy (wrapped in a RowLearner). */
export type StagePolicy = AgentLearner | TrainablePolicy;

export interface StageInput<P extends StagePolicy = StagePolicy> {
  team: P[];
  /** Rollouts of the team as it stands (π_cur at the start; π̂^{i−1} when `resample` asks). */
  collect: Collect<P>;
  config: StageConfig;
  /** β per agent for this stage (the record's klCoefNext is next stage's). */
  klCoef: number[];
  rng: Rng;
  /** Global step (stage index) written into the record and the metrics. */
  step: number;
  sink?: MetricsSink;
  /** Required when config.advEstimator = gae. */
  value?: ValuePolicy;
  /** Held-out rollouts for the measured improvement (same prompts and streams before and after). */
  collectHeldOut?: Collect<P>;
  heldOutPrompts?: number;
  /** Clock (seconds) for the timings in the record. */
  now?: () => number;
  /** Called when agent `agent` (at `position` in σ) has been updated (accepted = its parameters changed). */
  onAgentDone?: (agent: number, position: number, accepted: boolean) => void;
}

interface StageState {
  predicted?: number[];
  input: StageInput;
  cfg: StageConfig;
  spec: AlgorithmSpec;
  learners: AgentLearner[];
  batch: PreparedBatch;
  /** Per trajectory and token: log ρ_t of agents already promoted in this stage (reweight). */
  logRatio: Float64Array[];
  now: () => number;
  tokens: number;
  timing: Record<string, number>;
}

/** Runs one stage; promotes the accepted parameters into the team in place and returns the stage record. */
export async function runStage<P extends StagePolicy>(input: StageInput<P>): Promise<StageRecord> {
  const cfg = input.config;
  validateStageConfig(cfg, input.team.length);
  const st = await startStage(input as unknown as StageInput);
  const heldOutBefore = await heldOut(st);
  const sigma = await orderOf(st);
  const records: AgentStageRecord[] = [];
  for (const [pos, a] of sigma.entries()) {
    const t0 = st.now();
    const b = st.spec.sequential && cfg.intermediate === "resample" && pos > 0 ? await collect(st) : st.batch;
    const w = intermediateWeights(st, b);
    const adv = advantagesFor(st, b, a, w.spec === "current" ? null : w);
    const u = updateInput(st, b, a, adv, w.wSur);
    const start = u.trajList.length > 0 ? await u.learner.beginUpdate(u.spec) : null;
    const out = start
      ? await updateAgent({ ...u, curChosen: start.chosen }, cfg, st.input.rng.fork(`minibatch/${a}`), st.now)
      : null;
    if (out?.accepted && b === st.batch && st.spec.sequential) absorbRatios(st, a, out.chosen, start!.chosen);
    records[a] = agentRecord({
      ...{ agent: a, position: pos, batch: b, trajList: u.trajList, adv, out, cfg },
      ...{ wSur: w.wSur, wFull: w.wFull, curChosen: start?.chosen ?? new Float64Array(0) },
      ...{ entropy: start?.entropy ?? new Float64Array(0), betaIn: input.klCoef[a], beta: u.spec.beta },
      ...{ trustRegion: cfg.trustRegion, gainPredicted: st.predicted?.[a] ?? null },
      timing: { "timing_s/update_actor": st.now() - t0, "timing_s/backtrack": out?.checkSeconds ?? 0 },
    });
    input.onAgentDone?.(a, pos, out?.accepted === 1);
  }
  const record = finishRecord(st, sigma, records, heldOutBefore, await heldOut(st));
  if (input.sink) for (const m of stageMetrics(record)) input.sink(m);
  return record;
}

// ---------------------------------------------------------------------------------------------
// The steps of a stage, in the order runStage calls them.

async function startStage(input: StageInput): Promise<StageState> {
  const n = input.team.length;
  if (input.klCoef.length !== n)
    throw new Error(`runStage: klCoef has ${input.klCoef.length} entries for ${n} agents`);
  const V = input.team[0].vocabSize;
  input.team.forEach((p, a) => {
    if (p.vocabSize !== V)
      throw new Error(`runStage: agent ${a} has vocabSize ${p.vocabSize}, agent 0 has ${V}`);
  });
  const now = input.now ?? (() => performance.now() / 1000);
  const learners = input.team.map((p) => (isLearner(p) ? p : new RowLearner(p)));
  const st: StageState = {
    ...{ input, cfg: input.config, spec: ALGORITHMS[input.config.algo], learners, now },
    ...{ batch: null as unknown as PreparedBatch, logRatio: [], tokens: 0, timing: {} },
  };
  const t0 = now();
  st.batch = await collect(st);
  st.timing["timing_s/gen"] = now() - t0;
  st.logRatio = st.batch.trajs.map((t) => new Float64Array(t.tokens.length));
  return st;
}

/** Collects and indexes a training batch from the team as it stands; counts generated tokens. */
async function collect(st: StageState): Promise<PreparedBatch> {
  const trajs = await st.input.collect(st.input.team, st.cfg.promptsPerStage);
  for (const t of trajs) for (let i = 0; i < t.owner.length; i++) if (t.owner[i] >= 0) st.tokens++;
  return prepareBatch(trajs, st.learners.length, st.learners[0].vocabSize);
}

async function heldOut(st: StageState): Promise<Trajectory[] | null> {
  const { collectHeldOut, heldOutPrompts } = st.input;
  if (!collectHeldOut || !heldOutPrompts) return null;
  const t0 = st.now();
  const trajs = await collectHeldOut(st.input.team, heldOutPrompts);
  st.timing["timing_s/testing"] = (st.timing["timing_s/testing"] ?? 0) + st.now() - t0;
  return trajs;
}

/** σ: identity (static), a seeded permutation (random), or descending predicted gain (greedy). */
async function orderOf(st: StageState): Promise<number[]> {
  const identity = st.learners.map((_, a) => a);
  if (!st.spec.sequential || st.cfg.order === "static") return identity;
  if (st.cfg.order === "random") return st.input.rng.fork("order").shuffle(identity);
  const w = intermediateWeights(st, st.batch);
  const gains: number[] = [];
  for (const a of identity)
    gains.push(
      await predictGain({
        ...updateInput(st, st.batch, a, advantagesFor(st, st.batch, a, null), w.wSur),
        curChosen: new Float64Array(0),
      }),
    );
  st.predicted = gains;
  return identity.sort((x, y) => gains[y] - gains[x] || x - y);
}

interface Weights {
  spec: "current" | "intermediate";
  /** (N) surrogate weights and untruncated products of earlier agents' ratios. */
  wSur: Float64Array;
  wFull: Float64Array;
  /** (N) truncated product, and per token log c_t = min(0, log ρ_t) (GAE traces). */
  wTrunc: Float64Array;
  logTrace: Float64Array[];
}

/** Intermediate-policy weights on batch b from the ratios absorbed so far (all 1 on a fresh batch). */
function intermediateWeights(st: StageState, b: PreparedBatch): Weights {
  const N = b.trajs.length;
  const fresh = b !== st.batch;
  const wTrunc = new Float64Array(N);
  const wFull = new Float64Array(N);
  const logTrace = b.trajs.map((t) => new Float64Array(t.tokens.length));
  for (let i = 0; i < N; i++) {
    let lc = 0;
    let lf = 0;
    if (!fresh)
      for (let t = 0; t < logTrace[i].length; t++) {
        logTrace[i][t] = Math.min(0, st.logRatio[i][t]);
        lc += logTrace[i][t];
        lf += st.logRatio[i][t];
      }
    wTrunc[i] = Math.exp(lc);
    wFull[i] = Math.exp(lf);
  }
  const kind = st.spec.weights;
  const wSur = kind === "truncated" ? wTrunc : kind === "full" ? wFull : new Float64Array(N).fill(1);
  return { spec: st.spec.intermediateAdvantages ? "intermediate" : "current", wSur, wFull, wTrunc, logTrace };
}

/** Advantages of agent a on batch b: under π̂^{i−1} (weights ω = p·w, traces c) or under π_cur (w = null). */
function advantagesFor(st: StageState, b: PreparedBatch, a: number, w: Weights | null): AdvantageResult {
  const t0 = st.now();
  const N = b.trajs.length;
  const omega = new Float64Array(N);
  for (let i = 0; i < N; i++) omega[i] = b.prior[i] * (w ? w.wTrunc[i] : 1);
  const include = new Uint8Array(N).fill(1);
  let scores: Float64Array;
  if (st.cfg.advEstimator === "gae") {
    if (!st.input.value)
      throw new Error("runStage: config.advEstimator = gae needs a value function (StageInput.value)");
    const traces = w ? w.logTrace : b.trajs.map((t) => new Float64Array(t.tokens.length));
    scores = gaeScores(b, a, st.input.value, traces, st.cfg.gamma, st.cfg.lam);
    for (let i = 0; i < N; i++) if (!Number.isFinite(scores[i])) include[i] = 0;
  } else {
    scores = Float64Array.from(b.trajs, (t) => t.reward);
  }
  const out = normaliseAdvantages(scores, include, omega, b.groups, st.cfg.scaleRewards, st.cfg.advClip);
  st.timing["timing_s/adv"] = (st.timing["timing_s/adv"] ?? 0) + st.now() - t0;
  return out;
}

/** Everything updateAgent needs for agent a on batch b (learner, spec, groups, radius, β). */
function updateInput(
  st: StageState,
  b: PreparedBatch,
  a: number,
  adv: AdvantageResult,
  wSur: Float64Array,
): Omit<AgentUpdate, "curChosen"> {
  const ag = b.agents[a];
  const trajList: number[] = [];
  for (let i = 0; i < b.trajs.length; i++) if (ag.offsets[i + 1] > ag.offsets[i]) trajList.push(i);
  const { cfg } = st;
  return {
    learner: st.learners[a],
    spec: {
      ...{ trajs: b.trajs, states: ag.refs, offsets: ag.offsets, adv: adv.adv, w: wSur, prior: b.prior },
      ...{ clipLow: cfg.clipLow, clipHigh: cfg.clipHigh, ratio: cfg.ratio },
      beta: cfg.trustRegion === "none" ? 0 : st.input.klCoef[a],
    },
    groupOf: b.groupOf,
    trajList,
    stateWeights: ag.weights,
    radius: cfg.klRadius[a],
    trustRegion: cfg.trustRegion,
  };
}

/** Log ρ_t of the promoted agent a on the stage batch, for the agents after it. */
function absorbRatios(st: StageState, a: number, chosenNew: Float64Array, chosenCur: Float64Array): void {
  const refs = st.batch.agents[a].refs;
  for (let k = 0; k < refs.length; k++) st.logRatio[refs[k].traj][refs[k].t] = chosenNew[k] - chosenCur[k];
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

function finishRecord(
  st: StageState,
  sigma: number[],
  records: AgentStageRecord[],
  before: Trajectory[] | null,
  after: Trajectory[] | null,
): StageRecord {
  const { cfg, batch } = st;
  const maxGroupSize = Math.max(...batch.groups.map((g) => g.length));
  const groupNormalised = cfg.advEstimator === "group" && cfg.scaleRewards === "group";
  const uniform = records.every((r) => r.uniformWeights === 1);
  const cert = certificate(
    records.map((r) => ({
      surrogateGain: r.surrogateGain * r.fracEpisodes,
      // The check bounds a quantile; the occupancy term needs the max, so the larger of the two is used.
      klRadius: r.accepted ? Math.max(r.klRadius, r.klMax) : 0,
      truncBias: r.truncBias,
      numEpisodes: r.accepted ? r.numEpisodes : 0,
      tvBound: !r.accepted
        ? 0
        : cfg.trustRegion === "checked"
          ? expectedTvBound(r.klRadius, cfg.klQuantile, r.dkwSlack)
          : 1,
    })),
    {
      gamma: cfg.certGamma,
      aMax: certificateAMax(cfg.advClip, groupNormalised, maxGroupSize, uniform),
      confidence: cfg.certConfidence,
      gainUnits: cfg.scaleRewards === "none" && cfg.advEstimator === "group" ? "reward" : "z",
    },
  );
  let improvement: EmpiricalImprovement | null = null;
  if (before && after)
    improvement =
      isEnumerated(before) && isEnumerated(after)
        ? exactImprovement(weightedMean(before), weightedMean(after))
        : pairedImprovement(before, after);
  return {
    ...{ step: st.input.step, algo: cfg.algo, trustRegion: cfg.trustRegion, intermediate: cfg.intermediate },
    ...{ advEstimator: cfg.advEstimator, sigma, numTrajectories: batch.trajs.length, maxGroupSize },
    generatedTokens: st.tokens,
    ...rewardStats(batch),
    agents: records,
    certificate: cert,
    improvement,
    timing: st.timing,
  };
}
