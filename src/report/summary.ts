/**
 * Facts about a run that both the charts and the tables use: which evaluation rows are the team
 * and which are baselines, where an eval row keeps its confidence interval, which metric is its
 * headline, which columns are metrics, and how many stages had a vacuous certificate.
 */
import { configValue, type RunData, type StageRecord } from "./read.js";

/** A finite number, or null. */
export function num(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** Names of evaluation rows that measure the trained team itself (the rest are baselines). */
export function teamEvalNames(run: RunData): Set<string> {
  const algo = configValue(run.config, "algo.name");
  return new Set(["sat", "start", "team", ...(typeof algo === "string" ? [algo] : [])]);
}

/** The confidence interval of `metric` in an eval row: `<m>_ci_low`, `<m>/ci_low`, or bare `ci_low` for avg@1. */
export function evalInterval(row: Record<string, unknown>, metric: string): [number, number] | null {
  for (const [lo, hi] of [
    [`${metric}_ci_low`, `${metric}_ci_high`],
    [`${metric}/ci_low`, `${metric}/ci_high`],
    [`ci_low/${metric}`, `ci_high/${metric}`],
  ]) {
    const a = num(row[lo]);
    const b = num(row[hi]);
    if (a !== null && b !== null) return [a, b];
  }
  const bare: [number | null, number | null] = [num(row.ci_low), num(row.ci_high)];
  if (metric === primaryMetric(row) && bare[0] !== null && bare[1] !== null) return [bare[0], bare[1]];
  return null;
}

/** The headline metric of an eval row: avg@1 if present, else the first avg@k, else the first metric. */
export function primaryMetric(row: Record<string, unknown>): string | null {
  const keys = Object.keys(row).filter((k) => /^(avg|pass|maj)@\d+$/.test(k) && num(row[k]) !== null);
  return keys.includes("avg@1") ? "avg@1" : (keys.find((k) => k.startsWith("avg@")) ?? keys[0] ?? null);
}

/** Stages whose lower bound was vacuous (the flag if logged, else bound ≤ 0), and stages with a bound. */
export function vacuousStages(stages: StageRecord[]): { vacuous: number; withBound: number } {
  let vacuous = 0;
  let withBound = 0;
  for (const s of stages) {
    const lb = num(s["cert/lower_bound"]);
    const flag = num(s["cert/vacuous"]);
    if (lb === null && flag === null) continue;
    withBound++;
    if (flag !== null ? flag !== 0 : (lb as number) <= 0) vacuous++;
  }
  return { vacuous, withBound };
}

const CI_KEY = /(^|[_/])ci_(low|high)($|[_/])/;
// Bookkeeping numbers of an eval row (src/eval/evaluate.ts evalRows), not scores.
const NOT_METRICS = new Set(["step", "n", "time", "epoch", "agent", "num_prompts", "budget_factor"]);

/** Metric columns of eval rows: numeric keys that are not bookkeeping or intervals; avg/pass/maj first by k. */
export function evalMetricKeys(rows: Record<string, unknown>[]): string[] {
  const keys = new Set<string>();
  for (const r of rows)
    for (const [k, v] of Object.entries(r))
      if (typeof v === "number" && !NOT_METRICS.has(k) && !CI_KEY.test(k)) keys.add(k);
  const rank = (k: string) => {
    const m = /^(avg|pass|maj)@(\d+)$/.exec(k);
    return m ? ["avg", "pass", "maj"].indexOf(m[1]) * 1e6 + Number(m[2]) : 1e9;
  };
  return [...keys].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}
