/**
 * The per-agent block update of a stage (sat-method §3c–e), ignorant of the other agents: given the
 * agent's update spec (states, advantages, intermediate weights), it runs E epochs of minibatch
 * optimizer steps on the surrogate (a prompt group is never split), then — when the trust region is
 * checked — measures the exact per-state KL quantile and the surrogate gain of θ_cur + ξ^j·Δ for
 * j = 0..max and keeps the first candidate inside δ with a positive gain, or π_cur (the null update,
 * bit for bit) when none passes. **A violation is never accepted.**
 *
 * Optimizer state (sat-method §3e): never rewound to the pre-update state, which would leave agents
 * with a cold, sign-like Adam step whenever the full step is rejected. The epochs' second moments
 * and step count are kept in every case; the first moments are kept for the full step, scaled by ξ^j
 * when candidate j > 0 is accepted, and cleared on a null update.
 */
import type { Rng } from "../engine/rng.js";
import type { AgentLearner, UpdateSpec } from "../contracts/learner.js";
import type { StageConfig, TrustRegion } from "./config.js";
import { weightedQuantile } from "./kl.js";
import { clipTerm } from "./surrogate.js";

export interface UpdateOutcome {
  accepted: 0 | 1;
  /** ξ^j of the kept candidate (0 = null update). */
  stepScale: number;
  /** j of the kept candidate; candidates tried when the null update was kept. */
  backtracks: number;
  candidatesTried: number;
  violations: number;
  /** 1 when the full step (j = 0) was outside δ. */
  firstViolation: 0 | 1;
  /** KL quantile of the full step, which the adaptive β rule reads. */
  fullQuantile: number;
  /** Per state at the kept parameters (zeros for the null update). */
  kls: Float64Array;
  tvs: Float64Array;
  /** Chosen-token log-probs at the kept parameters (π_cur's for the null update). */
  chosen: Float64Array;
  gain: number;
  clipTerm: number;
  clipFrac: number;
  ppoKl: number;
  /** Seconds in the trust-region check and backtracking. */
  checkSeconds: number;
}

/** Prompt groups restricted to `trajList`, for minibatching (a group is never split). */
function groupsOf(groupOf: Int32Array, trajList: readonly number[]): number[][] {
  const byGroup = new Map<number, number[]>();
  for (const i of trajList) {
    const g = groupOf[i];
    const list = byGroup.get(g);
    if (list) list.push(i);
    else byGroup.set(g, [i]);
  }
  return [...byGroup.keys()].sort((x, y) => x - y).map((g) => byGroup.get(g)!);
}

export interface AgentUpdate {
  learner: AgentLearner;
  spec: UpdateSpec;
  /** (N) group index of each trajectory, and the trajectories where the agent acted. */
  groupOf: Int32Array;
  trajList: number[];
  /** (S) prior weight of each state's trajectory (for the KL quantile). */
  stateWeights: Float64Array;
  /** (S) π_cur chosen-token log-probs (from beginUpdate). */
  curChosen: Float64Array;
  radius: number;
  trustRegion: TrustRegion;
}

/** E epochs of minibatch steps, then (checked trust region) the check with backtracking. The learner's beginUpdate has run. */
export async function updateAgent(
  u: AgentUpdate,
  cfg: StageConfig,
  rng: Rng,
  now: () => number,
): Promise<UpdateOutcome> {
  const { learner, spec, trajList } = u;
  const groups = groupsOf(u.groupOf, trajList);
  for (let e = 0; e < cfg.epochs; e++) {
    const order = rng.shuffle(groups.map((_, g) => g));
    for (let m = 0; m < order.length; m += cfg.miniBatchGroups)
      await learner.step(order.slice(m, m + cfg.miniBatchGroups).flatMap((g) => groups[g]));
  }
  const tCheck = now();
  const evaluate = async () => {
    const ms = await learner.measure();
    return { ...ms, ...clipTerm(spec, trajList, ms.chosen, u.curChosen, null) };
  };
  const quantile = (kls: Float64Array) => weightedQuantile(kls, u.stateWeights, cfg.klQuantile);
  const outcome = (
    ev: Awaited<ReturnType<typeof evaluate>>,
    j: number,
    tried: number,
    violations: number,
  ) => ({
    accepted: 1 as const,
    stepScale: cfg.backtrackRatio ** j,
    backtracks: j,
    candidatesTried: tried,
    violations,
    firstViolation: (quantile(full.kl) > u.radius ? 1 : 0) as 0 | 1,
    fullQuantile: quantile(full.kl),
    kls: ev.kl,
    tvs: ev.tv,
    chosen: ev.chosen,
    gain: ev.gain,
    clipTerm: ev.objective,
    clipFrac: ev.clipFrac,
    ppoKl: ev.ppoKl,
    checkSeconds: now() - tCheck,
  });
  const full = await evaluate();
  if (u.trustRegion !== "checked") {
    await learner.endUpdate(1);
    return outcome(full, 0, 1, quantile(full.kl) > u.radius ? 1 : 0);
  }
  let violations = 0;
  for (let j = 0; j <= cfg.maxBacktracks; j++) {
    const scale = cfg.backtrackRatio ** j;
    let ev = full;
    if (j > 0) {
      await learner.setStepScale(scale);
      ev = await evaluate();
    }
    const violated = quantile(ev.kl) > u.radius;
    if (violated) violations++;
    if (!violated && ev.gain > 0) {
      await learner.endUpdate(scale);
      return outcome(ev, j, j + 1, violations);
    }
  }
  // Nothing passed: keep π_cur (the null update always satisfies the trust region), bit for bit.
  await learner.setStepScale(0);
  await learner.endUpdate(0);
  const S = spec.states.length;
  const tried = cfg.maxBacktracks + 1;
  return {
    ...outcome(full, tried, tried, violations),
    accepted: 0,
    stepScale: 0,
    kls: new Float64Array(S),
    tvs: new Float64Array(S),
    chosen: Float64Array.from(u.curChosen),
    gain: 0,
    clipTerm: 0,
    clipFrac: 0,
    ppoKl: 0,
  };
}

/** Greedy scheduler: L̂ of the agent after one full-batch optimizer step from θ_cur, undone by restore(). */
export async function predictGain(u: AgentUpdate): Promise<number> {
  if (u.trajList.length === 0) return 0;
  const snap = await u.learner.snapshot();
  const { chosen } = await u.learner.beginUpdate(u.spec);
  await u.learner.step(u.trajList);
  const ms = await u.learner.measure();
  const gain = clipTerm(u.spec, u.trajList, ms.chosen, chosen, null).gain;
  await u.learner.endUpdate(1);
  await u.learner.restore(snap);
  return gain;
}
