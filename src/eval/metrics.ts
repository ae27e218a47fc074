/**
 * Evaluation metrics over n sampled answers per prompt (conventions.md §2), all pure:
 * - avg@k: mean correctness; its expectation is the accuracy of one sample, so every k gets the
 *   mean over all n samples (the lowest-variance unbiased estimate; verl mean@N, OpenRLHF pass1).
 * - pass@k: the unbiased estimator 1 − C(n−c, k)/C(n, k) of "at least one of k samples is correct"
 *   (Chen et al. 2021), in product form so large n neither overflows nor cancels.
 * - maj@k: the majority answer of the first k samples is correct (ties → earliest sample, a null
 *   answer never wins: the rule sat-method §2 uses for agents).
 * - bootstrapCI: percentile interval of the mean over prompts, resampling prompts.
 */
import { majorityVote } from "../team/rollout.js";
import type { Rng } from "../engine/rng.js";

export type MetricName = "avg" | "pass" | "maj";
export const METRIC_NAMES: readonly MetricName[] = ["avg", "pass", "maj"];

function checkCount(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new Error(`${name} must be an integer ≥ ${min}, got ${v}`);
}

/** Unbiased pass@k from n samples of which c are correct: 1 − Π_{i=n−c+1..n} (1 − k/i). */
export function passAtK(n: number, c: number, k: number): number {
  checkCount("passAtK: n", n, 1);
  checkCount("passAtK: k", k, 1);
  checkCount("passAtK: c", c, 0);
  if (c > n) throw new Error(`passAtK: c (${c}) exceeds n (${n})`);
  if (k > n) throw new Error(`passAtK: k (${k}) exceeds the number of samples n (${n}); raise eval.n`);
  // Fewer than k wrong samples: every k-subset holds a correct one.
  if (n - c < k) return 1;
  let allWrong = 1; // C(n−c, k)/C(n, k)
  for (let i = n - c + 1; i <= n; i++) allWrong *= 1 - k / i;
  return 1 - allWrong;
}

/** avg@k of one prompt: mean correctness over all n samples (k only has to be ≤ n). */
export function avgAtK(correct: ArrayLike<number>, k: number): number {
  checkCount("avgAtK: k", k, 1);
  if (k > correct.length)
    throw new Error(`avgAtK: k (${k}) exceeds the number of samples n (${correct.length}); raise eval.n`);
  let s = 0;
  for (let i = 0; i < correct.length; i++) s += correct[i];
  return s / correct.length;
}

/** Most frequent non-null answer of answers[0..k); ties go to the one seen first; all null → null. */
export function majorityAnswer(answers: readonly (string | null)[], k = answers.length): string | null {
  return majorityVote(answers.slice(0, k));
}

/** Decides whether an answer is correct: the reference answer, or a predicate (e.g. the verifier). */
export type AnswerJudge = string | ((answer: string) => boolean);

/** maj@k of one prompt: 1 when the majority answer of the first k samples is correct, else 0. */
export function majAtK(answers: readonly (string | null)[], k: number, correct: AnswerJudge): number {
  checkCount("majAtK: k", k, 1);
  if (k > answers.length)
    throw new Error(`majAtK: k (${k}) exceeds the number of samples n (${answers.length}); raise eval.n`);
  const winner = majorityAnswer(answers, k);
  if (winner === null) return 0;
  return (typeof correct === "string" ? winner === correct : correct(winner)) ? 1 : 0;
}

/** maj@k averaged over prompts. */
export function meanMajAtK(
  answers: readonly (readonly (string | null)[])[],
  k: number,
  correct: readonly AnswerJudge[],
): number {
  if (answers.length !== correct.length)
    throw new Error(`meanMajAtK: ${answers.length} prompts of answers but ${correct.length} judges`);
  return mean(answers.map((a, i) => majAtK(a, k, correct[i])));
}

/** Arithmetic mean; NaN for an empty list. */
export function mean(values: ArrayLike<number>): number {
  if (values.length === 0) return NaN;
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i];
  return s / values.length;
}

/** Linear-interpolated quantile of an ascending array (R type 7). */
function quantileSorted(sorted: Float64Array, q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export interface Interval {
  mean: number;
  low: number;
  high: number;
}

/**
 * Percentile bootstrap interval of the mean over prompts: resample the prompts with replacement
 * `samples` times. NaN bounds when there are no prompts or no resamples.
 */
export function bootstrapCI(
  perPromptValues: ArrayLike<number>,
  rng: Rng,
  samples = 1000,
  level = 0.95,
): Interval {
  if (!(level > 0 && level < 1)) throw new Error(`bootstrapCI: level must be in (0, 1), got ${level}`);
  checkCount("bootstrapCI: samples", samples, 0);
  const P = perPromptValues.length;
  const m = mean(perPromptValues);
  if (P === 0 || samples === 0) return { mean: m, low: NaN, high: NaN };
  const means = new Float64Array(samples);
  for (let b = 0; b < samples; b++) {
    let s = 0;
    for (let i = 0; i < P; i++) s += perPromptValues[rng.int(P)];
    means[b] = s / P;
  }
  means.sort();
  const tail = (1 - level) / 2;
  return { mean: m, low: quantileSorted(means, tail), high: quantileSorted(means, 1 - tail) };
}

/** What one prompt produced: n samples' correctness (0/1), their answers, and how to judge an answer. */
export interface PromptSamples {
  correct: number[];
  answers: (string | null)[];
  judge: AnswerJudge;
}

/**
 * Per-prompt values of avg@k, pass@k and maj@k for every k, keyed "avg@1", "pass@4", …
 * `kScale` evaluates pass/maj at k·kScale samples under the key k (matched-budget baselines).
 */
export function perPromptMetrics(
  prompts: readonly PromptSamples[],
  ks: readonly number[],
  kScale = 1,
): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const name of METRIC_NAMES) {
    for (const k of ks) {
      const kk = k * kScale;
      out.set(
        `${name}@${k}`,
        prompts.map((p) => {
          if (name === "avg") return avgAtK(p.correct, kk);
          if (name === "pass")
            return passAtK(
              p.correct.length,
              p.correct.reduce((s, c) => s + c, 0),
              kk,
            );
          return majAtK(p.answers, kk, p.judge);
        }),
      );
    }
  }
  return out;
}

/** Means over prompts with "<key>/ci_low" and "<key>/ci_high"; each key bootstraps from its own fork of rng. */
export function aggregateMetrics(
  perPrompt: Map<string, number[]>,
  rng: Rng,
  samples = 1000,
  level = 0.95,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, values] of perPrompt) {
    const ci = bootstrapCI(values, rng.fork(key), samples, level);
    out[key] = ci.mean;
    out[`${key}/ci_low`] = ci.low;
    out[`${key}/ci_high`] = ci.high;
  }
  return out;
}
