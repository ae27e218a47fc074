/**
 * Exact divergences between log-prob rows, and the statistics of the trust-region check:
 * weighted quantile of per-state KLs and the DKW slack. Everything in float64; -Infinity
 * log-probs (masked actions) are handled as zero probabilities.
 */
import type { Buf } from "../engine/kernels/types.js";

/** KL(p ‖ q) of the rows p = logp[offP .. offP+V), q = logq[offQ .. offQ+V). Infinity if p puts mass where q has none. */
export function klRow(
  logp: ArrayLike<number>,
  offP: number,
  logq: ArrayLike<number>,
  offQ: number,
  V: number,
): number {
  let kl = 0;
  for (let v = 0; v < V; v++) {
    const lp = logp[offP + v];
    if (lp === -Infinity) continue;
    const p = Math.exp(lp);
    if (p === 0) continue;
    kl += p * (lp - logq[offQ + v]);
  }
  // Rounding can leave a tiny negative value for identical rows.
  return kl > 0 ? kl : 0;
}

/** Total variation distance ½Σ|p−q| of two log-prob rows. */
export function tvRow(
  logp: ArrayLike<number>,
  offP: number,
  logq: ArrayLike<number>,
  offQ: number,
  V: number,
): number {
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.abs(Math.exp(logp[offP + v]) - Math.exp(logq[offQ + v]));
  return 0.5 * s;
}

/** Entropy −Σ p log p of a log-prob row. */
export function entropyRow(logp: ArrayLike<number>, off: number, V: number): number {
  let h = 0;
  for (let v = 0; v < V; v++) {
    const lp = logp[off + v];
    if (lp === -Infinity) continue;
    h -= Math.exp(lp) * lp;
  }
  return h;
}

/** (S) per-state KL(rows ‖ ref) for S rows of width V. */
export function klRows(rows: Buf, ref: Buf, S: number, V: number): Float64Array {
  const out = new Float64Array(S);
  for (let k = 0; k < S; k++) out[k] = klRow(rows, k * V, ref, k * V, V);
  return out;
}

/**
 * Weighted (level)-quantile, inverted-CDF definition: the smallest x with P(X ≤ x) ≥ level.
 * For equal weights and N values this is sorted[ceil(level·N) − 1]. Empty input → 0.
 */
export function weightedQuantile(
  values: ArrayLike<number>,
  weights: ArrayLike<number> | null,
  level: number,
): number {
  const n = values.length;
  if (n === 0) return 0;
  const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => values[a] - values[b] || a - b);
  if (weights === null) return values[idx[Math.max(0, Math.ceil(level * n - 1e-12) - 1)]];
  let total = 0;
  for (let i = 0; i < n; i++) total += weights[i];
  let acc = 0;
  for (const i of idx) {
    acc += weights[i];
    if (acc >= level * total * (1 - 1e-12)) return values[i];
  }
  return values[idx[n - 1]];
}

/** DKW slack sqrt(log(2/η)/(2N)): w.p. 1−η the true exceedance mass is at most α + slack. */
export function dkwSlack(numStates: number, eta: number): number {
  if (numStates <= 0) return Infinity;
  return Math.sqrt(Math.log(2 / eta) / (2 * numStates));
}
