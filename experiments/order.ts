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
  evalSummary,
  evalTeam,
  log,
  makeEvaluator,
  markdownTable,
  parseArgs,
  readStages,
  round,
  seedSummary,
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
} from "./lib.js";
import type { EvalResult } from "../src/eval/evaluate.js";

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

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), { seeds: [1, 2], stages: 30, evalPrompts: 400, evalN: 8 });
  const orders = ORDERS.filter((o) => args.only === null || args.only.includes(o));
  const t0 = performance.now();
  const loadStart = uptimeLoad();
  log(`order: ${orders.join(", ")}; seeds ${args.seeds.join(",")}; ${args.stages} stages`);
  const ev = await makeEvaluator(args.evalPrompts, args.evalN);
  const runs: Row[] = [];
  const stageRows: Row[] = [];
  const evals = new Map<string, EvalResult[]>();
  try {
    for (const seed of args.seeds) {
      for (const order of orders) {
        const name = `${order}-s${seed}`;
        const sets = [...baseSets(args.stages, seed), "algo.name=sat", `algo.order=${order}`];
        const run = trainRun("order", name, sets, args.reuse);
        log(`${name}: trained in ${run.trainSeconds.toFixed(0)} s${run.reused ? " (reused)" : ""}`);
        const e = evalTeam(ev, run.checkpoint, N_AGENTS, "relay", `sat ${order}`);
        if (!run.reused) appendEvals(run.dir, args.stages, [e]);
        evals.set(order, [...(evals.get(order) ?? []), e]);
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
    writeResult("order.json", {
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
    });
    writeJsonl("order-stages.jsonl", stageRows);
    writeText("order.md", tables(runs, evals, stageRows, seconds));
    log(`done in ${seconds.toFixed(0)} s; results in experiments/results/order.{json,md}`);
  } finally {
    await ev.close();
  }
}

function tables(runs: Row[], evals: Map<string, EvalResult[]>, stageRows: Row[], seconds: number): string {
  const out: string[] = [];
  const first = [...evals.values()][0][0];
  const keys = Object.keys(first.metrics).filter((k) => !k.includes("/"));
  const shown = [
    "avg@1",
    ...keys.filter((k) => k.startsWith("pass@") && k !== "pass@1"),
    ...keys.filter((k) => k.startsWith("maj@") && k !== "maj@1"),
  ];
  out.push(
    `Measured in ${(seconds / 60).toFixed(1)} min. Held-out accuracy (95% bootstrap intervals over prompts):\n`,
  );
  out.push(
    markdownTable(
      ["order", "seed", ...shown],
      runs.map((r) => {
        const e = evals.get(r.order as string)!;
        const i = runs.filter((x) => x.order === r.order).indexOf(r);
        return [r.order as string, r.seed as number, ...shown.map((k) => cell(e[i].metrics, k))];
      }),
    ),
  );
  out.push("\nMean over seeds (range):\n");
  out.push(
    markdownTable(
      ["order", ...shown],
      [...evals.keys()].map((o) => [
        o,
        ...shown.map((k) => seedSummary(evals.get(o)!.map((e) => e.metrics[k]))),
      ]),
    ),
  );
  out.push("\nTrust region by position in σ, pooled over seeds and stages:\n");
  const rows: (string | number)[][] = [];
  for (const o of evals.keys()) {
    for (const p of trustStatsBy(
      stageRows.filter((r) => r.order === o),
      "position",
    )) {
      rows.push([
        o,
        p.position as number,
        p.updates,
        p.kl_quantile_mean,
        p.first_step_violation_rate,
        p.candidate_violation_rate,
        p.accepted_rate,
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
        "full step outside δ",
        "rejected/tried",
        "accepted",
        "mean backtracks",
      ],
      rows,
    ),
  );
  out.push("\nHeld-out monotonicity and cost, per order (mean over seeds):\n");
  const avg = (xs: number[]) => round(xs.reduce((s, x) => s + x, 0) / xs.length, 4);
  out.push(
    markdownTable(
      [
        "order",
        "held-out Δ per stage [95% CI]",
        "Δ < 0",
        "monotonicity violations",
        "train s/run",
        "first agent counts (greedy)",
        "corr(predicted, accepted gain)",
      ],
      [...evals.keys()].map((o) => {
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
