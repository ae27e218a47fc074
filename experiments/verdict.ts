/**
 * The verdict table of experiments/README.md: each claim of the paper, what the result experiments
 * measured (with 95% intervals) and the verdict, read from the experiments' results files
 * (results/verdict.{json,md}). A claim whose experiment has no results file is listed as not run.
 *
 *   node dist/experiments/verdict.js [--results-dir DIR]
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseArgs, paths, readResult, round } from "./lib.js";
import { writeOutputs } from "./mini.js";
import { estimateText, type Estimate } from "./stats.js";
import type { ExperimentTable } from "../src/report/experiment.js";

type Row = Record<string, unknown>;

export interface VerdictRow {
  claim: string;
  paper: string;
  measured: string;
  verdict: string;
  experiment: string;
  wall_minutes: number | null;
}

function load(name: string): Row | null {
  return existsSync(join(paths.results, `${name}.json`)) ? readResult(`${name}.json`) : null;
}

const minutes = (r: Row | null) => (r && typeof r.seconds === "number" ? round(r.seconds / 60, 1) : null);
const seedsOf = (e: Estimate) => `${e.n} seeds`;

export function verdictRows(): VerdictRow[] {
  const rows: VerdictRow[] = [];
  const notRun = (claim: string, paper: string, experiment: string): VerdictRow => ({
    claim,
    paper,
    measured: "not run",
    verdict: "–",
    experiment,
    wall_minutes: null,
  });

  const tvs = load("team-vs-single");
  const claim1 = "A team of 3 small models beats one model of ~2.7× their total size";
  const paper1 = "3×Qwen3-4B ahead of Qwen3-32B on AIME24/25";
  if (tvs) {
    const v = tvs.verdict as Row;
    const parts = v.parts as Row[];
    rows.push({
      claim: claim1,
      paper: paper1,
      measured: parts
        .map(
          (p) => `${p.metric} team − single ≈8×S ${estimateText(p.team_minus_single as Estimate, 3, true)}`,
        )
        .join("; ")
        .concat(` (${seedsOf(parts[0].team_minus_single as Estimate)})`),
      verdict: v.verdict as string,
      experiment: "team-vs-single",
      wall_minutes: minutes(tvs),
    });
  } else rows.push(notRun(claim1, paper1, "team-vs-single"));

  const swap = load("swap");
  const claim2 =
    "Swapping 2 of 3 agents for stronger ones, then training, gains about as much as retraining from scratch, at a fraction of the cost";
  const paper2 = "+10.4 points against +10.0 from scratch";
  if (swap) {
    const v = swap.verdict as Row;
    const f = v.fraction_recovered as Estimate;
    rows.push({
      claim: claim2,
      paper: paper2,
      measured:
        `swap + training gain ${estimateText(v.swap_gain as Estimate, 3, true)}; − from-scratch gain ` +
        `${estimateText(v.swap_minus_scratch_gain as Estimate, 3, true)}; fraction recovered ` +
        `${f.mean === null ? "undefined" : estimateText(f, 2)}; tokens ${estimateText(v.token_share as Estimate, 2)} of from scratch ` +
        `(${seedsOf(v.swap_gain as Estimate)}; Stage-0 distillation ${(swap.distillation as Row | null)?.accepted ? "accepted" : "rejected, continued from the raw swap"})`,
      verdict: v.verdict as string,
      experiment: "swap",
      wall_minutes: minutes(swap),
    });
  } else rows.push(notRun(claim2, paper2, "swap"));

  const abl = load("ablations");
  const claim3 = "Sequential updates with the trust region are monotone where joint updates are not";
  const paper3 = "monotonic improvement guarantee (Thm 4.4); joint updates can decrease J";
  const claim4 = "The trust-region violation rate rises with the position in the update order";
  const paper4 = "48 / 56 / 61% at δ = 0.01 (Fig. 1c)";
  if (abl) {
    const [mono, trend] = abl.verdict as Row[];
    const design = (abl.settings as Row).held_out_per_stage as Row;
    rows.push({
      claim: claim3,
      paper: paper3,
      measured:
        `share of stages with a significant held-out drop, joint − sat ${estimateText(mono.estimate as Estimate, 3, true)} ` +
        `(${seedsOf(mono.estimate as Estimate)}; ${design.cert_prompts} prompts × ${design.cert_samples} per stage, 80% power against −0.02)`,
      verdict: mono.verdict as string,
      experiment: "ablations",
      wall_minutes: minutes(abl),
    });
    rows.push({
      claim: claim4,
      paper: paper4,
      measured: `full step outside δ, last − first position ${estimateText(trend.estimate as Estimate, 3, true)} (${seedsOf(trend.estimate as Estimate)})`,
      verdict: trend.verdict as string,
      experiment: "ablations",
      wall_minutes: minutes(abl),
    });
  } else {
    rows.push(notRun(claim3, paper3, "ablations"));
    rows.push(notRun(claim4, paper4, "ablations"));
  }

  const cert = load("certificate");
  const claim5 = "The per-stage lower bound certifies improvement (is non-vacuous)";
  const paper5 = "per-stage lower bound on J(π̄) − J(π) (Thm 4.4, 4.9)";
  if (cert) {
    const v = cert.verdict as Row;
    const p = v.paper_non_vacuous as Row;
    const c = v.cpo_non_vacuous as Row;
    const ci = (x: Row) => (x.ci as number[]).map((y) => y.toFixed(2)).join(", ");
    rows.push({
      claim: claim5,
      paper: paper5,
      measured: `positive in ${p.k}/${p.n} stages [${ci(p)}] (paper), ${c.k}/${c.n} [${ci(c)}] (CPO-style), γ = 0.99`,
      verdict: v.verdict as string,
      experiment: "certificate",
      wall_minutes: minutes(cert),
    });
  } else rows.push(notRun(claim5, paper5, "certificate"));
  return rows;
}

function main(): void {
  parseArgs(process.argv.slice(2), { seeds: [1], stages: 1, evalPrompts: 1, evalN: 1 });
  const rows = verdictRows();
  const table: ExperimentTable = {
    id: "verdicts",
    title: "The paper's claims at CPU scale",
    columns: ["claim", "paper", "measured here (95% intervals)", "verdict", "experiment", "wall time (min)"],
    rows: rows.map((r) => [r.claim, r.paper, r.measured, r.verdict, r.experiment, r.wall_minutes]),
    chart: null,
  };
  writeOutputs("verdict", { experiment: "verdict", rows, tables: [table] } as never);
  process.stdout.write(`verdicts written to ${join(paths.results, "verdict.md")}\n`);
}

if (process.argv[1]?.endsWith("verdict.js")) main();
