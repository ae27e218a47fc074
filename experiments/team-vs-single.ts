/**
 * Experiment 2 — a team of 3 agents of size S against one larger model at equal compute (the
 * paper's headline: 3 × Qwen3-4B against one Qwen3-32B, a model ~2.7× the team's total size).
 *
 * Per seed: base models of three sizes are pretrained with `sat pretrain` on the same data stream
 * for the same steps (so the same tokens): S (nano, d 64, 2 layers), a model of ≈3×S (d 96,
 * 3 layers; the "≥ 2.7·S") and one of ≈8×S (d 136, 4 layers; ≈2.7× the team's total, the
 * paper's ratio). Then RL with the same generated-token budget (run.max_tokens = the tokens of the
 * team's run):
 *   team        3 copies of S, SAT (sequential, checked trust region), relay of 3 turns
 *   single-*    one model answering in the same relay with 3 turns of its own, GRPO with the same
 *               checked trust region (algo.name=single, algo.trust_region=checked)
 * and all are evaluated on the same held-out prompts with the same number of answers per prompt
 * (a matched sample budget: one team answer and one single-model answer are both 3 turns of at most
 * 12 tokens; the larger model spends ≥ 1× the team's compute per answer). Task: multistep (see
 * mini.ts) — one step per turn, so the relay lets each agent specialise on its step.
 *
 *   node dist/experiments/team-vs-single.js [--quick] [--seeds 1,2,3,4,5] [--stages 30] [--reuse]
 */
import { log, parseArgs, round, trainRun, experimentClock, readResult, type TrainedRun } from "./lib.js";
import {
  DELTA,
  LR,
  N_AGENTS,
  evalDirs,
  evalNumbers,
  makeMiniEvaluator,
  pretrainBase,
  runCost,
  scaleOf,
  teamDirs,
  trainSets,
  writeOutputs,
  type BaseAgents,
  type Scale,
} from "./mini.js";
import { allOf, directional, pairedEstimate, tEstimate, type Estimate, type Verdict } from "./stats.js";
import type { Cell, ExperimentTable } from "../src/report/experiment.js";

export const EXPERIMENT = "team-vs-single";

interface Arm {
  name: string;
  size: string;
  single: boolean;
}

const ARMS: Arm[] = [
  { name: "team 3×S", size: "nano", single: false },
  { name: "single S", size: "nano", single: true },
  { name: "single ≈3×S", size: "d96-l3", single: true },
  { name: "single ≈8×S", size: "d136-l4", single: true },
];

/** The arm against which the paper's claim is judged: a model ≈2.7× the team's total size. */
export const CLAIM_ARM = "single ≈8×S";

type Row = Record<string, unknown>;

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), { seeds: [1], stages: 30, evalPrompts: 400, evalN: 8 });
  if (args.tablesOnly) {
    const r = readResult(`${EXPERIMENT}.json`);
    writeOutputs(EXPERIMENT, { ...r, tables: tables(r.runs as Row[], r.bases as Row[]) } as never);
    return;
  }
  const scale = scaleOf(args);
  const clock = experimentClock(EXPERIMENT);
  log(`${EXPERIMENT} (${scale.name}): seeds ${scale.seeds.join(",")}, ${scale.stages} team stages`);
  const ev = await makeMiniEvaluator(scale);
  const runs: Row[] = [];
  const bases: Row[] = [];
  try {
    for (const seed of scale.seeds) {
      const base: Record<string, BaseAgents> = {};
      for (const size of [...new Set(ARMS.map((a) => a.size))]) {
        base[size] = pretrainBase(size, seed, scale, args.reuse);
        bases.push({ seed, ...base[size] });
        log(`seed ${seed}: pretrained ${size} (${base[size].params} parameters) in ${base[size].seconds} s`);
      }
      let budget = 0;
      for (const arm of ARMS) {
        const b = base[arm.size];
        const start = await evalDirs(
          ev,
          arm.single ? [b.dirs[0]] : Array(N_AGENTS).fill(b.dirs[0]),
          `${arm.name} start`,
        );
        const run = trainArm(arm, b, seed, scale, budget, args.reuse);
        const cost = runCost(run.dir);
        if (!arm.single) budget = cost.tokens;
        const dirs = arm.single ? [teamDirs(run.checkpoint, 1)[0]] : teamDirs(run.checkpoint);
        const after = await evalDirs(ev, dirs, arm.name);
        runs.push({
          arm: arm.name,
          seed,
          size: arm.size,
          params: b.params,
          params_total: arm.single ? b.params : N_AGENTS * b.params,
          pretrain_tokens: b.tokens,
          rl_tokens: cost.tokens,
          rl_stages: cost.stages,
          rl_seconds: round(run.trainSeconds, 1),
          command: run.command,
          start: evalNumbers(start),
          eval: evalNumbers(after),
        });
        log(
          `seed ${seed} ${arm.name}: avg@1 ${start.metrics["avg@1"].toFixed(3)} → ${after.metrics["avg@1"].toFixed(3)} ` +
            `(${cost.stages} stages, ${cost.tokens} tokens)`,
        );
      }
    }
  } finally {
    await ev.close();
  }
  writeOutputs(EXPERIMENT, {
    ...clock.header(scale.name),
    settings: {
      task: "multistep, difficulty 3; relay of 3 turns × ≤ 12 tokens",
      pretraining: `${scale.pretrainSteps} steps × 32 sequences, same data stream for every size (seed = run seed)`,
      rl: `team: SAT ${scale.stages} stages of ${scale.promptsPerStep} prompts × ${scale.n}; singles: GRPO with the checked trust region until the team's generated tokens; δ ${DELTA}, lr ${LR}`,
      eval: `${scale.evalPrompts} held-out prompts × ${scale.evalN} answers each, temperature 1`,
    },
    bases,
    runs,
    verdict: verdictOf(runs),
    tables: tables(runs, bases),
  });
  log(`done in ${clock.seconds().toFixed(0)} s`);
}

function trainArm(
  arm: Arm,
  b: BaseAgents,
  seed: number,
  scale: Scale,
  budget: number,
  reuse: boolean,
): TrainedRun {
  const agents = Array(N_AGENTS).fill(b.dirs[0]) as string[];
  if (!arm.single) return trainRun(EXPERIMENT, `team-s${seed}`, trainSets(scale, seed, agents), reuse);
  if (budget <= 0) throw new Error("the team's run must come first: it sets the token budget");
  return trainRun(
    EXPERIMENT,
    `single-${arm.size}-s${seed}`,
    [
      ...trainSets(scale, seed, agents, 10 * scale.stages),
      "algo.name=single",
      "algo.trust_region=checked",
      `run.max_tokens=${budget}`,
    ],
    reuse,
  );
}

const metricOf = (r: Row, key: string, when: "start" | "eval" = "eval") =>
  ((r[when] as Row).metrics as Record<string, number>)[key];

/** Metric keys shown: avg@1, then pass@k and maj@k for k > 1. */
function shownKeys(runs: Row[]): string[] {
  const keys = Object.keys((runs[0]?.eval as Row | undefined)?.metrics ?? {}).filter((k) => !k.includes("/"));
  return [
    "avg@1",
    ...keys.filter((k) => k.startsWith("pass@") && k !== "pass@1"),
    ...keys.filter((k) => k.startsWith("maj@") && k !== "maj@1"),
  ];
}

/** Team − arm, paired by seed, for one metric. */
export function teamMinus(runs: Row[], arm: string, key: string, when: "start" | "eval" = "eval"): Estimate {
  const seeds = [...new Set(runs.map((r) => r.seed as number))];
  const pick = (name: string) => seeds.map((s) => runs.find((r) => r.arm === name && r.seed === s)!);
  return pairedEstimate(
    pick("team 3×S").map((r) => metricOf(r, key, when)),
    pick(arm).map((r) => metricOf(r, key, when)),
  );
}

export function verdictOf(runs: Row[]): { claim: string; verdict: Verdict; parts: Row[] } {
  const parts = ["avg@1", ...shownKeys(runs).filter((k) => k.startsWith("maj@"))].map((key) => {
    const e = teamMinus(runs, CLAIM_ARM, key);
    return { metric: key, team_minus_single: e, verdict: directional(e.ci, 1) };
  });
  return {
    claim: "a team of 3 small models beats one model of ~2.7× their total size at equal compute",
    verdict: allOf(parts.slice(0, 1).map((p) => p.verdict)),
    parts,
  };
}

function tables(runs: Row[], bases: Row[]): ExperimentTable[] {
  const keys = shownKeys(runs);
  const arms = [...new Set(runs.map((r) => r.arm as string))];
  const est = (xs: number[]): Cell[] => {
    const e = tEstimate(xs);
    return [round(e.mean), e.ci ? round(e.ci[0]) : null, e.ci ? round(e.ci[1]) : null];
  };
  const nanoParams = (bases.find((b) => b.size === "nano")?.params as number) ?? NaN;
  const accuracy: ExperimentTable = {
    id: "accuracy",
    title: "Held-out accuracy after RL at a matched sample budget (mean over seeds, 95% t-interval)",
    caption:
      "Every arm answers the same held-out prompts the same number of times (a relay of 3 turns × ≤ 12 tokens " +
      "per answer). Parameters are per model; the team has 3 of them. Pretraining tokens are per model (the same " +
      "data for every size); RL tokens are the training rollouts' generated tokens (the singles stop at the team's).",
    columns: [
      "arm",
      "params per model",
      "× S",
      "pretrain tokens",
      "RL tokens",
      "avg@1 start",
      ...keys.flatMap((k) => [k, `${k} lo`, `${k} hi`]),
    ],
    rows: arms.map((a) => {
      const rs = runs.filter((r) => r.arm === a);
      return [
        a,
        rs[0].params as number,
        round((rs[0].params as number) / nanoParams, 2),
        Math.round(rs.reduce((s, r) => s + (r.pretrain_tokens as number), 0) / rs.length),
        Math.round(rs.reduce((s, r) => s + (r.rl_tokens as number), 0) / rs.length),
        round(tEstimate(rs.map((r) => metricOf(r, "avg@1", "start"))).mean),
        ...keys.flatMap((k) => est(rs.map((r) => metricOf(r, k)))),
      ];
    }),
    chart: { mark: "point", x: "arm", y: "avg@1" },
  };
  const singles = arms.filter((a) => a !== "team 3×S");
  const diffs: ExperimentTable = {
    id: "team-minus-single",
    title: "Team − single model, paired by seed (95% t-interval over seeds)",
    caption:
      "Positive: the team is better. The pretrained start (before RL) shows what RL changed. " +
      `The verdict on the paper's claim uses "${CLAIM_ARM}" (≈2.7× the team's total parameters).`,
    columns: [
      "single",
      "metric",
      "start difference",
      "start difference lo",
      "start difference hi",
      "difference",
      "difference lo",
      "difference hi",
    ],
    rows: singles.flatMap((a) =>
      keys.map((k) => {
        const s = teamMinus(runs, a, k, "start");
        const e = teamMinus(runs, a, k);
        return [
          a,
          k,
          round(s.mean),
          s.ci ? round(s.ci[0]) : null,
          s.ci ? round(s.ci[1]) : null,
          round(e.mean),
          e.ci ? round(e.ci[0]) : null,
          e.ci ? round(e.ci[1]) : null,
        ];
      }),
    ),
    chart: { mark: "point", x: "metric", y: "difference", color: "single", rule: 0 },
  };
  const perSeed: ExperimentTable = {
    id: "per-seed",
    title: "Per seed: avg@1 before and after RL, RL cost",
    columns: [
      "arm",
      "seed",
      "avg@1 start",
      "avg@1",
      "avg@1 lo",
      "avg@1 hi",
      "RL stages",
      "RL tokens",
      "RL seconds",
    ],
    rows: runs.map((r) => [
      r.arm as string,
      r.seed as number,
      round(metricOf(r, "avg@1", "start")),
      round(metricOf(r, "avg@1")),
      round(metricOf(r, "avg@1/ci_low")),
      round(metricOf(r, "avg@1/ci_high")),
      r.rl_stages as number,
      r.rl_tokens as number,
      r.rl_seconds as number,
    ]),
    chart: { mark: "point", x: "arm", y: "avg@1", color: "seed" },
  };
  return [accuracy, diffs, perSeed];
}

if (process.argv[1]?.endsWith(`${EXPERIMENT}.js`))
  main().catch((err: Error) => {
    process.stderr.write(`${EXPERIMENT}: ${err.message}\n`);
    process.exit(1);
  });
