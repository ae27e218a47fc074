/**
 * Experiment 3 — the trust-region radius δ under SAT: δ ∈ {0.005, 0.01, 0.02, 0.05, 0.1}, same
 * start, stages and rollout budget as the baselines (random order). Measures the violation rate per
 * agent and per position in the update order against δ (the paper's Fig. 1c), the accepted
 * updates, and held-out accuracy after training.
 *
 * Writes sweep.jsonl ({kl_radius, agent, violation_rate, …}, pooled over seeds and stages) into the
 * run directory of the δ = 0.05 seed-1 run, renders that run's report with `sat report` and checks
 * it in headless Chromium with scripts/check-report.mjs.
 *
 *   node dist/experiments/delta-sweep.js [--seeds 1,2] [--stages 30] [--eval-prompts 400] [--eval-n 8] [--reuse]
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import {
  appendEvals,
  baseSets,
  cell,
  evalSummary,
  evalTeam,
  log,
  makeEvaluator,
  markdownTable,
  parseArgs,
  readStages,
  round,
  seedCell,
  shareCell,
  shownMetrics,
  readResult,
  stageAgentRows,
  stageImprovements,
  improvementCell,
  teamStats,
  trainRun,
  trustStats,
  trustStatsBy,
  uptimeLoad,
  writeJsonl,
  writeResult,
  writeText,
  EVAL_SEED,
  N_AGENTS,
  ROOT,
  satCli,
} from "./lib.js";

const RADII = [0.005, 0.01, 0.02, 0.05, 0.1];
/** The run whose directory gets sweep.jsonl and whose report is rendered. */
const REPORT_RADIUS = 0.05;

type Row = Record<string, unknown>;

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), { seeds: [1, 2], stages: 30, evalPrompts: 400, evalN: 8 });
  if (args.tablesOnly) {
    writeText("delta-sweep.md", tables(readResult("delta-sweep.json")));
    log("rewrote experiments/results/delta-sweep.md from delta-sweep.json");
    return;
  }
  const radii = RADII.filter((d) => args.only === null || args.only.includes(String(d)));
  const t0 = performance.now();
  const loadStart = uptimeLoad();
  log(`delta-sweep: δ ∈ {${radii.join(", ")}}; seeds ${args.seeds.join(",")}; ${args.stages} stages`);
  const ev = await makeEvaluator(args.evalPrompts, args.evalN);
  const runs: Row[] = [];
  const stageRows: Row[] = [];
  let reportDir: string | null = null;
  try {
    for (const seed of args.seeds) {
      for (const delta of radii) {
        const name = `delta-${delta}-s${seed}`;
        const sets = [
          ...baseSets(args.stages, seed),
          "algo.name=sat",
          "algo.order=random",
          `algo.kl_radius=${delta}`,
        ];
        const run = trainRun("delta-sweep", name, sets, args.reuse);
        if (delta === REPORT_RADIUS && reportDir === null) reportDir = run.dir;
        log(`${name}: trained in ${run.trainSeconds.toFixed(0)} s${run.reused ? " (reused)" : ""}`);
        const e = await evalTeam(ev, run.checkpoint, N_AGENTS, "relay", `sat δ=${delta}`);
        if (!run.reused) appendEvals(run.dir, args.stages, [e]);
        const stages = readStages(run.dir);
        const rows = stageAgentRows(stages, { kl_radius: delta, seed });
        stageRows.push(...rows);
        runs.push({
          kl_radius: delta,
          seed,
          command: run.command,
          train_seconds: round(run.trainSeconds, 1),
          eval: [evalSummary(e)],
          trust_region: trustStats(rows),
          trust_region_by_position: trustStatsBy(rows, "position"),
          trust_region_by_agent: trustStatsBy(rows, "agent"),
          team: teamStats(stages),
          stage_improvements: stageImprovements(stages),
        });
        log(`${name}: avg@1 ${cell(e.metrics, "avg@1")}`);
      }
    }
    // sweep.jsonl: one row per (δ, agent), pooled over seeds and stages (the report's format).
    const sweep: Row[] = [];
    const sweepByPosition: Row[] = [];
    for (const delta of radii) {
      const rs = stageRows.filter((r) => r.kl_radius === delta);
      for (const s of trustStatsBy(rs, "agent")) {
        sweep.push({
          kl_radius: delta,
          agent: s.agent,
          violation_rate: s.candidate_violation_rate,
          first_step_violation_rate: s.first_step_violation_rate,
          accepted_rate: s.accepted_rate,
          updates: s.updates,
          seeds: args.seeds,
        });
      }
      for (const s of trustStatsBy(rs, "position")) {
        sweepByPosition.push({
          kl_radius: delta,
          position: s.position,
          violation_rate: s.candidate_violation_rate,
          first_step_violation_rate: s.first_step_violation_rate,
          accepted_rate: s.accepted_rate,
          kl_quantile_mean: s.kl_quantile_mean,
          updates: s.updates,
        });
      }
    }
    const sweepText = sweep.map((r) => JSON.stringify(r)).join("\n") + "\n";
    let reportCheck: Row | null = null;
    if (reportDir !== null) {
      writeFileSync(join(reportDir, "sweep.jsonl"), sweepText);
      reportCheck = renderAndCheck(reportDir);
    }
    const seconds = (performance.now() - t0) / 1000;
    const result = {
      experiment: "delta-sweep",
      command: `node dist/experiments/delta-sweep.js ${process.argv.slice(2).join(" ")}`.trim(),
      seconds: round(seconds, 0),
      load_average_at_start: loadStart,
      settings: {
        start: "3 × test/fixtures/agents/add2-tiny",
        algo: "sat",
        order: "random",
        stages: args.stages,
        seeds: args.seeds,
        radii,
        eval: { prompts: args.evalPrompts, samples_per_prompt: args.evalN, seed: EVAL_SEED },
      },
      report: reportCheck,
      sweep_by_agent: sweep,
      sweep_by_position: sweepByPosition,
      runs,
    };
    writeResult("delta-sweep.json", result);
    writeText("sweep.jsonl", sweepText);
    writeJsonl("delta-sweep-stages.jsonl", stageRows);
    writeText("delta-sweep.md", tables(result));
    log(`done in ${seconds.toFixed(0)} s; results in experiments/results/delta-sweep.{json,md}`);
  } finally {
    await ev.close();
  }
}

/** `sat report <dir>` then scripts/check-report.mjs on the page; returns what both said. */
function renderAndCheck(dir: string): Row {
  const rel = relative(ROOT, dir);
  const report = spawnSync("node", [satCli(), "report", rel], { cwd: ROOT, encoding: "utf8" });
  const html = join(rel, "report.html");
  const check =
    report.status === 0
      ? spawnSync("node", ["scripts/check-report.mjs", html], { cwd: ROOT, encoding: "utf8" })
      : null;
  const result = {
    run_dir: rel,
    report_command: `node bin/sat.js report ${rel}`,
    report_exit: report.status,
    check_command: `node scripts/check-report.mjs ${html}`,
    check_exit: check?.status ?? null,
    check_output: (check ? check.stdout + check.stderr : report.stderr).trim(),
  };
  log(`report: exit ${result.report_exit}; check-report: exit ${result.check_exit}`);
  return result;
}

type Summary = { name: string; metrics: Record<string, number> };

function tables(result: Row): string {
  const radii = (result.settings as Row).radii as number[];
  const runs = result.runs as Row[];
  const sweep = result.sweep_by_agent as Row[];
  const byPosition = result.sweep_by_position as Row[];
  const reportCheck = result.report as Row | null;
  const out: string[] = [];
  const fmt = (x: unknown) => (typeof x === "number" ? x.toFixed(3) : "–");
  const triple = (r: Row | undefined) =>
    r
      ? `${fmt(r.violation_rate)} (${fmt(r.first_step_violation_rate)}, ${fmt(1 - (r.accepted_rate as number))})`
      : "–";
  out.push(`Measured in ${((result.seconds as number) / 60).toFixed(1)} min.\n`);
  out.push(
    "Violation rate = candidates outside δ ÷ candidates tried, by position in σ, pooled over seeds and stages; in brackets " +
      "the share of updates whose full step was outside δ, then the share of null updates (every candidate rejected):\n",
  );
  out.push(
    markdownTable(
      ["δ", ...[0, 1, 2].map((p) => `position ${p}`), "mean KL q0.99 of kept updates"],
      radii.map((d) => {
        const ps = byPosition.filter((r) => r.kl_radius === d);
        const rs = runs.filter((r) => r.kl_radius === d);
        const kl =
          rs.reduce((s, r) => s + (r.trust_region as Record<string, number>).kl_quantile_mean, 0) / rs.length;
        return [String(d), ...[0, 1, 2].map((p) => triple(ps.find((x) => x.position === p))), fmt(kl)];
      }),
    ),
  );
  out.push(
    "\nShare of updates whose full step was outside δ, by position in σ, with Wilson 95% intervals " +
      "(updates pooled over seeds and stages, treated as independent):\n",
  );
  out.push(
    markdownTable(
      ["δ", ...[0, 1, 2].map((p) => `position ${p}`)],
      radii.map((d) => [
        String(d),
        ...[0, 1, 2].map((p) => {
          const r = byPosition.find((x) => x.kl_radius === d && x.position === p);
          return r ? shareCell(r.first_step_violation_rate as number, r.updates as number) : "–";
        }),
      ]),
    ),
  );
  out.push("\nThe same by agent (speaking position in the relay; the rows of sweep.jsonl):\n");
  out.push(
    markdownTable(
      ["δ", ...[0, 1, 2].map((a) => `agent ${a}`)],
      radii.map((d) => [
        String(d),
        ...[0, 1, 2].map((a) => triple(sweep.find((x) => x.kl_radius === d && x.agent === a))),
      ]),
    ),
  );
  const evalOf = (r: Row) => (r.eval as Summary[])[0];
  const shown = shownMetrics(evalOf(runs[0]).metrics);
  const values = (d: number, key: string) =>
    runs.filter((r) => r.kl_radius === d).map((r) => evalOf(r).metrics[key]);
  out.push("\nHeld-out accuracy after training (95% bootstrap intervals over prompts):\n");
  out.push(
    markdownTable(
      ["δ", "seed", ...shown],
      runs.map((r) => [
        String(r.kl_radius),
        r.seed as number,
        ...shown.map((k) => cell(evalOf(r).metrics, k)),
      ]),
    ),
  );
  out.push(
    "\nMean over seeds [95% t-interval over seeds], with held-out monotonicity (pooled over seeds):\n",
  );
  const avg = (xs: number[]) => round(xs.reduce((s, x) => s + x, 0) / xs.length, 3);
  out.push(
    markdownTable(
      ["δ", ...shown, "held-out Δ per stage [95% CI]", "monotonicity violations"],
      radii.map((d) => {
        const rs = runs.filter((r) => r.kl_radius === d);
        const tm = (r: Row) => r.team as Record<string, number>;
        return [
          String(d),
          ...shown.map((k) => seedCell(values(d, k))),
          improvementCell(rs.flatMap((r) => r.stage_improvements as number[])),
          avg(rs.map((r) => tm(r).monotonicity_violation_rate)),
        ];
      }),
    ),
  );
  if (reportCheck) {
    out.push(
      `\nReport: \`${reportCheck.report_command}\` (exit ${reportCheck.report_exit}); ` +
        `\`${reportCheck.check_command}\` (exit ${reportCheck.check_exit}):\n\n\`\`\`\n${reportCheck.check_output}\n\`\`\``,
    );
  }
  return out.join("\n") + "\n";
}

main().catch((err: Error) => {
  process.stderr.write(`delta-sweep: ${err.message}\n`);
  process.exit(1);
});
