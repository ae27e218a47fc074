/**
 * Stage-0 projection of a plug-and-play upgrade (sat-method §5). Per state, if
 * KL(π_pre ‖ π_cur) ≤ δ0 the new model's distribution is used untouched; otherwise the geometric
 * mixture π_λ ∝ π_pre^{1/(1+λ)}·π_cur^{λ/(1+λ)} with KL(π_λ ‖ π_cur) = δ0.
 *
 * Monotonicity (why bisection is valid): write s = 1/(1+λ) ∈ (0, 1] and h = log π_pre − log π_cur.
 * Then π_s ∝ π_cur·e^{s·h}, an exponential family with cumulant A(s) = log E_cur[e^{s·h}], and
 * KL(π_s ‖ π_cur) = s·A'(s) − A(s), whose derivative is s·A''(s) = s·Var_{π_s}(h) ≥ 0. So the KL
 * increases in s (decreases in λ), from 0 at s = 0 (λ → ∞, π_cur) to KL(π_pre ‖ π_cur) at s = 1
 * (λ = 0), strictly unless h is constant on the support. Bisection on s keeps the feasible end, so the
 * returned row never exceeds δ0.
 *
 * ProjectedPolicy realises the projection at scoring time from the two policies' rows; a decoder
 * samples through it by calling projectToTrustRegion on its two next-token rows.
 */
import { klRow } from "../algorithm/kl.js";
import type { ScoringPolicy, StateRef, Trajectory } from "../contracts/policy.js";

export interface Projection {
  /** (V) log π of the result. */
  logp: Float64Array;
  /** 0 when π_pre was kept. */
  lambda: number;
  /** KL(result ‖ π_cur). */
  kl: number;
  projected: boolean;
}

/** log π_s for s ∈ [0, 1], normalised; out receives the row. */
function mixture(
  lpre: ArrayLike<number>,
  lcur: ArrayLike<number>,
  s: number,
  V: number,
  out: Float64Array,
): void {
  let max = -Infinity;
  for (let v = 0; v < V; v++) {
    // 0·(−∞) must read as 0: the endpoints copy a single row.
    const x = s === 1 ? lpre[v] : s === 0 ? lcur[v] : s * lpre[v] + (1 - s) * lcur[v];
    out[v] = x;
    if (x > max) max = x;
  }
  if (max === -Infinity) throw new Error("projectToTrustRegion: π_pre and π_cur have disjoint supports");
  let z = 0;
  for (let v = 0; v < V; v++) z += Math.exp(out[v] - max);
  const lz = max + Math.log(z);
  for (let v = 0; v < V; v++) out[v] -= lz;
}

/** Projects one row (sat-method §5). `tol` bounds δ0 − KL of the result when it is projected. */
export function projectToTrustRegion(
  logpPre: ArrayLike<number>,
  logpCur: ArrayLike<number>,
  delta0: number,
  tol = 1e-12,
): Projection {
  const V = logpCur.length;
  if (logpPre.length !== V)
    throw new Error(`projectToTrustRegion: row lengths differ (${logpPre.length} vs ${V})`);
  if (!(delta0 > 0)) throw new Error(`projectToTrustRegion: delta0 must be > 0, got ${delta0}`);
  const row = new Float64Array(V);
  mixture(logpPre, logpCur, 1, V, row);
  const kl0 = klRow(row, 0, logpCur, 0, V);
  if (kl0 <= delta0) return { logp: row, lambda: 0, kl: kl0, projected: false };
  let lo = 0; // KL(s=0) = 0 ≤ δ0
  let hi = 1; // KL(s=1) > δ0
  let klLo = 0;
  const best = new Float64Array(V);
  mixture(logpPre, logpCur, 0, V, best);
  for (let it = 0; it < 200 && hi - lo > 0; it++) {
    const mid = 0.5 * (lo + hi);
    if (mid === lo || mid === hi) break;
    mixture(logpPre, logpCur, mid, V, row);
    const kl = klRow(row, 0, logpCur, 0, V);
    if (kl <= delta0) {
      lo = mid;
      klLo = kl;
      best.set(row);
      if (delta0 - kl <= tol) break;
    } else {
      hi = mid;
    }
  }
  return { logp: best, lambda: (1 - lo) / lo, kl: klLo, projected: true };
}

export interface ProjectionStats {
  /** Share of scored states where π_pre violated δ0 and was projected. */
  projectedFrac: number;
  lambdaMean: number;
  klMax: number;
}

/** Projects S rows of width V. */
export function projectRows(
  pre: Float32Array | Float64Array,
  cur: Float32Array | Float64Array,
  S: number,
  V: number,
  delta0: number,
): { rows: Float64Array; stats: ProjectionStats } {
  if (pre.length !== S * V || cur.length !== S * V)
    throw new Error(`projectRows: expected ${S}×${V} rows, got pre ${pre.length}, cur ${cur.length}`);
  const rows = new Float64Array(S * V);
  let projected = 0;
  let lambdaSum = 0;
  let klMax = 0;
  for (let k = 0; k < S; k++) {
    const p = projectToTrustRegion(
      pre.subarray(k * V, (k + 1) * V),
      cur.subarray(k * V, (k + 1) * V),
      delta0,
    );
    rows.set(p.logp, k * V);
    if (p.projected) projected++;
    lambdaSum += p.lambda;
    klMax = Math.max(klMax, p.kl);
  }
  return {
    rows,
    stats: { projectedFrac: S > 0 ? projected / S : 0, lambdaMean: S > 0 ? lambdaSum / S : 0, klMax },
  };
}

/** A swapped-in agent: scores with the projection of `pre` into the δ0-ball of `cur`, state by state. */
export class ProjectedPolicy implements ScoringPolicy {
  readonly vocabSize: number;
  lastStats: ProjectionStats = { projectedFrac: 0, lambdaMean: 0, klMax: 0 };

  constructor(
    readonly pre: ScoringPolicy,
    readonly cur: ScoringPolicy,
    readonly delta0: number,
  ) {
    if (pre.vocabSize !== cur.vocabSize)
      throw new Error(`ProjectedPolicy: vocab sizes differ (pre ${pre.vocabSize}, cur ${cur.vocabSize})`);
    if (!(delta0 > 0)) throw new Error(`ProjectedPolicy: delta0 must be > 0, got ${delta0}`);
    this.vocabSize = cur.vocabSize;
  }

  logProbs(trajs: readonly Trajectory[], states: readonly StateRef[]): Float64Array {
    const V = this.vocabSize;
    const { rows, stats } = projectRows(
      this.pre.logProbs(trajs, states),
      this.cur.logProbs(trajs, states),
      states.length,
      V,
      this.delta0,
    );
    this.lastStats = stats;
    return rows;
  }
}
