/**
 * The per-agent block update of a stage (sat-method §3c–e), ignorant of the other agents: it gets
 * the agent's π_cur rows, advantages and intermediate weights, runs E epochs of minibatch optimizer
 * steps on the surrogate (a prompt group is never split), then — when the trust region is enforced —
 * checks the exact per-state KL quantile and the surrogate gain of θ_cur + ξ^j·Δ for j = 0..max,
 * and keeps π_cur (null update, parameters restored bit for bit) when no candidate passes.
 *
 * Optimizer state (sat-method §3e): it is never rewound to the pre-update state, which would leave
 * agents with a cold, sign-like Adam step whenever the full step is rejected. The epochs' second
 * moments and step count are kept in every case; the first moments are kept for the full step,
 * scaled by ξ^j when candidate j > 0 is accepted, and cleared on a null update.
 * Also the greedy scheduler's predicted gain: L̂ after one full-batch optimizer step from θ_cur,
 * undone by restore().
 */
import type { Rng } from "../engine/rng.js";
import { chosenLogp, type PreparedBatch } from "./batch.js";
import type { StageConfig } from "./config.js";
import { klRows, weightedQuantile } from "./kl.js";
import type { TrainablePolicy } from "../contracts/policy.js";
import { statesOf, surrogate, type SurrogateData } from "./surrogate.js";

export interface AgentRef {
  /** (S_a, V) π_cur rows and (S_a) chosen-token log-probs. */
  rows: Float64Array;
  chosen: Float64Array;
}

export function scoreAgent(policy: TrainablePolicy, batch: PreparedBatch, a: number, V: number): AgentRef {
  const ag = batch.agents[a];
  const raw = ag.refs.length > 0 ? policy.logProbs(batch.trajs, ag.refs) : new Float64Array(0);
  if (raw.length !== ag.refs.length * V)
    throw new Error(
      `runStage: agent ${a} logProbs returned ${raw.length} values for ${ag.refs.length} states × V=${V}`,
    );
  const rows = Float64Array.from(raw);
  return { rows, chosen: chosenLogp(rows, ag.tokens, V) };
}

export function trajectoriesOf(batch: PreparedBatch, a: number): number[] {
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

export interface UpdateOutcome {
  /** KL quantile of the full step (candidate j = 0), which the adaptive β rule reads. */
  fullQuantile: number;
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
export function updateAgent(
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
  policy.beginUpdate();
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
  const fullQuantile = quantile(full.kls);
  if (!enforce) {
    policy.endUpdate(1);
    return {
      fullQuantile,
      checkSeconds: now() - tCheck,
      accepted: 1,
      stepScale: 1,
      backtracks: 0,
      candidatesTried: 1,
      violations: fullQuantile > radius ? 1 : 0,
      firstViolation: fullQuantile > radius ? 1 : 0,
      ...full,
    };
  }
  let violations = 0;
  let firstViolation: 0 | 1 = 0;
  let tried = 0;
  for (let j = 0; j <= cfg.maxBacktracks; j++) {
    const scale = cfg.backtrackRatio ** j;
    let ev = full;
    if (j > 0) {
      policy.setStepScale(scale);
      ev = evaluate(policy, batch, d, trajList);
    }
    tried++;
    const violated = quantile(ev.kls) > radius;
    if (violated) {
      violations++;
      if (j === 0) firstViolation = 1;
    }
    if (!violated && ev.gain > 0) {
      policy.endUpdate(scale);
      return {
        fullQuantile,
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
  }
  // Nothing passed: keep π_cur (the null update always satisfies the trust region), bit for bit.
  policy.setStepScale(0);
  policy.endUpdate(0);
  return {
    fullQuantile,
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

/** Greedy scheduler: L̂ of the agent after one full-batch optimizer step from θ_cur, undone by restore(). */
export function predictGain(policy: TrainablePolicy, batch: PreparedBatch, d: SurrogateData): number {
  const trajList = trajectoriesOf(batch, batch.agents.indexOf(d.agent));
  if (trajList.length === 0) return 0;
  const snap = policy.snapshot();
  const rows = policy.logProbs(batch.trajs, d.agent.refs);
  const dlogp = new Float64Array(rows.length);
  surrogate(d, trajList, rows, dlogp);
  policy.zeroGrad();
  policy.backward(dlogp);
  policy.optimizerStep();
  const gain = evaluate(policy, batch, d, trajList).gain;
  policy.restore(snap);
  return gain;
}
