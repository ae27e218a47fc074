/**
 * Experiment 3 — ablations with power, ≥ 5 seeds, from one pretrained nano start (three copies):
 *   algorithm × trust region   sequential (sat), joint, happo — each with the checked trust region
 *                              and without it (algo.trust_region = checked | none)
 *   update order               static, random (= sat), greedy
 *   intermediate policy        reweight (= sat) against resample at matched generated tokens
 *                              (run.max_tokens = the tokens of the same seed's sat run)
 *   radius δ                   0.01 (= sat), 0.02, 0.05, 0.1, with violation rates by position in σ
 * Every stage's held-out change is measured on the paired design of the power analysis
 * (results/power.json: prompts × samples that detect a drop of 0.02 with 80% power), so the
 * per-stage monotonicity test has the power it claims; its achieved power is reported per arm.
 *
 *   node dist/experiments/power.js && node dist/experiments/ablations.js [--quick] [--seeds 1,2,3,4,5] [--reuse] [--only a,b]
 */
import {
  log,
  parseArgs,
  readResult,
  round,
  trainRun,
  experimentClock,
  writeJsonl,
  readJsonl,
} from "./lib.js";
import {
  DELTA,
  N_AGENTS,
  agentSummaries,
  evalDirs,
  evalNumbers,
  makeMiniEvaluator,
  pretrainBase,
  runCost,
  scaleOf,
  stageSummaries,
  stagesOf,
  teamDirs,
  trainSets,
  writeOutputs,
} from "./mini.js";
import { readPowerChoice, DROP } from "./power.js";
import {
  directional,
  mean,
  pairedEstimate,
  powerAgainstDrop,
  quantile,
  tEstimate,
  type Estimate,
  type Verdict,
} from "./stats.js";
import type { Cell, ExperimentTable } from "../src/report/experiment.js";

export const EXPERIMENT = "ablations";

interface Arm {
  name: string;
  sets: string[];
  group: "trust region" | "order" | "intermediate" | "radius";
  /** Resample: budget = the same seed's sat run's tokens. */
  matchTokens?: boolean;
  /**
   * The per-stage held-out test runs on the 2×2 of sequential/joint × trust region only: at the
   * powered design it costs ~3× a stage's training, too much for every arm on one machine.
   */
  perStageTest?: boolean;
}

export const ARMS: Arm[] = [
  { name: "sat", sets: [], group: "trust region", perStageTest: true },
  {
    name: "sat, no trust region",
    sets: ["algo.trust_region=none"],
    group: "trust region",
    perStageTest: true,
  },
  { name: "joint", sets: ["algo.name=joint"], group: "trust region", perStageTest: true },
  {
    name: "joint + trust region",
    sets: ["algo.name=joint", "algo.trust_region=checked"],
    group: "trust region",
    perStageTest: true,
  },
  { name: "happo", sets: ["algo.name=happo"], group: "trust region" },
  {
    name: "happo + trust region",
    sets: ["algo.name=happo", "algo.trust_region=checked"],
    group: "trust region",
  },
  { name: "order static", sets: ["algo.order=static"], group: "order" },
  { name: "order greedy", sets: ["algo.order=greedy"], group: "order" },
  { name: "resample", sets: ["algo.intermediate=resample"], group: "intermediate", matchTokens: true },
  { name: "δ 0.02", sets: ["algo.kl_radius=0.02"], group: "radius" },
  { name: "δ 0.05", sets: ["algo.kl_radius=0.05"], group: "radius" },
  { name: "δ 0.1", sets: ["algo.kl_radius=0.1"], group: "radius" },
];

/** The trust-region pairs: algorithm family → [with, without]. */
export const TR_PAIRS: [string, string, string][] = [
  ["sequential (sat)", "sat", "sat, no trust region"],
  ["joint", "joint + trust region", "joint"],
  ["happo", "happo + trust region", "happo"],
];

const RADIUS_ARMS: [number, string][] = [
  [DELTA, "sat"],
  [0.02, "δ 0.02"],
  [0.05, "δ 0.05"],
  [0.1, "δ 0.1"],
];

type Row = Record<string, unknown>;

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), { seeds: [1], stages: 30, evalPrompts: 400, evalN: 8 });
  if (args.tablesOnly) {
    const r = readResult(`${EXPERIMENT}.json`);
    const st = readJsonl(`${EXPERIMENT}-stages.jsonl`);
    const ag = readJsonl(`${EXPERIMENT}-agents.jsonl`);
    writeOutputs(EXPERIMENT, {
      ...r,
      verdict: verdictOf(r.runs as Row[], ag),
      tables: tables(r, st, ag),
    } as never);
    return;
  }
  const scale = scaleOf(args);
  const design = readPowerChoice();
  const clock = experimentClock(EXPERIMENT);
  const arms = ARMS.filter((a) => args.only === null || args.only.includes(a.name) || a.name === "sat");
  log(
    `${EXPERIMENT} (${scale.name}): ${arms.length} arms × seeds ${scale.seeds.join(",")}; held-out ` +
      `${design.cert_prompts} prompts × ${design.cert_samples} samples per stage (${ARMS.filter(
        (a) => a.perStageTest,
      )
        .map((a) => a.name)
        .join(", ")})`,
  );
  const base = pretrainBase("nano", 1, scale, args.reuse);
  const agents = Array(N_AGENTS).fill(base.dirs[0]) as string[];
  const ev = await makeMiniEvaluator(scale);
  const runs: Row[] = [];
  const stageRows: Row[] = [];
  const agentRows: Row[] = [];
  let start: Row;
  try {
    start = evalNumbers(await evalDirs(ev, agents, "start"));
    for (const seed of scale.seeds) {
      let satTokens = 0;
      for (const arm of arms) {
        const sets = [
          ...trainSets(scale, seed, agents, arm.matchTokens ? 10 * scale.stages : scale.stages),
          `algo.cert_prompts=${arm.perStageTest ? design.cert_prompts : 0}`,
          `algo.cert_samples=${design.cert_samples}`,
          ...arm.sets,
          ...(arm.matchTokens ? [`run.max_tokens=${satTokens}`] : []),
        ];
        const slug = arm.name.replace(/[^a-z0-9.]+/gi, "-").replace(/-+$/, "");
        const run = trainRun(EXPERIMENT, `${slug}-s${seed}`, sets, args.reuse);
        const cost = runCost(run.dir);
        if (arm.name === "sat") satTokens = cost.tokens;
        const stages = stagesOf(run.dir);
        const st = stageSummaries(stages, { arm: arm.name, seed });
        const ag = agentSummaries(stages, { arm: arm.name, seed });
        stageRows.push(...st);
        agentRows.push(...ag);
        const evalResult = evalNumbers(await evalDirs(ev, teamDirs(run.checkpoint), arm.name));
        runs.push({
          arm: arm.name,
          group: arm.group,
          seed,
          command: run.command,
          train_seconds: round(run.trainSeconds, 1),
          ...cost,
          eval: evalResult,
          monotonicity: monotonicity(st),
        });
        log(
          `${arm.name} seed ${seed}: avg@1 ${((evalResult.metrics as Row)["avg@1"] as number).toFixed(3)}, ` +
            `${cost.stages} stages, ${run.trainSeconds.toFixed(0)} s; ${clock.seconds().toFixed(0)} s so far`,
        );
      }
    }
  } finally {
    await ev.close();
  }
  const result: Row = {
    ...clock.header(scale.name),
    settings: {
      start: `3 × ${base.dirs[0]} (nano, ${base.params} parameters, ${scale.pretrainSteps} pretraining steps)`,
      rl: `${scale.stages} stages of ${scale.promptsPerStep} prompts × ${scale.n}; δ ${DELTA} unless varied`,
      held_out_per_stage: { ...design, arms: ARMS.filter((a) => a.perStageTest).map((a) => a.name) },
      eval: `${scale.evalPrompts} held-out prompts × ${scale.evalN}`,
    },
    start,
    runs,
  };
  writeJsonl(`${EXPERIMENT}-stages.jsonl`, stageRows);
  writeJsonl(`${EXPERIMENT}-agents.jsonl`, agentRows);
  writeOutputs(EXPERIMENT, {
    ...result,
    verdict: verdictOf(runs, agentRows),
    tables: tables(result, stageRows, agentRows),
  } as never);
  log(`done in ${clock.seconds().toFixed(0)} s`);
}

/** Per run: the held-out monotonicity test over its stages. */
export function monotonicity(st: Row[]): Row {
  const m = st.filter((s) => s.improvement !== null);
  const se = m.map((s) => s.se as number).filter((x) => x > 0);
  return {
    stages: m.length,
    violations: m.filter((s) => s.violation === 1).length,
    violation_rate: m.length > 0 ? round(mean(m.map((s) => s.violation as number))) : null,
    negative_rate:
      m.length > 0 ? round(m.filter((s) => (s.improvement as number) < 0).length / m.length) : null,
    mean_change: m.length > 0 ? round(mean(m.map((s) => s.improvement as number)), 5) : null,
    worst_change: m.length > 0 ? round(Math.min(...m.map((s) => s.improvement as number)), 4) : null,
    median_se: se.length > 0 ? round(quantile(se, 0.5), 5) : null,
    // Stages where the test had ≥ 80% power against a drop of 0.02 (a stage that changed nothing has se 0).
    powered_rate:
      m.length > 0
        ? round(m.filter((s) => powerAgainstDrop(s.se as number, DROP) >= 0.8).length / m.length)
        : null,
  };
}

const metric = (r: Row, key: string) => ((r.eval as Row).metrics as Record<string, number>)[key];
const seedsOf = (runs: Row[]) => [...new Set(runs.map((r) => r.seed as number))].sort((a, b) => a - b);
const pick = (runs: Row[], arm: string, f: (r: Row) => number) =>
  seedsOf(runs).map((s) => {
    const r = runs.find((x) => x.arm === arm && x.seed === s);
    return r ? f(r) : NaN;
  });
const mono = (r: Row, key: string) => (r.monotonicity as Record<string, number>)[key];

/** Per (arm, seed, position): share of updates whose full step left δ, candidates outside ÷ tried, null updates. */
export function positionRates(ag: Row[], arm: string, seed: number, position: number): Row {
  const rs = ag.filter((a) => a.arm === arm && a.seed === seed && a.position === position);
  const tried = rs.reduce((s, r) => s + (r.candidates as number), 0);
  const outside = rs.reduce((s, r) => s + ((r.violation_rate as number) ?? 0) * (r.candidates as number), 0);
  return {
    updates: rs.length,
    first_step: rs.length > 0 ? mean(rs.map((r) => r.first_step_violation as number)) : NaN,
    candidates: tried > 0 ? outside / tried : NaN,
    null_updates: rs.length > 0 ? 1 - mean(rs.map((r) => r.accepted as number)) : NaN,
  };
}

/** Rate at the last position minus the first, paired by seed (the paper: rates rise with position). */
export function positionTrend(ag: Row[], arm: string): Estimate {
  const seeds = [...new Set(ag.filter((a) => a.arm === arm).map((a) => a.seed as number))];
  return pairedEstimate(
    seeds.map((s) => positionRates(ag, arm, s, N_AGENTS - 1).first_step as number),
    seeds.map((s) => positionRates(ag, arm, s, 0).first_step as number),
  );
}

export function verdictOf(runs: Row[], ag: Row[]): Row[] {
  const monoDiff = pairedEstimate(
    pick(runs, "joint", (r) => mono(r, "violation_rate")),
    pick(runs, "sat", (r) => mono(r, "violation_rate")),
  );
  const trend = positionTrend(ag, "sat");
  const verdict = (claim: string, e: Estimate, v: Verdict, measured: string) => ({
    claim,
    estimate: e,
    verdict: v,
    measured,
  });
  return [
    verdict(
      "sequential updates with the trust region are monotone where joint updates are not",
      monoDiff,
      directional(monoDiff.ci, 1),
      "joint (no trust region) − sat: share of stages with a significant held-out drop, paired by seed",
    ),
    verdict(
      "the trust-region violation rate rises with the position in the update order (48/56/61% at δ = 0.01)",
      trend,
      directional(trend.ci, 1),
      `sat at δ = ${DELTA}: share of full steps outside δ at the last position − the first, paired by seed`,
    ),
  ];
}

function est(xs: number[], digits = 4): Cell[] {
  const e = tEstimate(xs);
  return [round(e.mean, digits), e.ci ? round(e.ci[0], digits) : null, e.ci ? round(e.ci[1], digits) : null];
}
function paired(a: number[], b: number[], digits = 4): Cell[] {
  const ok = a.map((x, i) => Number.isFinite(x) && Number.isFinite(b[i]));
  const e = pairedEstimate(
    a.filter((_, i) => ok[i]),
    b.filter((_, i) => ok[i]),
  );
  return [round(e.mean, digits), e.ci ? round(e.ci[0], digits) : null, e.ci ? round(e.ci[1], digits) : null];
}
const ci = (name: string) => [name, `${name} lo`, `${name} hi`];

function tables(result: Row, st: Row[], ag: Row[]): ExperimentTable[] {
  const runs = result.runs as Row[];
  const startAcc = ((result.start as Row).metrics as Record<string, number>)["avg@1"];
  const arms = [...new Set(runs.map((r) => r.arm as string))];
  const ks = Object.keys((runs[0].eval as Row).metrics as Row).filter(
    (k) => !k.includes("/") && (k.startsWith("pass@") || k.startsWith("maj@")) && !k.endsWith("@1"),
  );
  const accuracy: ExperimentTable = {
    id: "accuracy",
    title: "Held-out accuracy after training (mean over seeds, 95% t-interval)",
    caption: `The start (3 copies of the pretrained nano agent) scores ${startAcc.toFixed(3)} avg@1 on the same prompts.`,
    columns: [
      "arm",
      ...ci("avg@1"),
      ...ci("avg@1 − start"),
      ...ks.flatMap(ci),
      "stages",
      "RL tokens",
      "train s",
    ],
    rows: arms.map((a) => {
      const rs = runs.filter((r) => r.arm === a);
      return [
        a,
        ...est(rs.map((r) => metric(r, "avg@1"))),
        ...est(rs.map((r) => metric(r, "avg@1") - startAcc)),
        ...ks.flatMap((k) => est(rs.map((r) => metric(r, k)))),
        round(mean(rs.map((r) => r.stages as number)), 1),
        Math.round(mean(rs.map((r) => r.tokens as number))),
        Math.round(mean(rs.map((r) => r.train_seconds as number))),
      ];
    }),
    chart: { mark: "point", x: "arm", y: "avg@1", rule: startAcc },
  };
  const monoTable: ExperimentTable = {
    id: "monotonicity",
    title: "Per-stage held-out change and the monotonicity test (per run, then mean over seeds)",
    caption:
      "Violation: a stage whose paired 95% interval lies below 0 (a significant drop). Powered: stages where the " +
      `test had ≥ 80% power against a drop of ${DROP} (Φ(${DROP}/se − 1.96) ≥ 0.8). Measured on the arms ` +
      "sequential/joint × with/without the trust region only (the test costs ~3× a stage's training).",
    columns: [
      "arm",
      ...ci("violation rate"),
      "stages with a drop",
      ...ci("mean change"),
      "worst change",
      "median se",
      "powered stages",
    ],
    rows: arms
      .filter((a) => runs.some((r) => r.arm === a && mono(r, "stages") > 0))
      .map((a) => {
        const rs = runs.filter((r) => r.arm === a);
        return [
          a,
          ...est(rs.map((r) => mono(r, "violation_rate"))),
          round(mean(rs.map((r) => mono(r, "negative_rate"))), 3),
          ...est(
            rs.map((r) => mono(r, "mean_change")),
            5,
          ),
          round(Math.min(...rs.map((r) => mono(r, "worst_change"))), 4),
          round(mean(rs.map((r) => mono(r, "median_se"))), 5),
          round(mean(rs.map((r) => mono(r, "powered_rate"))), 3),
        ];
      }),
    chart: { mark: "point", x: "arm", y: "violation rate", rule: 0 },
  };
  const tr: ExperimentTable = {
    id: "trust-region",
    title: "The trust-region switch: with − without, paired by seed (95% t-interval)",
    columns: [
      "algorithm",
      "avg@1 with",
      "avg@1 without",
      ...ci("avg@1 difference"),
      ...ci("violation-rate difference"),
    ],
    rows: TR_PAIRS.filter(([, w, wo]) => arms.includes(w) && arms.includes(wo)).map(([fam, w, wo]) => [
      fam,
      round(mean(pick(runs, w, (r) => metric(r, "avg@1"))), 4),
      round(mean(pick(runs, wo, (r) => metric(r, "avg@1"))), 4),
      ...paired(
        pick(runs, w, (r) => metric(r, "avg@1")),
        pick(runs, wo, (r) => metric(r, "avg@1")),
      ),
      ...paired(
        pick(runs, w, (r) => mono(r, "violation_rate")),
        pick(runs, wo, (r) => mono(r, "violation_rate")),
      ),
    ]),
    chart: { mark: "point", x: "algorithm", y: "avg@1 difference", rule: 0 },
  };
  const versus = (
    title: string,
    id: string,
    names: string[],
    ref: string,
    caption?: string,
  ): ExperimentTable => ({
    id,
    title,
    caption,
    columns: ["arm", ...ci("avg@1"), ...ci(`avg@1 − ${ref}`), "stages", "RL tokens", "train s"],
    rows: names
      .filter((n) => arms.includes(n))
      .map((n) => [
        n,
        ...est(pick(runs, n, (r) => metric(r, "avg@1"))),
        ...(n === ref
          ? [null, null, null]
          : paired(
              pick(runs, n, (r) => metric(r, "avg@1")),
              pick(runs, ref, (r) => metric(r, "avg@1")),
            )),
        round(mean(pick(runs, n, (r) => r.stages as number)), 1),
        Math.round(mean(pick(runs, n, (r) => r.tokens as number))),
        Math.round(mean(pick(runs, n, (r) => r.train_seconds as number))),
      ]),
    chart: { mark: "point", x: "arm", y: "avg@1" },
  });
  const order = versus(
    "Update order (avg@1; difference paired by seed)",
    "order",
    ["order static", "sat", "order greedy"],
    "sat",
    "sat = random order.",
  );
  const inter = versus(
    "Intermediate policy at matched generated tokens (resample stops at the sat run's tokens)",
    "intermediate",
    ["sat", "resample"],
    "sat",
    "sat reweights the stage's rollouts by truncated ratios; resample collects fresh rollouts after each agent (n× the tokens per stage), so it runs fewer stages for the same tokens.",
  );
  const radii = RADIUS_ARMS.filter(([, a]) => arms.includes(a));
  const byPos: ExperimentTable = {
    id: "violation-by-position",
    title: "Trust-region violations by position in the update order σ (mean over seeds, 95% t-interval)",
    caption:
      "Full step outside δ: the share of updates whose first candidate had KL quantile > δ (the paper's violation " +
      "rate). Candidates outside δ ÷ tried and null updates (every candidate rejected) pooled per seed.",
    columns: ["δ", "position", ...ci("full step outside δ"), "candidates outside ÷ tried", "null updates"],
    rows: radii.flatMap(([d, a]) =>
      Array.from({ length: N_AGENTS }, (_, p) => {
        const seeds = seedsOf(runs.filter((r) => r.arm === a));
        const pr = seeds.map((s) => positionRates(ag, a, s, p));
        return [
          d,
          p,
          ...est(
            pr.map((x) => x.first_step as number),
            3,
          ),
          round(mean(pr.map((x) => x.candidates as number)), 3),
          round(mean(pr.map((x) => x.null_updates as number)), 3),
        ];
      }),
    ),
    chart: { mark: "line", x: "position", y: "full step outside δ", color: "δ" },
  };
  const trend: ExperimentTable = {
    id: "position-trend",
    title: "Does the violation rate rise with position? Last − first position, paired by seed",
    columns: ["δ", ...ci("last − first"), "verdict"],
    rows: radii.map(([d, a]) => {
      const e = positionTrend(ag, a);
      return [
        d,
        round(e.mean, 3),
        e.ci ? round(e.ci[0], 3) : null,
        e.ci ? round(e.ci[1], 3) : null,
        directional(e.ci, 1),
      ];
    }),
    chart: { mark: "point", x: "δ", y: "last − first", rule: 0 },
  };
  const radius: ExperimentTable = {
    id: "radius",
    title: "Radius δ: accuracy and the size of kept updates",
    columns: ["δ", ...ci("avg@1"), "mean KL quantile kept", "null updates", "violation rate (held-out)"],
    rows: radii.map(([d, a]) => {
      const rows = ag.filter((x) => x.arm === a);
      return [
        d,
        ...est(pick(runs, a, (r) => metric(r, "avg@1"))),
        round(mean(rows.filter((x) => x.accepted === 1).map((x) => x.kl_quantile as number)), 5),
        round(1 - mean(rows.map((x) => x.accepted as number)), 3),
        round(mean(pick(runs, a, (r) => mono(r, "violation_rate"))), 3),
      ];
    }),
    chart: { mark: "line", x: "δ", y: "avg@1", xLog: true },
  };
  void st;
  return [accuracy, monoTable, tr, order, inter, byPos, trend, radius];
}

if (process.argv[1]?.endsWith(`${EXPERIMENT}.js`))
  main().catch((err: Error) => {
    process.stderr.write(`${EXPERIMENT}: ${err.message}\n`);
    process.exit(1);
  });
