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
  diffCell,
  evalSingle,
  evalStart,
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

const ALGOS: { name: string; sets: string[] }[] = [
  { name: "sat", sets: ["algo.name=sat", "algo.order=random"] },
  { name: "joint", sets: ["algo.name=joint"] },
  { name: "happo", sets: ["algo.name=happo", "algo.order=random"] },
  { name: "independent-vote", sets: ["algo.name=independent-vote", "team.protocol=independent"] },
  { name: "single", sets: ["algo.name=single"] },
];

type Row = Record<string, unknown>;
type Summary = { name: string; metrics: Record<string, number>; per_agent: { solo_avg1: number }[] };

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), { seeds: [1, 2], stages: 30, evalPrompts: 400, evalN: 8 });
  if (args.tablesOnly) {
    const result = readResult("baselines.json");
    writeText("baselines.md", tables(result, readJsonl("baselines-stages.jsonl")));
    log("rewrote experiments/results/baselines.md from baselines.json");
    return;
  }
  const algos = ALGOS.filter((a) => args.only === null || args.only.includes(a.name));
  const t0 = performance.now();
  const loadStart = uptimeLoad();
  log(
    `baselines: ${algos.map((a) => a.name).join(", ")}; seeds ${args.seeds.join(",")}; ${args.stages} stages`,
  );
  const ev = await makeEvaluator(args.evalPrompts, args.evalN);
  const stageRows: Row[] = [];
  const runs: Row[] = [];
  try {
    log("evaluating the pretrained start");
    const start = [
      await evalStart(ev, "relay", "start (relay team)"),
      await evalStart(ev, "independent", "start (independent vote)"),
      ...(await evalSingle(ev, "test/fixtures/agents/add2-tiny", "start single")),
    ];
    for (const seed of args.seeds) {
      for (const algo of algos) {
        const name = `${algo.name}-s${seed}`;
        const run = trainRun("baselines", name, [...baseSets(args.stages, seed), ...algo.sets], args.reuse);
        log(`${name}: trained in ${run.trainSeconds.toFixed(0)} s${run.reused ? " (reused)" : ""}`);
        const evals =
          algo.name === "single"
            ? await evalSingle(ev, `${run.checkpoint}/agent-0`, "single")
            : [
                await evalTeam(
                  ev,
                  run.checkpoint,
                  N_AGENTS,
                  algo.name === "independent-vote" ? "independent" : "relay",
                  algo.name,
                ),
              ];
        if (!run.reused) appendEvals(run.dir, args.stages, evals);
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
    const result = {
      experiment: "baselines",
      command: `node dist/experiments/baselines.js ${process.argv.slice(2).join(" ")}`.trim(),
      seconds: round(seconds, 0),
      load_average_at_start: loadStart,
      settings: {
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
      },
      start: start.map(evalSummary),
      runs,
    };
    writeResult("baselines.json", result);
    writeJsonl("baselines-stages.jsonl", stageRows);
    writeText("baselines.md", tables(result, stageRows));
    log(`done in ${seconds.toFixed(0)} s; results in experiments/results/baselines.{json,md}`);
  } finally {
    await ev.close();
  }
}

function tables(result: Row, stageRows: Row[]): string {
  const start = result.start as Summary[];
  const runs = result.runs as Row[];
  const out: string[] = [];
  const shown = shownMetrics(start[0].metrics);
  const evalsOf = (r: Row) => r.eval as Summary[];
  out.push(
    `Measured in ${((result.seconds as number) / 60).toFixed(1)} min. ` +
      "Held-out accuracy (95% bootstrap intervals over prompts):\n",
  );
  const rows: (string | number)[][] = start.map((e) => [
    e.name,
    "–",
    ...shown.map((k) => cell(e.metrics, k)),
  ]);
  for (const run of runs)
    for (const e of evalsOf(run))
      rows.push([e.name, run.seed as number, ...shown.map((k) => cell(e.metrics, k))]);
  out.push(markdownTable(["run", "seed", ...shown], rows));
  out.push(
    "\n`single (matched budget)`: one model answering alone with 3× the samples; its pass@k and maj@k " +
      "columns are pass@(3k) and maj@(3k), the same number of model samples as k team answers. " +
      "`single (relay, 3 own turns)`: the same model under the protocol it was trained with.\n",
  );
  // One line per evaluation name (a single run has two), in order of first appearance.
  const names = [...new Set(runs.flatMap((r) => evalsOf(r).map((e) => e.name)))];
  const values = (name: string, key: string) =>
    runs.flatMap((r) => evalsOf(r).filter((e) => e.name === name)).map((e) => e.metrics[key]);
  const startOf = (name: string) =>
    start.find(
      (e) =>
        e.name ===
        (name.startsWith("single")
          ? `start ${name}`
          : name === "independent-vote"
            ? "start (independent vote)"
            : "start (relay team)"),
    )!;
  out.push(
    "Mean over seeds [95% t-interval over seeds], and change from the same start evaluated the same way:\n",
  );
  out.push(
    markdownTable(
      ["run", ...shown, "avg@1 start", "avg@1 − sat (Welch 95%)"],
      names.map((n) => [
        n,
        ...shown.map((k) => seedCell(values(n, k))),
        startOf(n).metrics["avg@1"].toFixed(3),
        n === "sat" ? "–" : diffCell(values(n, "avg@1"), values("sat", "avg@1")),
      ]),
    ),
  );
  out.push(
    "\nSolo accuracy (avg@1) of each agent answering alone, mean over seeds (start: 0.325 for the fixture):\n",
  );
  out.push(
    markdownTable(
      ["run", "agent 0", "agent 1", "agent 2"],
      names
        .filter((n) => !n.startsWith("single"))
        .map((n) => {
          const es = runs.flatMap((r) => evalsOf(r).filter((e) => e.name === n));
          return [n, ...[0, 1, 2].map((a) => seedCell(es.map((e) => e.per_agent[a]?.solo_avg1 ?? NaN)))];
        }),
    ),
  );
  out.push(
    "\nTrust region (δ = 0.05; measured for every algorithm, enforced by sat only) and held-out monotonicity, pooled over seeds, agents and stages:\n",
  );
  const algos = [...new Set(runs.map((r) => r.algo as string))];
  const avgOf = (rs: Row[], f: (r: Row) => number | null) => {
    const xs = rs.map(f).filter((x): x is number => x !== null && Number.isFinite(x));
    return xs.length > 0 ? round(xs.reduce((s, x) => s + x, 0) / xs.length, 3) : NaN;
  };
  out.push(
    markdownTable(
      [
        "algo",
        "mean KL q0.99",
        "max KL q0.99",
        "full step outside δ",
        "outside δ/tried",
        "kept update outside δ",
        "null updates",
        "held-out Δ per stage [95% CI]",
        "stages Δ < 0",
        "monotonicity violations",
        "tokens/run",
        "train s/run",
      ],
      algos.map((a) => {
        const rs = runs.filter((r) => r.algo === a);
        const tr = (r: Row) => r.trust_region as Record<string, number>;
        const tm = (r: Row) => r.team as Record<string, number | null>;
        return [
          a,
          avgOf(rs, (r) => tr(r).kl_quantile_mean),
          round(Math.max(...rs.map((r) => tr(r).kl_quantile_max)), 3),
          avgOf(rs, (r) => tr(r).first_step_violation_rate),
          avgOf(rs, (r) => tr(r).candidate_violation_rate),
          avgOf(rs, (r) => tr(r).accepted_outside_radius_rate),
          avgOf(rs, (r) => 1 - tr(r).accepted_rate),
          improvementCell(rs.flatMap((r) => r.stage_improvements as number[])),
          avgOf(rs, (r) => tm(r).improvement_negative_rate),
          avgOf(rs, (r) => tm(r).monotonicity_violation_rate),
          Math.round(avgOf(rs, (r) => tm(r).tokens)),
          Math.round(avgOf(rs, (r) => r.train_seconds as number)),
        ];
      }),
    ),
  );
  out.push(
    "\nsat over time (pooled over seeds and agents, per block of stages): β is multiplied by 1.5 after every " +
      "stage with a violating candidate and never lowered.\n",
  );
  const satRows = stageRows.filter((r) => r.algo === "sat");
  const last = Math.max(...satRows.map((r) => r.step as number));
  const blocks: [number, number][] = [];
  for (let a = 1; a <= last; a += 10) blocks.push([a, Math.min(a + 9, last)]);
  out.push(
    markdownTable(
      ["stages", "mean β", "full step outside δ", "outside δ/tried", "mean KL q0.99", "mean backtracks"],
      blocks.map(([a, b]) => {
        const rs = satRows.filter((r) => (r.step as number) >= a && (r.step as number) <= b);
        const t = trustStats(rs);
        const beta = rs.reduce((s, r) => s + (r.kl_coef as number), 0) / rs.length;
        return [
          `${a}–${b}`,
          round(beta, 2),
          round(t.first_step_violation_rate, 3),
          round(t.candidate_violation_rate, 3),
          round(t.kl_quantile_mean, 4),
          t.backtracks_mean,
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
