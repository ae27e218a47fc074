/**
 * Statistics the result experiments share, and the verdict rules of the README's verdict table.
 *
 * Seeds are the independent units: an interval "over seeds" is a 95% t-interval of the per-seed
 * values (paired by seed when two arms share a seed's pretraining and prompts). The per-stage
 * monotonicity test is the paired held-out interval of the library (cert/improvement); its power
 * against a drop of size d is Φ(d/se − z_{0.975}).
 *
 * Verdicts compare a 95% interval with what a claim says:
 * - directional claim ("A is larger than B"): reproduced when the interval of A − B lies above 0,
 *   not reproduced when it lies below 0, inconclusive at this scale when it contains 0;
 * - "about as much" (non-inferiority with margin m): reproduced when the interval of A − B lies
 *   above −m, not reproduced when it lies below −m, else inconclusive;
 * - a claim with several parts: not reproduced if any part is not, reproduced if all parts are,
 *   else inconclusive.
 */
import { Rng } from "../src/engine/rng.js";
import { t975 } from "./lib.js";

export type Verdict = "reproduced" | "not reproduced" | "inconclusive at this scale";
export const VERDICTS: readonly Verdict[] = ["reproduced", "not reproduced", "inconclusive at this scale"];

export type Interval = [number, number];

export interface Estimate {
  mean: number;
  ci: Interval | null;
  n: number;
}

export const mean = (xs: readonly number[]): number =>
  xs.length > 0 ? xs.reduce((s, x) => s + x, 0) / xs.length : NaN;

export function sd(xs: readonly number[]): number {
  if (xs.length < 2) return NaN;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1));
}

/** Mean with its 95% t-interval (null with fewer than 2 values). */
export function tEstimate(xs: readonly number[]): Estimate {
  const ys = xs.filter((x) => Number.isFinite(x));
  const m = mean(ys);
  if (ys.length < 2) return { mean: m, ci: null, n: ys.length };
  const half = (t975(ys.length - 1) * sd(ys)) / Math.sqrt(ys.length);
  return { mean: m, ci: [m - half, m + half], n: ys.length };
}

/** Mean of the paired differences a[i] − b[i] with its 95% t-interval. */
export function pairedEstimate(a: readonly number[], b: readonly number[]): Estimate {
  if (a.length !== b.length) throw new Error(`paired estimate: ${a.length} values against ${b.length}`);
  return tEstimate(a.map((x, i) => x - b[i]));
}

/**
 * Ratio of means mean(num)/mean(den) with a 95% percentile bootstrap interval over seeds (seeds
 * resampled in pairs); null interval when a resample's denominator is 0 or fewer than 2 seeds.
 */
export function ratioEstimate(
  num: readonly number[],
  den: readonly number[],
  resamples = 4000,
  seed = 1,
): Estimate {
  if (num.length !== den.length)
    throw new Error(`ratio estimate: ${num.length} values against ${den.length}`);
  const n = num.length;
  const r = mean(num) / mean(den);
  if (n < 2 || !Number.isFinite(r)) return { mean: r, ci: null, n };
  const rng = new Rng(seed);
  const rs: number[] = [];
  for (let b = 0; b < resamples; b++) {
    let sn = 0;
    let sd_ = 0;
    for (let i = 0; i < n; i++) {
      const j = rng.int(n);
      sn += num[j];
      sd_ += den[j];
    }
    if (sd_ === 0) return { mean: r, ci: null, n };
    rs.push(sn / sd_);
  }
  rs.sort((x, y) => x - y);
  return { mean: r, ci: [rs[Math.floor(0.025 * resamples)], rs[Math.ceil(0.975 * resamples) - 1]], n };
}

/** Standard normal CDF (Abramowitz–Stegun 7.1.26 on erf; |error| < 1.5e-7). */
export function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * z);
  const erf =
    1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
      t *
      Math.exp(-z * z);
  return x >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf);
}

/** Standard normal quantile by bisection on normalCdf (|error| < 1e-9 in p). */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new Error(`normal quantile: p must be in (0, 1), got ${p}`);
  let lo = -10;
  let hi = 10;
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    if (normalCdf(mid) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

export const Z975 = normalQuantile(0.975);

/**
 * Power of the one-sided 2.5% test "the 95% interval lies below 0" (a monotonicity violation)
 * against a true drop `drop` > 0, for a paired estimate with standard error `se`.
 */
export function powerAgainstDrop(se: number, drop: number): number {
  if (!(se > 0)) return 1;
  return normalCdf(drop / se - Z975);
}

/**
 * Held-out prompts needed so that the test above has `power` against `drop`, when the per-prompt
 * paired differences have standard deviation `sigma`: n = ((z_{0.975} + z_power)·σ/drop)².
 */
export function promptsForPower(sigma: number, drop: number, power: number): number {
  return Math.ceil((((Z975 + normalQuantile(power)) * sigma) / drop) ** 2);
}

/** The q-quantile of xs (linear interpolation). */
export function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const pos = q * (s.length - 1);
  const i = Math.floor(pos);
  return i + 1 < s.length ? s[i] + (pos - i) * (s[i + 1] - s[i]) : s[i];
}

// ---------------------------------------------------------------------------------------------
// Verdicts

/** A claim that a difference is positive (direction 1) or negative (−1), judged on its interval. */
export function directional(ci: Interval | null, direction: 1 | -1 = 1): Verdict {
  if (!ci) return "inconclusive at this scale";
  const [lo, hi] = direction === 1 ? ci : [-ci[1], -ci[0]];
  if (lo > 0) return "reproduced";
  if (hi < 0) return "not reproduced";
  return "inconclusive at this scale";
}

/** "A gains about as much as B": the interval of A − B against the margin −m. */
export function nonInferior(ci: Interval | null, margin: number): Verdict {
  if (!ci) return "inconclusive at this scale";
  if (ci[0] > -margin) return "reproduced";
  if (ci[1] < -margin) return "not reproduced";
  return "inconclusive at this scale";
}

/** A claim with several parts. */
export function allOf(parts: readonly Verdict[]): Verdict {
  if (parts.some((v) => v === "not reproduced")) return "not reproduced";
  if (parts.length > 0 && parts.every((v) => v === "reproduced")) return "reproduced";
  return "inconclusive at this scale";
}

/** "0.330 [0.320, 0.340]" (or with a sign for differences). */
export function estimateText(e: Estimate, digits = 3, signed = false): string {
  const f = (x: number) => (signed && x >= 0 ? "+" : "") + x.toFixed(digits);
  return e.ci ? `${f(e.mean)} [${e.ci[0].toFixed(digits)}, ${e.ci[1].toFixed(digits)}]` : f(e.mean);
}
