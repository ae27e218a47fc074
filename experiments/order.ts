/**
 * Experiment 2 — the update order σ under SAT: `static` (0, 1, 2 every stage), `random` (seeded
 * shuffle every stage) and `greedy` (descending predicted gain: each agent's surrogate gain after
 * one trial step, measured and undone). Same start, stages and rollout budget as the baselines;
 * reports held-out accuracy, the trust-region statistics per position in σ, the held-out
 * monotonicity violations, and for greedy which agent went first and how its predicted gain
 * relates to the gain of the update finally accepted.
 *
 *   node dist/experiments/order.js [--seeds 1,2] [--stages 30] [--eval-prompts 400] [--eval-n 8] [--reuse]
 */
import {
  appendEvals,
  baseSets,
  cell,
  diffCell,
  evalSummary,
  evalTeam,
  improvementCell,
  log,
  makeEvaluator,
  markdownTable,
  parseArgs,
  readJsonl,
  readResult,
  readStages,
  round,
  seedCell,
  shareCell,
  shownMetrics,
  stageAgentRows,
  stageImprovements,
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
} from "./lib.js";

const ORDERS = ["static", "random", "greedy"] as const;

type Row = Record<string, unknown>;

function pearson(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 3) return NaN;
  const mx = xs.reduce((s, x) => s + x, 0) / n;
  const my = ys.reduce((s, y) => s + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
    syy += (ys[i] - my) ** 2;
  }
  return sxy / Math.sqrt(sxx * syy);
}

/** Greedy diagnostics: which agent went first, and predicted vs accepted surrogate gain. */
function greedyStats(rows: Row[]): Row {
  const firsts = rows.filter((r) => r.position === 0).map((r) => r.agent as number);
  const firstCounts = Array.from({ length: N_AGENTS }, (_, a) => firsts.filter((x) => x === a).length);
  const steps = [...new Set(rows.map((r) => r.step as number))];
  const nonStatic = steps.filter((s) => rows.some((r) => r.step === s && r.position !== r.agent)).length;
  const withPred = rows.filter((r) => typeof r.gain_predicted === "number" && r.accepted === 1);
  return {
    first_agent_counts: firstCounts,
    stages_not_static: nonStatic,
    stages: steps.length,
    corr_predicted_vs_accepted_gain: round(
      pearson(
        withPred.map((r) => r.gain_predicted as number),
        withPred.map((r) => r.gain as number),
      ),
      3,
    ),
  };
}

type Summary = { name: string; metrics: Record<string, number> };

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), { seeds: [1, 2], stages: 30, evalPrompts: 400, evalN: 8 });
  if (args.tablesOnly) {
    writeText("order.md", tables(readResult("order.json"), readJsonl("order-stages.jsonl")));
    log("rewrote experiments/results/order.md from order.json");
    return;
  }
  const orders = ORDERS.filter((o) => args.only === null || args.only.includes(o));
  const t0 = performance.now();
  const loadStart = uptimeLoad();
  log(`order: ${orders.join(", ")}; seeds ${args.seeds.join(",")}; ${args.stages} stages`);
  const ev = await makeEvaluator(args.evalPrompts, args.evalN);
  const runs: Row[] = [];
  const stageRows: Row[] = [];
  try {
    for (const seed of args.seeds) {
      for (const order of orders) {
        const name = `${order}-s${seed}`;
        const sets = [...baseSets(args.stages, seed), "algo.name=sat", `algo.order=${order}`];
        const run = trainRun("order", name, sets, args.reuse);
        log(`${name}: trained in ${run.trainSeconds.toFixed(0)} s${run.reused ? " (reused)" : ""}`);
        const e = await evalTeam(ev, run.checkpoint, N_AGENTS, "relay", `sat ${order}`);
        if (!run.reused) appendEvals(run.dir, args.stages, [e]);
        const stages = readStages(run.dir);
        const rows = stageAgentRows(stages, { order, seed });
        stageRows.push(...rows);
        runs.push({
          order,
          seed,
          command: run.command,
          train_seconds: round(run.trainSeconds, 1),
          eval: [evalSummary(e)],
          trust_region: trustStats(rows),
          trust_region_by_position: trustStatsBy(rows, "position"),
          trust_region_by_agent: trustStatsBy(rows, "agent"),
          team: teamStats(stages),
          stage_improvements: stageImprovements(stages),
          order_stats: greedyStats(rows),
        });
        log(`${name}: avg@1 ${cell(e.metrics, "avg@1")}`);
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    const result = {
      experiment: "order",
      command: `node dist/experiments/order.js ${process.argv.slice(2).join(" ")}`.trim(),
      seconds: round(seconds, 0),
      load_average_at_start: loadStart,
      settings: {
        start: "3 × test/fixtures/agents/add2-tiny",
        algo: "sat",
        stages: args.stages,
        seeds: args.seeds,
        kl_radius: 0.05,
        eval: { prompts: args.evalPrompts, samples_per_prompt: args.evalN, seed: EVAL_SEED },
      },
      runs,
    };
    writeResult("order.json", result);
    writeJsonl("order-stages.jsonl", stageRows);
    writeText("order.md", tables(result, stageRows));
    log(`done in ${seconds.toFixed(0)} s; results in experiments/results/order.{json,md}`);
  } finally {
    await ev.close();
  }
}

function tables(result: Row, stageRows: Row[]): string {
  const runs = result.runs as Row[];
  const out: string[] = [];
  const evalOf = (r: Row) => (r.eval as Summary[])[0];
  const shown = shownMetrics(evalOf(runs[0]).metrics);
  const orders = [...new Set(runs.map((r) => r.order as string))];
  const values = (o: string, key: string) =>
    runs.filter((r) => r.order === o).map((r) => evalOf(r).metrics[key]);
  out.push(
    `Measured in ${((result.seconds as number) / 60).toFixed(1)} min. ` +
      "Held-out accuracy (95% bootstrap intervals over prompts):\n",
  );
  out.push(
    markdownTable(
      ["order", "seed", ...shown],
      runs.map((r) => [r.order as string, r.seed as number, ...shown.map((k) => cell(evalOf(r).metrics, k))]),
    ),
  );
  out.push("\nMean over seeds [95% t-interval over seeds]:\n");
  out.push(
    markdownTable(
      ["order", ...shown, "avg@1 − random (Welch 95%)"],
      orders.map((o) => [
        o,
        ...shown.map((k) => seedCell(values(o, k))),
        o === "random" ? "–" : diffCell(values(o, "avg@1"), values("random", "avg@1")),
      ]),
    ),
  );
  out.push("\nTrust region by position in σ, pooled over seeds and stages:\n");
  const rows: (string | number)[][] = [];
  for (const o of orders) {
    for (const p of trustStatsBy(
      stageRows.filter((r) => r.order === o),
      "position",
    )) {
      rows.push([
        o,
        p.position as number,
        p.updates,
        round(p.kl_quantile_mean, 4),
        shareCell(p.first_step_violation_rate, p.updates),
        round(p.candidate_violation_rate, 3),
        round(1 - p.accepted_rate, 3),
        p.backtracks_mean,
      ]);
    }
  }
  out.push(
    markdownTable(
      [
        "order",
        "position",
        "updates",
        "mean KL q0.99",
        "full step outside δ [Wilson 95%]",
        "outside δ/tried",
        "null updates",
        "mean backtracks",
      ],
      rows,
    ),
  );
  out.push("\nHeld-out monotonicity and cost per order (pooled over seeds):\n");
  const avg = (xs: number[]) => round(xs.reduce((s, x) => s + x, 0) / xs.length, 3);
  out.push(
    markdownTable(
      [
        "order",
        "held-out Δ per stage [95% CI]",
        "stages Δ < 0",
        "monotonicity violations",
        "train s/run",
        "first agent counts per seed (greedy)",
        "corr(predicted, accepted gain) per seed",
      ],
      orders.map((o) => {
        const rs = runs.filter((r) => r.order === o);
        const tm = (r: Row) => r.team as Record<string, number>;
        const os = (r: Row) => r.order_stats as Record<string, unknown>;
        return [
          o,
          improvementCell(rs.flatMap((r) => r.stage_improvements as number[])),
          avg(rs.map((r) => tm(r).improvement_negative_rate)),
          avg(rs.map((r) => tm(r).monotonicity_violation_rate)),
          Math.round(avg(rs.map((r) => r.train_seconds as number))),
          o === "greedy" ? rs.map((r) => JSON.stringify(os(r).first_agent_counts)).join(" ") : "–",
          o === "greedy" ? rs.map((r) => String(os(r).corr_predicted_vs_accepted_gain)).join(", ") : "–",
        ];
      }),
    ),
  );
  return out.join("\n") + "\n";
}

main().catch((err: Error) => {
  process.stderr.write(`order: ${err.message}\n`);
  process.exit(1);
});
