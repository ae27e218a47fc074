/**
 * The per-agent SAT objective (sat-method §3c) and its gradient with respect to log-prob rows:
 *   u(τ) = Σ_{t∈T_a(τ)} [log π_θ(a_t|s_t) − log π_cur(a_t|s_t)],  r = exp(u)
 *   L(θ) = mean_τ w(τ)·min(r·Ã, exp(clip(u, log(1−ε_lo), log(1+ε_hi)))·Ã) − β·mean_s KL(π_θ(·|s) ‖ π_cur(·|s))
 * Means are weighted by the prior p(τ) (1 for sampled batches). The KL is exact over the whole row.
 * The gain L̂ = mean_τ w·[min(r·Ã, clip(r)·Ã) − Ã] is 0 at θ_cur (r = 1).
 */
import type { AgentStates } from "./batch.js";
import { klRow } from "./kl.js";

export interface SurrogateData {
  V: number;
  agent: AgentStates;
  /** (S_a, V) π_cur rows of all the agent's states. */
  curRows: Float64Array;
  /** (S_a) π_cur log-prob of the chosen tokens. */
  curChosen: Float64Array;
  /** (N) advantages, intermediate weights, prior weights. */
  adv: Float64Array;
  w: Float64Array;
  prior: Float64Array;
  clipLow: number;
  clipHigh: number;
  beta: number;
}

export interface SurrogateValue {
  /** Objective to maximise: clipped term − β·KL. */
  objective: number;
  /** L̂: the clipped term minus its value at θ_cur. */
  gain: number;
  klMean: number;
  /** Share of trajectories (prior-weighted) where the clipped branch was taken. */
  clipFrac: number;
  /** Sampled k1 diagnostic mean(logp_cur − logp_θ) over the chosen tokens. */
  ppoKl: number;
}

/** The states (refs into agent.refs) of trajectories `trajList`, in row order. */
export function statesOf(agent: AgentStates, trajList: readonly number[]): number[] {
  const out: number[] = [];
  for (const i of trajList) for (let k = agent.offsets[i]; k < agent.offsets[i + 1]; k++) out.push(k);
  return out;
}

/**
 * Value of the objective for rows (S_sub, V) of the states of `trajList` (statesOf order). When
 * `dlogp` is given it receives d(−objective)/d rows, the loss gradient handed to policy.backward.
 */
export function surrogate(
  d: SurrogateData,
  trajList: readonly number[],
  rows: ArrayLike<number>,
  dlogp: Float64Array | null,
): SurrogateValue {
  const { V, agent } = d;
  const logLo = Math.log(1 - d.clipLow);
  const logHi = Math.log(1 + d.clipHigh);
  let sumP = 0;
  let sumPs = 0;
  for (const i of trajList) {
    sumP += d.prior[i];
    sumPs += d.prior[i] * (agent.offsets[i + 1] - agent.offsets[i]);
  }
  let clipTerm = 0;
  let baseTerm = 0;
  let clipMass = 0;
  let k1 = 0;
  let kSum = 0;
  let nTok = 0;
  let row = 0;
  for (const i of trajList) {
    const k0 = agent.offsets[i];
    const k1End = agent.offsets[i + 1];
    let u = 0;
    for (let k = k0, r = row; k < k1End; k++, r++) {
      const diff = rows[r * V + agent.tokens[k]] - d.curChosen[k];
      u += diff;
      k1 -= diff;
      nTok++;
    }
    const A = d.adv[i];
    const ww = sumP > 0 ? (d.w[i] * d.prior[i]) / sumP : 0;
    const ratio = Math.exp(u);
    const unclipped = ratio * A;
    const clipped = Math.exp(Math.min(logHi, Math.max(logLo, u))) * A;
    // PPO convention: on a tie the unclipped branch carries the gradient.
    const useUnclipped = unclipped <= clipped;
    clipTerm += ww * (useUnclipped ? unclipped : clipped);
    baseTerm += ww * A;
    if (!useUnclipped) clipMass += sumP > 0 ? d.prior[i] / sumP : 0;
    if (dlogp && useUnclipped && ww !== 0 && A !== 0) {
      const g = ww * ratio * A;
      for (let k = k0, r = row; k < k1End; k++, r++) dlogp[r * V + agent.tokens[k]] -= g;
    }
    // Exact KL(π_θ ‖ π_cur) at each of the agent's states of this trajectory.
    for (let k = k0, r = row; k < k1End; k++, r++) {
      const kl = klRow(rows, r * V, d.curRows, k * V, V);
      const sw = sumPs > 0 ? d.prior[i] / sumPs : 0;
      kSum += sw * kl;
      if (dlogp && d.beta !== 0 && sw !== 0) {
        const c = d.beta * sw;
        for (let v = 0; v < V; v++) {
          const l = rows[r * V + v];
          if (l === -Infinity) continue;
          const p = Math.exp(l);
          // ∂/∂l_v Σ_u e^{l_u}(l_u − q_u) = p_v (l_v − q_v + 1).
          if (p > 0) dlogp[r * V + v] += c * p * (l - d.curRows[k * V + v] + 1);
        }
      }
    }
    row += k1End - k0;
  }
  return {
    objective: clipTerm - d.beta * kSum,
    gain: clipTerm - baseTerm,
    klMean: kSum,
    clipFrac: clipMass,
    ppoKl: nTok > 0 ? k1 / nTok : 0,
  };
}
