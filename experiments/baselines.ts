/**
 * Experiment 1 — SAT against its baselines. From the same pretrained start (three copies of
 * add2-tiny), the same number of stages and the same rollout budget per stage (8 prompts × 8 team
 * episodes; independent-vote: each agent 8 × 8 solo answers, i.e. 64 voted team answers), train
 *   sat               relay team of 3, sequential updates, checked KL trust region, random order
 *   joint             relay team of 3, every agent from the same batch at once, clip only
 *   happo             relay team of 3, sequential, untruncated ratio products, clip only
 *   independent-vote  independent protocol, each agent trained alone (GRPO), majority vote
 *   single            one model, relay with 3 turns of its own (the team's turn budget), GRPO
 * then evaluate all on the same held-out prompts (avg@1, pass@k, maj@k, 95% bootstrap intervals;
 * single also at a matched sample budget) and reduce every stages.jsonl to per-stage trust-region
 * statistics and the rate of held-out monotonicity violations.
 *
 *   node dist/experiments/baselines.js [--seeds 1,2] [--stages 30] [--eval-prompts 400] [--eval-n 8] [--reuse] [--only sat,joint]
 */
import {
  appendEvals,
  baseSets,
  cell,
  evalSingle,
  evalStart,
  evalSummary,
  evalTeam,
  log,
  makeEvaluator,
  markdownTable,
  parseArgs,
  round,
  readStages,
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

const ALGOS: { name: string; sets: string[] }[] = [
  { name: "sat", sets: ["algo.name=sat", "algo.order=random"] },
  { name: "joint", sets: ["algo.name=joint"] },
  { name: "happo", sets: ["algo.name=happo", "algo.order=random"] },
  { name: "independent-vote", sets: ["algo.name=independent-vote", "team.protocol=independent"] },
  { name: "single", sets: ["algo.name=single"] },
];

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), { seeds: [1, 2], stages: 30, evalPrompts: 400, evalN: 8 });
  const algos = ALGOS.filter((a) => args.only === null || args.only.includes(a.name));
  const t0 = performance.now();
  const loadStart = uptimeLoad();
  log(
    `baselines: ${algos.map((a) => a.name).join(", ")}; seeds ${args.seeds.join(",")}; ${args.stages} stages`,
  );
  const ev = await makeEvaluator(args.evalPrompts, args.evalN);
  const stageRows: Record<string, unknown>[] = [];
  const runs: Record<string, unknown>[] = [];
  const evalsByAlgo = new Map<string, EvalResult[]>();
  try {
    log("evaluating the pretrained start");
    const start = [
      evalStart(ev, "relay", "start (relay team)"),
      evalStart(ev, "independent", "start (independent vote)"),
      ...evalSingle(ev, "test/fixtures/agents/add2-tiny", "start single"),
    ];
    for (const seed of args.seeds) {
      for (const algo of algos) {
        const name = `${algo.name}-s${seed}`;
        const run = trainRun("baselines", name, [...baseSets(args.stages, seed), ...algo.sets], args.reuse);
        log(`${name}: trained in ${run.trainSeconds.toFixed(0)} s${run.reused ? " (reused)" : ""}`);
        const evals =
          algo.name === "single"
            ? evalSingle(ev, `${run.checkpoint}/agent-0`, "single")
            : [
                evalTeam(
                  ev,
                  run.checkpoint,
                  N_AGENTS,
                  algo.name === "independent-vote" ? "independent" : "relay",
                  algo.name,
                ),
              ];
        if (!run.reused) appendEvals(run.dir, args.stages, evals);
        evalsByAlgo.set(algo.name, [...(evalsByAlgo.get(algo.name) ?? []), evals[0]]);
        const stages = readStages(run.dir);
        const rows = stageAgentRows(stages, { algo: algo.name, seed });
        stageRows.push(...rows);
        runs.push({
          algo: algo.name,
          seed,
          command: run.command,
          train_seconds: round(run.trainSeconds, 1),
          eval: evals.map(evalSummary),
          trust_region: trustStats(rows),
          trust_region_by_position: trustStatsBy(rows, "position"),
          team: teamStats(stages),
          stage_improvements: stageImprovements(stages),
        });
        log(
          `${name}: avg@1 ${cell(evals[0].metrics, "avg@1")}; ` +
            `${((performance.now() - t0) / 1000).toFixed(0)} s so far`,
        );
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    const settings = {
      start: "3 × test/fixtures/agents/add2-tiny",
      task: "add, difficulty 2",
      stages: args.stages,
      seeds: args.seeds,
      per_stage_rollouts: "8 prompts × 8 team episodes",
      kl_radius: 0.05,
      kl_coef: 0.1,
      lr: 1e-4,
      order: "random (sat, happo)",
      eval: { prompts: args.evalPrompts, samples_per_prompt: args.evalN, seed: EVAL_SEED, temperature: 1 },
    };
    writeResult("baselines.json", {
      experiment: "baselines",
      command: `node dist/experiments/baselines.js ${process.argv.slice(2).join(" ")}`.trim(),
      seconds: round(seconds, 0),
      load_average_at_start: loadStart,
      settings,
      start: start.map(evalSummary),
      runs,
    });
    writeJsonl("baselines-stages.jsonl", stageRows);
    writeText("baselines.md", tables(start, runs, evalsByAlgo, args.seeds, seconds));
    log(`done in ${seconds.toFixed(0)} s; results in experiments/results/baselines.{json,md}`);
  } finally {
    await ev.close();
  }
}

function tables(
  start: EvalResult[],
  runs: Record<string, unknown>[],
  evalsByAlgo: Map<string, EvalResult[]>,
  seeds: number[],
  seconds: number,
): string {
  const out: string[] = [];
  const ks = Object.keys(start[0].metrics).filter((k) => !k.includes("/"));
  const shown = [
    "avg@1",
    ...ks.filter((k) => k.startsWith("pass@") && k !== "pass@1"),
    ...ks.filter((k) => k.startsWith("maj@") && k !== "maj@1"),
  ];
  out.push(
    `Measured in ${(seconds / 60).toFixed(1)} min. Held-out accuracy (95% bootstrap intervals over prompts):\n`,
  );
  const evalRow = (label: string, r: EvalResult) => [label, ...shown.map((k) => cell(r.metrics, k))];
  const rows: (string | number)[][] = start.map((r) => evalRow(r.name, r));
  for (const run of runs) {
    const e = evalsByAlgo.get(run.algo as string)![seeds.indexOf(run.seed as number)];
    rows.push(evalRow(`${run.algo} seed ${run.seed}`, e));
  }
  out.push(markdownTable(["run", ...shown], rows));
  out.push(
    "\nFor `single (matched budget)` the pass@k and maj@k columns are pass@(3k) and maj@(3k) of one model: " +
      "the same number of model samples as k team answers.\n",
  );
  out.push("Mean over seeds (range):\n");
  const algos = [...evalsByAlgo.keys()];
  out.push(
    markdownTable(
      ["algo", ...shown],
      algos.map((a) => [a, ...shown.map((k) => seedSummary(evalsByAlgo.get(a)!.map((r) => r.metrics[k])))]),
    ),
  );
  out.push("\nTrust region and held-out monotonicity, pooled over seeds and agents:\n");
  const pooled = (a: string) => runs.filter((r) => r.algo === a);
  const avgOf = (rs: Record<string, unknown>[], f: (r: Record<string, unknown>) => number | null) => {
    const xs = rs.map(f).filter((x): x is number => x !== null && Number.isFinite(x));
    return xs.length > 0 ? round(xs.reduce((s, x) => s + x, 0) / xs.length, 4) : NaN;
  };
  out.push(
    markdownTable(
      [
        "algo",
        "mean KL q0.99",
        "max KL q0.99",
        "full step outside δ",
        "rejected/tried",
        "accepted",
        "accepted outside δ",
        "held-out Δ per stage [95% CI]",
        "Δ < 0",
        "monotonicity violations",
        "tokens/run",
        "train s/run",
      ],
      algos.map((a) => {
        const rs = pooled(a);
        const tr = (r: Record<string, unknown>) => r.trust_region as Record<string, number>;
        const tm = (r: Record<string, unknown>) => r.team as Record<string, number | null>;
        return [
          a,
          avgOf(rs, (r) => tr(r).kl_quantile_mean),
          Math.max(...rs.map((r) => tr(r).kl_quantile_max)),
          avgOf(rs, (r) => tr(r).first_step_violation_rate),
          avgOf(rs, (r) => tr(r).candidate_violation_rate),
          avgOf(rs, (r) => tr(r).accepted_rate),
          avgOf(rs, (r) => tr(r).accepted_outside_radius_rate),
          improvementCell(rs.flatMap((r) => r.stage_improvements as number[])),
          avgOf(rs, (r) => tm(r).improvement_negative_rate),
          avgOf(rs, (r) => tm(r).monotonicity_violation_rate),
          Math.round(avgOf(rs, (r) => tm(r).tokens)),
          Math.round(avgOf(rs, (r) => r.train_seconds as number)),
        ];
      }),
    ),
  );
  return out.join("\n") + "\n";
}

main().catch((err: Error) => {
  process.stderr.write(`baselines: ${err.message}\n`);
  process.exit(1);
});
