/**
 * Experiment 1 — plug-and-play swap (sat-method §5; the paper: replacing two of three 4B agents by
 * 8B models gained +10.4 points, close to training that team from scratch, +10.0).
 *
 * Per seed, from pretrained nano and micro agents (same task, same pretraining steps):
 *   A  before the swap   a nano team (3 copies) trained with SAT for T stages
 *   B  swapped, no training: agents 1 and 2 replaced by the two micro agents, either
 *        projected   Stage 0 exactly, at decode time: each micro agent's next-token distribution
 *                    projected into the δ0 KL ball of the nano agent it replaces, or
 *        raw         the micro agents as they are (what the authors' release does)
 *   C  swap, then SAT continues for T_c stages with the new members trained. A projected member
 *      mixes two models and cannot be trained; the trainable route after Stage 0 is `sat swap
 *      --distill` (distil the projection into the micro agent, keep it only if it passes the δ0
 *      check), tried on seed 1. Where it is rejected, C continues from the raw swap.
 *   D  from scratch: the swapped composition (pretrained nano + the two micro agents) trained with
 *      SAT for T stages, evaluated after T_c and after T stages.
 * Reported: gains over A, compute (generated tokens and seconds of training) and the fraction of
 * the from-scratch gain the swap recovers, (C − A)/(D − A), with seed-bootstrap intervals.
 *
 *   node dist/experiments/swap.js [--quick] [--seeds 1,2,3,4,5] [--reuse]
 */
import { existsSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { ROOT, log, parseArgs, readResult, round, satRun, trainRun, experimentClock } from "./lib.js";
import {
  DELTA,
  N_AGENTS,
  evalDirs,
  evalMembers,
  evalNumbers,
  loadMember,
  makeMiniEvaluator,
  pretrainBase,
  runCost,
  scaleOf,
  stagesOf,
  teamDirs,
  trainSets,
  writeOutputs,
  type Scale,
} from "./mini.js";
import { ProjectedMember } from "../src/swap/projected-member.js";
import { loadModel } from "../src/model/checkpoint.js";
import {
  allOf,
  directional,
  nonInferior,
  pairedEstimate,
  ratioEstimate,
  tEstimate,
  type Verdict,
} from "./stats.js";
import type { Cell, ExperimentTable } from "../src/report/experiment.js";

export const EXPERIMENT = "swap";
/** Non-inferiority margin of "gains about as much as from scratch", in avg@1. */
export const MARGIN = 0.02;

type Row = Record<string, unknown>;

function continueStages(scale: Scale): number {
  return Math.max(1, Math.round(scale.stages / 3));
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), { seeds: [1], stages: 30, evalPrompts: 400, evalN: 8 });
  if (args.tablesOnly) {
    const r = readResult(`${EXPERIMENT}.json`);
    writeOutputs(EXPERIMENT, { ...r, verdict: verdictOf(r.runs as Row[]), tables: tables(r) } as never);
    return;
  }
  const scale = scaleOf(args);
  const Tc = continueStages(scale);
  const clock = experimentClock(EXPERIMENT);
  log(`${EXPERIMENT} (${scale.name}): seeds ${scale.seeds.join(",")}; T ${scale.stages}, T_c ${Tc}`);
  const nano = pretrainBase("nano", 1, scale, args.reuse);
  const micro = pretrainBase("micro", 1, scale, args.reuse, 2);
  const ev = await makeMiniEvaluator(scale);
  const runs: Row[] = [];
  let distill: Row | null = null;
  try {
    for (const seed of scale.seeds) {
      const A = trainRun(
        EXPERIMENT,
        `nano-team-s${seed}`,
        trainSets(scale, seed, Array(N_AGENTS).fill(nano.dirs[0])),
        args.reuse,
      );
      const aDirs = teamDirs(A.checkpoint);
      const evA = await evalDirs(ev, aDirs, "A before the swap");
      const rawDirs = [aDirs[0], micro.dirs[0], micro.dirs[1]];
      const evRaw = await evalDirs(ev, rawDirs, "B swapped raw");
      await ev.renew();
      // Stage 0 exactly: each micro agent projected into the δ0 ball of the nano agent it replaces.
      const projected = [1, 2].map(
        (i) =>
          new ProjectedMember(
            loadModel(resolve(ROOT, micro.dirs[i - 1]), ev.engine, ev.tok),
            loadModel(resolve(ROOT, aDirs[i]), ev.engine, ev.tok),
            DELTA,
            1,
          ),
      );
      const evProj = await evalMembers(ev, [loadMember(ev, aDirs[0]), ...projected], "B swapped projected");
      const projectedShare =
        projected.reduce((s, p) => s + p.counters.projected, 0) /
        Math.max(
          1,
          projected.reduce((s, p) => s + p.counters.states, 0),
        );
      if (seed === scale.seeds[0]) distill = tryDistill(A.checkpoint, micro.dirs[0], scale, args.reuse);
      const C = trainRun(
        EXPERIMENT,
        `continue-raw-s${seed}`,
        trainSets(scale, seed, rawDirs, Tc),
        args.reuse,
      );
      const evC = await evalDirs(ev, teamDirs(C.checkpoint), "C swap + continue");
      const D = trainRun(
        EXPERIMENT,
        `scratch-s${seed}`,
        [
          ...trainSets(scale, seed, [nano.dirs[0], micro.dirs[0], micro.dirs[1]]),
          `run.save_steps=${Tc}`,
          "run.save_total_limit=null",
        ],
        args.reuse,
      );
      const dAtTc = join(D.dir, "checkpoints", `stage-${Tc}`);
      if (!existsSync(dAtTc))
        throw new Error(`scratch-s${seed}: no checkpoint after ${Tc} stages in ${D.dir}`);
      const evDTc = await evalDirs(ev, teamDirs(dAtTc), `D scratch ${Tc} stages`);
      const evD = await evalDirs(ev, teamDirs(D.checkpoint), `D scratch ${scale.stages} stages`);
      const evStart = await evalDirs(
        ev,
        [nano.dirs[0], micro.dirs[0], micro.dirs[1]],
        "D start (no training)",
      );
      const costA = runCost(A.dir);
      const costC = runCost(C.dir);
      const costD = runCost(D.dir);
      runs.push({
        seed,
        commands: { A: A.command, C: C.command, D: D.command },
        cost: {
          A: { ...costA, wall_seconds: round(A.trainSeconds, 1) },
          C: { ...costC, wall_seconds: round(C.trainSeconds, 1) },
          D: { ...costD, wall_seconds: round(D.trainSeconds, 1) },
          // D's first T_c stages: the "same number of stages" comparison.
          D_Tc: { tokens: tokensAfter(D.dir, Tc), stages: Tc },
        },
        projected_state_share: round(projectedShare),
        eval: {
          A: evalNumbers(evA),
          B_raw: evalNumbers(evRaw),
          B_projected: evalNumbers(evProj),
          C: evalNumbers(evC),
          D_Tc: evalNumbers(evDTc),
          D: evalNumbers(evD),
          D_start: evalNumbers(evStart),
        },
      });
      log(
        `seed ${seed}: A ${acc(evA)}, B raw ${acc(evRaw)}, B projected ${acc(evProj)}, C ${acc(evC)}, ` +
          `D@${Tc} ${acc(evDTc)}, D ${acc(evD)}; ${clock.seconds().toFixed(0)} s so far`,
      );
    }
  } finally {
    await ev.close();
  }
  const result: Row = {
    ...clock.header(scale.name),
    settings: {
      nano: { dir: nano.dirs[0], params: nano.params, pretrain_accuracy: nano.accuracy },
      micro: { dirs: micro.dirs, params: micro.params, pretrain_accuracy: micro.accuracy },
      stages: scale.stages,
      continue_stages: Tc,
      delta0: DELTA,
      rl: `SAT, ${scale.promptsPerStep} prompts × ${scale.n} per stage, δ ${DELTA}`,
      eval: `${scale.evalPrompts} held-out prompts × ${scale.evalN}`,
    },
    distillation: distill,
    runs,
  };
  writeOutputs(EXPERIMENT, { ...result, verdict: verdictOf(runs), tables: tables(result) } as never);
  log(`done in ${clock.seconds().toFixed(0)} s`);
}

const acc = (r: { metrics: Record<string, number> }) => r.metrics["avg@1"].toFixed(3);

function tokensAfter(runDir: string, stages: number): number {
  return (stagesOf(runDir)[stages - 1]?.num_tokens as number | undefined) ?? NaN;
}

/**
 * Stage 0 then training, the method's route: `sat swap --distill` on agent 1 of seed 1's team A.
 * Returns whether the distilled micro agent passed the δ0 check, and the KL it reached.
 */
function tryDistill(checkpoint: string, microDir: string, scale: Scale, reuse: boolean): Row {
  const sets = [
    `rollout.prompts_per_step=${scale.promptsPerStep}`,
    `algo.ppo_mini_batch_size=${scale.miniBatch}`,
    `eval.n_prompts=${Math.min(32, scale.evalPrompts)}`,
    "eval.n=1",
    "eval.k=[1]",
  ];
  const flags = [
    "--json",
    "--threads",
    "1",
    ...["--checkpoint", relative(ROOT, checkpoint), "--agent", "1", "--with", microDir],
    ...["--delta0", String(DELTA), "--distill"],
  ];
  const r = satRun("swap", EXPERIMENT, "distill-agent-1", sets, reuse, flags);
  const messages = r.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as { event?: string; message?: string })
    .filter((e) => e.event === "log")
    .map((e) => e.message ?? "");
  const line = messages.find((m) => m.startsWith("distillation:")) ?? "";
  const kl = /KL quantile to the incumbent ([0-9.e+-]+)/.exec(line);
  return {
    command: r.command,
    seconds: round(r.seconds, 1),
    delta0: DELTA,
    accepted: /→ accepted/.test(line),
    kl_quantile: kl ? Number(kl[1]) : null,
    message: line,
    stage0: messages.find((m) => m.startsWith("stage 0:")) ?? null,
  };
}

const m = (r: Row, arm: string, key = "avg@1") =>
  (((r.eval as Row)[arm] as Row).metrics as Record<string, number>)[key];

export function verdictOf(runs: Row[]): Row {
  const gainC = runs.map((r) => m(r, "C") - m(r, "A"));
  const gainD = runs.map((r) => m(r, "D") - m(r, "A"));
  const swapGain = tEstimate(gainC);
  const diff = pairedEstimate(gainC, gainD);
  const tokenShare = ratioEstimate(
    runs.map((r) => ((r.cost as Row).C as Row).tokens as number),
    runs.map((r) => ((r.cost as Row).D as Row).tokens as number),
  );
  const parts: Verdict[] = [directional(swapGain.ci, 1), nonInferior(diff.ci, MARGIN)];
  return {
    claim:
      "swapping two agents for stronger ones, then continuing SAT, gains about as much as retraining the team from scratch, at a fraction of the cost",
    swap_gain: swapGain,
    swap_minus_scratch_gain: diff,
    fraction_recovered: ratioEstimate(gainC, gainD),
    token_share: tokenShare,
    verdict: allOf(parts),
    parts: { swap_gain: parts[0], about_as_much: parts[1], margin: MARGIN },
  };
}

function tables(result: Row): ExperimentTable[] {
  const runs = result.runs as Row[];
  const s = result.settings as Row;
  const Tc = s.continue_stages as number;
  const T = s.stages as number;
  const arms: [string, string][] = [
    ["A", `A: nano team after ${T} stages (before the swap)`],
    ["B_projected", "B: swapped, Stage-0 projection (no training)"],
    ["B_raw", "B: swapped raw (no training)"],
    ["C", `C: raw swap + ${Tc} SAT stages`],
    ["D_start", "D: swapped composition, untrained"],
    ["D_Tc", `D: from scratch, ${Tc} stages`],
    ["D", `D: from scratch, ${T} stages`],
  ];
  const est = (xs: number[]): Cell[] => {
    const e = tEstimate(xs);
    return [round(e.mean), e.ci ? round(e.ci[0]) : null, e.ci ? round(e.ci[1]) : null];
  };
  const ks = Object.keys(((runs[0].eval as Row).A as Row).metrics as Row).filter(
    (k) => !k.includes("/") && !k.endsWith("@1") && (k.startsWith("pass@") || k.startsWith("maj@")),
  );
  const accuracy: ExperimentTable = {
    id: "accuracy",
    title: "Held-out accuracy of each team (mean over seeds, 95% t-interval)",
    columns: ["team", "avg@1", "avg@1 lo", "avg@1 hi", ...ks.flatMap((k) => [k, `${k} lo`, `${k} hi`])],
    rows: arms.map(([key, label]) => [
      label,
      ...est(runs.map((r) => m(r, key))),
      ...ks.flatMap((k) => est(runs.map((r) => m(r, key, k)))),
    ]),
    chart: { mark: "point", x: "team", y: "avg@1" },
  };
  const cost = (r: Row, k: string, f: string) => ((r.cost as Row)[k] as Row)[f] as number;
  const gains: [string, string, (r: Row) => number, (r: Row) => number, (r: Row) => number][] = [
    ["B_projected", "swap with Stage 0, no training", () => 0, () => 0, (r) => m(r, "B_projected")],
    ["B_raw", "swap raw, no training", () => 0, () => 0, (r) => m(r, "B_raw")],
    [
      "C",
      `swap + ${Tc} stages`,
      (r) => cost(r, "C", "tokens"),
      (r) => cost(r, "C", "seconds"),
      (r) => m(r, "C"),
    ],
    [
      "D_Tc",
      `from scratch, ${Tc} stages`,
      (r) => cost(r, "D_Tc", "tokens"),
      (r) => (cost(r, "D", "seconds") * Tc) / T,
      (r) => m(r, "D_Tc"),
    ],
    [
      "D",
      `from scratch, ${T} stages`,
      (r) => cost(r, "D", "tokens"),
      (r) => cost(r, "D", "seconds"),
      (r) => m(r, "D"),
    ],
  ];
  const scratch = runs.map((r) => m(r, "D") - m(r, "A"));
  const gainTable: ExperimentTable = {
    id: "gains",
    title:
      "Gain over the team before the swap (A), compute, and the fraction of the from-scratch gain recovered",
    caption:
      "Gain: avg@1 − A's, mean over seeds with a 95% t-interval. Compute: generated tokens of the RL rollouts and " +
      "training seconds (stage timings; D after T_c stages prorated), beyond what A already cost. Fraction: gain ÷ the " +
      `${T}-stage from-scratch gain (ratio of seed means, 95% seed bootstrap).`,
    columns: [
      "route",
      "gain",
      "gain lo",
      "gain hi",
      "RL tokens",
      "train seconds",
      "fraction recovered",
      "fraction recovered lo",
      "fraction recovered hi",
    ],
    rows: gains.map(([, label, tok, sec, val]) => {
      const g = runs.map((r) => val(r) - m(r, "A"));
      const f = ratioEstimate(g, scratch);
      return [
        label,
        ...est(g),
        Math.round(runs.reduce((a, r) => a + tok(r), 0) / runs.length),
        round(runs.reduce((a, r) => a + sec(r), 0) / runs.length, 1),
        round(f.mean, 3),
        f.ci ? round(f.ci[0], 3) : null,
        f.ci ? round(f.ci[1], 3) : null,
      ];
    }),
    chart: { mark: "point", x: "route", y: "gain", rule: 0 },
  };
  const d = result.distillation as Row | null;
  const stage0: ExperimentTable = {
    id: "stage-0",
    title: "Stage 0: the projected swap and the distillation that would make the new member trainable",
    columns: ["quantity", "value"],
    rows: [
      ["δ0", s.delta0 as number],
      [
        "share of the micro agents' states that needed projection",
        round(tEstimate(runs.map((r) => r.projected_state_share as number)).mean, 3),
      ],
      ["distillation accepted (seed 1, agent 1)", d ? (d.accepted ? "yes" : "no") : "–"],
      ["distilled KL quantile to the incumbent", d ? (d.kl_quantile as number | null) : null],
      ["distillation seconds", d ? (d.seconds as number) : null],
    ],
    chart: null,
  };
  const perSeed: ExperimentTable = {
    id: "per-seed",
    title: "Per seed: avg@1 of every team",
    columns: ["seed", ...arms.map(([k]) => k)],
    rows: runs.map((r) => [r.seed as number, ...arms.map(([k]) => round(m(r, k)))]),
    chart: null,
  };
  return [accuracy, gainTable, stage0, perSeed];
}

if (process.argv[1]?.endsWith(`${EXPERIMENT}.js`))
  main().catch((err: Error) => {
    process.stderr.write(`${EXPERIMENT}: ${err.message}\n`);
    process.exit(1);
  });
