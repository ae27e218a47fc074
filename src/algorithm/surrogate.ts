/**
 * The per-agent SAT objective (sat-method §3c; the formula is in contracts/learner.ts) in two parts:
 * the clipped ratio term, which depends on the chosen tokens' log-probs only, and the β·exact-KL
 * penalty, which needs whole log-prob rows. Means are weighted by the prior p(τ) (1 for sampled
 * batches). The gain L̂ = clip term − its value at θ_cur (ratios 1) is 0 at θ_cur.
 */
import type { RatioLevel } from "../contracts/learner.js";
import type { AgentStates } from "./batch.js";
import { klRow } from "./kl.js";

/** What the clip term reads: per trajectory (N) advantages and weights, per state (S) offsets. */
export interface ClipData {
  /** (N+1) the agent's states of trajectory i are [offsets[i], offsets[i+1]). */
  offsets: Int32Array;
  adv: Float64Array;
  w: Float64Array;
  prior: Float64Array;
  clipLow: number;
  clipHigh: number;
  ratio: RatioLevel;
}

export interface ClipValue {
  /** Σ p·w·min(·) normalised as in contracts/learner.ts. */
  objective: number;
  /** L̂: objective minus its value at θ_cur. */
  gain: number;
  /** Share of the (prior-weighted) ratios where the clipped branch was taken. */
  clipFrac: number;
  /** Sampled k1 diagnostic mean(logp_cur − logp_θ) over the chosen tokens. */
  ppoKl: number;
}

/** The states (indices into the agent's state list) of trajectories `trajList`, in row order. */
export function statesOf(offsets: Int32Array, trajList: readonly number[]): number[] {
  const out: number[] = [];
  for (const i of trajList) for (let k = offsets[i]; k < offsets[i + 1]; k++) out.push(k);
  return out;
}

/**
 * The clipped ratio term over `trajList`. `chosen` holds log π_θ of the chosen token for the states
 * of trajList in statesOf order; `curChosen` log π_cur for every state of the agent (by state index).
 * When `dChosen` is given it receives d(−objective)/d chosen (same layout as `chosen`). The mean is
 * normalised over `scope` (default trajList): for pieces of a larger scope the pieces' objectives
 * and gradients add up to the scope's.
 */
export function clipTerm(
  d: ClipData,
  trajList: readonly number[],
  chosen: ArrayLike<number>,
  curChosen: ArrayLike<number>,
  dChosen: Float64Array | null,
  scope: readonly number[] = trajList,
): ClipValue {
  const logLo = Math.log(1 - d.clipLow);
  const logHi = Math.log(1 + d.clipHigh);
  const token = d.ratio === "token";
  let norm = 0;
  for (const i of scope) norm += d.prior[i] * (token ? d.offsets[i + 1] - d.offsets[i] : 1);
  if (!(norm > 0)) return { objective: 0, gain: 0, clipFrac: 0, ppoKl: 0 };
  let objective = 0;
  let base = 0;
  let clipMass = 0;
  let massTotal = 0;
  let k1 = 0;
  let nTok = 0;
  let row = 0;
  // One ratio term: value p·w·min(e^u·A, e^clip(u)·A)/norm; adds the gradient to dChosen[rows].
  const term = (u: number, A: number, ww: number, p: number, r0: number, r1: number) => {
    const ratio = Math.exp(u);
    const unclipped = ratio * A;
    const clipped = Math.exp(Math.min(logHi, Math.max(logLo, u))) * A;
    const useUnclipped = unclipped <= clipped;
    objective += ww * (useUnclipped ? unclipped : clipped);
    base += ww * A;
    massTotal += p;
    if (!useUnclipped) clipMass += p;
    if (dChosen && useUnclipped && ww !== 0 && A !== 0)
      for (let r = r0; r < r1; r++) dChosen[r] -= ww * ratio * A;
  };
  for (const i of trajList) {
    const k0 = d.offsets[i];
    const kEnd = d.offsets[i + 1];
    const A = d.adv[i];
    const ww = (d.w[i] * d.prior[i]) / norm;
    let u = 0;
    for (let k = k0, r = row; k < kEnd; k++, r++) {
      const diff = chosen[r] - curChosen[k];
      k1 -= diff;
      nTok++;
      if (token) term(diff, A, ww, d.prior[i], r, r + 1);
      else u += diff;
    }
    if (!token && kEnd > k0) term(u, A, ww, d.prior[i], row, row + kEnd - k0);
    row += kEnd - k0;
  }
  return {
    objective,
    gain: objective - base,
    clipFrac: massTotal > 0 ? clipMass / massTotal : 0,
    ppoKl: nTok > 0 ? k1 / nTok : 0,
  };
}

/**
 * β-weighted mean exact KL(π_θ ‖ π_cur) over the states of `trajList` (prior-weighted), from rows
 * (S_sub, V) of π_θ in statesOf order and curRows (S, V) of π_cur by state index. With `dlogp`
 * (S_sub, V) it adds d(β·KL mean)/d rows. Returns the (unweighted by β) mean KL. The mean is over
 * `scope` (default trajList), so pieces of a scope add up as in clipTerm.
 */
export function klPenalty(
  offsets: Int32Array,
  prior: Float64Array,
  trajList: readonly number[],
  rows: ArrayLike<number>,
  curRows: ArrayLike<number>,
  V: number,
  beta: number,
  dlogp: Float64Array | Float32Array | null,
  scope: readonly number[] = trajList,
): number {
  let norm = 0;
  for (const i of scope) norm += prior[i] * (offsets[i + 1] - offsets[i]);
  if (!(norm > 0)) return 0;
  let mean = 0;
  let row = 0;
  for (const i of trajList) {
    const sw = prior[i] / norm;
    for (let k = offsets[i]; k < offsets[i + 1]; k++, row++) {
      mean += sw * klRow(rows, row * V, curRows, k * V, V);
      if (!dlogp || beta === 0 || sw === 0) continue;
      const c = beta * sw;
      for (let v = 0; v < V; v++) {
        const l = rows[row * V + v];
        if (l === -Infinity) continue;
        const p = Math.exp(l);
        // ∂/∂l_v Σ_u e^{l_u}(l_u − q_u) = p_v (l_v − q_v + 1).
        if (p > 0) dlogp[row * V + v] += c * p * (l - curRows[k * V + v] + 1);
      }
    }
  }
  return mean;
}

/** Everything the whole objective reads when rows are at hand (tests, the row-level learner). */
export interface SurrogateData extends Omit<ClipData, "offsets" | "ratio"> {
  V: number;
  agent: AgentStates;
  /** (S_a, V) π_cur rows of all the agent's states, (S_a) chosen-token log-probs. */
  curRows: Float64Array;
  curChosen: Float64Array;
  beta: number;
  ratio?: RatioLevel;
}

export interface SurrogateValue extends ClipValue {
  klMean: number;
}

/**
 * The whole objective (clip term − β·KL) for rows (S_sub, V) of the states of `trajList`. When
 * `dlogp` is given it receives d(−objective)/d rows, the loss gradient handed to policy.backward.
 */
export function surrogate(
  d: SurrogateData,
  trajList: readonly number[],
  rows: ArrayLike<number>,
  dlogp: Float64Array | null,
): SurrogateValue {
  const { V, agent } = d;
  const ks = statesOf(agent.offsets, trajList);
  const chosen = new Float64Array(ks.length);
  for (let r = 0; r < ks.length; r++) chosen[r] = rows[r * V + agent.tokens[ks[r]]];
  const dChosen = dlogp ? new Float64Array(ks.length) : null;
  const clip = clipTerm(
    { ...d, offsets: agent.offsets, ratio: d.ratio ?? "sequence" },
    trajList,
    chosen,
    d.curChosen,
    dChosen,
  );
  if (dlogp && dChosen) for (let r = 0; r < ks.length; r++) dlogp[r * V + agent.tokens[ks[r]]] += dChosen[r];
  const klMean = klPenalty(agent.offsets, d.prior, trajList, rows, d.curRows, V, d.beta, dlogp);
  return { ...clip, objective: clip.objective - d.beta * klMean, klMean };
}
