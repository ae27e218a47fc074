/**
 * Shared machinery of the experiments: every training run goes through the product's own command
 * line (`node bin/sat.js train …`, so each run directory is an ordinary sat run with its resolved
 * config and stages.jsonl), every evaluation through the library on one fixed set of held-out
 * prompts (independent of the training seed, so all runs of an experiment face the same problems),
 * and stages.jsonl is reduced to the trust-region and monotonicity statistics the results report.
 *
 * All runs start from the pretrained fixture test/fixtures/agents/add2-tiny (2-digit addition) with
 * the demo's settings; an experiment only adds its own --set overrides.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createEngine, type FastEngine } from "../src/engine/engine.js";
import { loadModel } from "../src/model/checkpoint.js";
import { CharTokenizer } from "../src/model/tokenizer.js";
import { getTask, makeProblems, type Problem, type TaskFamily } from "../src/tasks/index.js";
import { ModelMember } from "../src/team/member.js";
import {
  evaluateMatchedBudget,
  evaluateTeam,
  evalRows,
  type EvalOptions,
  type EvalResult,
} from "../src/eval/evaluate.js";
import { findLatestCheckpoint } from "../src/io/rundir.js";

/**
 * The build this script runs from: <build>/dist/experiments/lib.js. Normally the repository itself;
 * a copy (see README, "pinning the build") keeps the runs on one build while others rebuild dist/.
 */
export const BUILD = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** The repository root: the working directory (fixtures, runs/ and experiments/results/ live there). */
export const ROOT = process.cwd();
export const AGENT = "test/fixtures/agents/add2-tiny";
/**
 * Where results files and run directories go: experiments/results/ and runs/experiments/ unless a
 * script's --results-dir / --runs-dir say otherwise (the tests send quick variants to a temp dir).
 */
export const paths = {
  results: join(ROOT, "experiments", "results"),
  runs: join(ROOT, "runs", "experiments"),
};

function checkRoot(): void {
  if (!existsSync(join(ROOT, AGENT, "model.safetensors")))
    throw new Error(`run the experiments from the repository root (no ${AGENT} under ${ROOT})`);
}

/**
 * sha256 (first 16 hex digits) of the build's compiled library and kernels: dist/src/**.js and
 * build/kernels.wasm. Two runs with the same seed and the same hash give the same records.
 */
export function buildHash(): string {
  const h = createHash("sha256");
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith(".js")) {
        h.update(relative(BUILD, p));
        h.update(readFileSync(p));
      }
    }
  };
  walk(join(BUILD, "dist", "src"));
  h.update(readFileSync(join(BUILD, "build", "kernels.wasm")));
  return h.digest("hex").slice(0, 16);
}

/** Team and task settings shared by every run (the demo's, on the add2-tiny fixture). */
export const N_AGENTS = 3;
export const MAX_TURN_TOKENS = 12;
export const MAX_COMPLETION = 40;

/** Overrides common to every training run of every experiment. */
export function baseSets(stages: number, seed: number): string[] {
  return [
    "tasks.name=add",
    "tasks.difficulty=2",
    "rollout.max_prompt_length=16",
    `rollout.max_completion_length=${MAX_COMPLETION}`,
    "rollout.prompts_per_step=8",
    "rollout.n=8",
    "rollout.temperature=1",
    `team.n_agents=${N_AGENTS}`,
    "team.protocol=relay",
    "team.rounds=1",
    `team.max_turn_tokens=${MAX_TURN_TOKENS}`,
    `team.agent_checkpoints=${JSON.stringify(Array(N_AGENTS).fill(AGENT))}`,
    "algo.kl_radius=0.05",
    "algo.kl_coef=0.1",
    "algo.ppo_epochs=2",
    "algo.ppo_mini_batch_size=4",
    "optim.lr=1e-4",
    // The runs' own end-of-training evaluation is a small sanity check; the experiments evaluate
    // every run again on their common held-out prompts (experimentEval below).
    "eval.before_train=false",
    "eval.n_prompts=32",
    "eval.n=4",
    "eval.k=[1,4]",
    "eval.bootstrap_samples=200",
    "run.save_steps=-1",
    "run.threads=1",
    `run.max_steps=${stages}`,
    `run.seed=${seed}`,
  ];
}

/** Options shared by the experiment scripts' command lines. */
export interface CliArgs {
  seeds: number[];
  stages: number;
  evalPrompts: number;
  evalN: number;
  /** Reuse a finished run whose overrides are unchanged instead of training it again. */
  reuse: boolean;
  only: string[] | null;
  /** Rewrite the markdown tables from the results JSON without training or evaluating. */
  tablesOnly: boolean;
  /** The CI-sized variant: tiny models, few stages and prompts (what the tests run). */
  quick: boolean;
  /** Flags given on the command line (a script's scale supplies the others). */
  explicit: Set<string>;
}

export function parseArgs(
  argv: string[],
  defaults: Omit<CliArgs, "reuse" | "only" | "tablesOnly" | "quick" | "explicit">,
): CliArgs {
  const out: CliArgs = {
    ...defaults,
    reuse: false,
    only: null,
    tablesOnly: false,
    quick: false,
    explicit: new Set(),
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    out.explicit.add(flag);
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const int = (v: string): number => {
      const x = Number(v);
      if (!Number.isInteger(x) || x < 1) throw new Error(`${flag}: expected a positive integer, got ${v}`);
      return x;
    };
    if (flag === "--seeds") out.seeds = value().split(",").map(int);
    else if (flag === "--stages") out.stages = int(value());
    else if (flag === "--eval-prompts") out.evalPrompts = int(value());
    else if (flag === "--eval-n") out.evalN = int(value());
    else if (flag === "--reuse") out.reuse = true;
    else if (flag === "--only") out.only = value().split(",");
    else if (flag === "--tables-only") out.tablesOnly = true;
    else if (flag === "--quick") out.quick = true;
    else if (flag === "--results-dir") paths.results = resolve(value());
    else if (flag === "--runs-dir") paths.runs = resolve(value());
    else
      throw new Error(
        `unknown flag ${flag}; flags: --seeds 1,2 --stages N --eval-prompts N --eval-n N --reuse --only a,b --tables-only --quick --results-dir DIR --runs-dir DIR`,
      );
  }
  return out;
}

export interface TrainedRun {
  name: string;
  dir: string;
  checkpoint: string;
  /** The command that trains this run (relative paths, from the repository root). */
  command: string;
  trainSeconds: number;
  reused: boolean;
}

const shellQuote = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`);

/**
 * Runs one `sat <command>` (train, pretrain, swap) into runs/experiments/<experiment>/<name>. With
 * `reuse`, a run whose recorded arguments equal these and whose build is this one is not run again.
 */
export function satRun(
  command: "train" | "pretrain" | "swap",
  experiment: string,
  name: string,
  sets: string[],
  reuse: boolean,
  flags: string[] = [],
): { dir: string; command: string; seconds: number; reused: boolean; stdout: string } {
  checkRoot();
  const dir = join(paths.runs, experiment, name);
  const marker = join(dir, "experiment-sets.json");
  // --json replaces --quiet when the caller reads the command's log lines.
  const args = [
    command,
    flags.includes("--json") ? "" : "--quiet",
    "--force",
    "--output-dir",
    relative(ROOT, dir),
    ...flags,
  ].filter((a) => a !== "");
  for (const s of sets) args.push("--set", s);
  const line = ["node", "bin/sat.js", ...args].map(shellQuote).join(" ");
  const build = buildHash();
  if (reuse && existsSync(marker)) {
    const prev = JSON.parse(readFileSync(marker, "utf8")) as {
      sets: string[];
      flags?: string[];
      build: string;
      trainSeconds: number;
      stdout?: string;
    };
    if (
      JSON.stringify(prev.sets) === JSON.stringify(sets) &&
      JSON.stringify(prev.flags ?? []) === JSON.stringify(flags) &&
      prev.build === build
    )
      return { dir, command: line, seconds: prev.trainSeconds, reused: true, stdout: prev.stdout ?? "" };
  }
  mkdirSync(dirname(dir), { recursive: true });
  const t0 = performance.now();
  const res = spawnSync("node", [satCli(), ...args], {
    cwd: ROOT,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 64 * 1024 * 1024,
  });
  const seconds = (performance.now() - t0) / 1000;
  if (res.status !== 0) {
    throw new Error(
      `${name}: sat ${command} failed (exit ${res.status}): ${res.stderr.trim().split("\n")[0]}`,
    );
  }
  writeFileSync(
    marker,
    JSON.stringify({ sets, flags, build, trainSeconds: seconds, stdout: res.stdout }, null, 2) + "\n",
  );
  return { dir, command: line, seconds, reused: false, stdout: res.stdout };
}

/**
 * Trains one run with `sat train` into runs/experiments/<experiment>/<name>. With `reuse`, a run
 * whose recorded overrides equal `sets` and whose final checkpoint exists is not trained again.
 */
export function trainRun(experiment: string, name: string, sets: string[], reuse: boolean): TrainedRun {
  const r = satRun("train", experiment, name, sets, reuse);
  const ckpt = findLatestCheckpoint(r.dir);
  if (!ckpt) throw new Error(`${name}: sat train finished but ${r.dir} has no checkpoint`);
  return {
    name,
    dir: r.dir,
    checkpoint: ckpt.dir,
    command: r.command,
    trainSeconds: r.seconds,
    reused: r.reused,
  };
}

/** bin/sat.js of the build this script runs from, relative to the repository root. */
export function satCli(): string {
  return relative(ROOT, join(BUILD, "bin", "sat.js"));
}

// ---------------------------------------------------------------------------------------------
// Evaluation on the experiment's common held-out prompts

/** Seed of the held-out prompts and of the evaluation rollouts (fixed, unlike the training seeds). */
export const EVAL_SEED = 20260;

export interface Evaluator {
  tok: CharTokenizer;
  task: TaskFamily;
  problems: Problem[];
  engine: FastEngine;
  opts: EvalOptions;
  close(): Promise<void>;
}

export async function makeEvaluator(nPrompts: number, n: number): Promise<Evaluator> {
  const tok = new CharTokenizer();
  const task = getTask("add");
  const problems = makeProblems(task, { split: "test", n: nPrompts, seed: EVAL_SEED, difficulty: 2 });
  const engine = await createEngine({ threads: 1 });
  const ks = [1, 4, 8].filter((k) => k <= n);
  const opts: EvalOptions = {
    protocol: "relay",
    rounds: 1,
    maxTurnTokens: MAX_TURN_TOKENS,
    maxCompletionLength: MAX_COMPLETION,
    temperature: 1,
    topP: 1,
    n,
    k: ks,
    bootstrap: 1000,
    seed: EVAL_SEED,
  };
  return { tok, task, problems, engine, opts, close: () => engine.close() };
}

function members(ev: Evaluator, dirs: string[]): ModelMember[] {
  return dirs.map((d) => new ModelMember(loadModel(resolve(ROOT, d), ev.engine, ev.tok)));
}

/** The team in `ckpt` (agent-0..agent-{n−1}) under `protocol`. */
export async function evalTeam(
  ev: Evaluator,
  ckpt: string,
  n: number,
  protocol: "relay" | "independent",
  name: string,
): Promise<EvalResult> {
  const dirs = Array.from({ length: n }, (_, i) => relative(ROOT, join(ckpt, `agent-${i}`)));
  return evaluateTeam(members(ev, dirs), ev.tok, ev.task, ev.problems, { ...ev.opts, protocol, name });
}

/** The pretrained start: n copies of the fixture. */
export async function evalStart(
  ev: Evaluator,
  protocol: "relay" | "independent",
  name: string,
): Promise<EvalResult> {
  return evaluateTeam(members(ev, Array(N_AGENTS).fill(AGENT)), ev.tok, ev.task, ev.problems, {
    ...ev.opts,
    protocol,
    name,
  });
}

/**
 * One model (agent-0 of `ckpt`, or the fixture): at a matched sample budget (N_AGENTS·n solo
 * samples per prompt, pass/maj@k over N_AGENTS·k), and under its training protocol (relay with
 * N_AGENTS turns of its own, the same turn budget as the team).
 */
export async function evalSingle(ev: Evaluator, agentDir: string, name: string): Promise<EvalResult[]> {
  const [m] = members(ev, [agentDir]);
  return [
    await evaluateMatchedBudget(
      m,
      ev.tok,
      ev.task,
      ev.problems,
      { ...ev.opts, name: `${name} (matched budget)` },
      N_AGENTS,
    ),
    await evaluateTeam([m], ev.tok, ev.task, ev.problems, {
      ...ev.opts,
      rounds: N_AGENTS,
      name: `${name} (relay, ${N_AGENTS} own turns)`,
      perAgent: false,
    }),
  ];
}

/** Appends the experiment's evaluations to the run's eval.jsonl (so its report shows them). */
export function appendEvals(runDir: string, step: number, results: EvalResult[]): void {
  const lines = evalRows(step, results, "add").map((r) => JSON.stringify({ ...r, experiment_heldout: true }));
  writeFileSync(join(runDir, "eval.jsonl"), lines.join("\n") + "\n", { flag: "a" });
}

/** The numbers of one evaluation that go into the results (metric, interval). */
export function evalSummary(r: EvalResult): Record<string, unknown> {
  return {
    name: r.name,
    protocol: r.protocol,
    samples_per_prompt: r.n,
    prompts: r.numPrompts,
    budget_factor: r.budgetFactor,
    metrics: Object.fromEntries(Object.entries(r.metrics).map(([k, v]) => [k, round(v)])),
    per_agent: r.perAgent.map((a) => ({
      agent: a.agent,
      solo_avg1: round(a.soloAccuracy),
      ci: [round(a.ci_low), round(a.ci_high)],
    })),
    tokens: r.tokens,
    seconds: round(r.seconds, 1),
  };
}

// ---------------------------------------------------------------------------------------------
// stages.jsonl reduction

type Row = Record<string, unknown>;
const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

export function round(x: number, digits = 4): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export function readStages(runDir: string): Row[] {
  const text = readFileSync(join(runDir, "stages.jsonl"), "utf8");
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as Row);
}

/** Candidates tried by an agent in a stage: backtracks+1 when accepted, backtracks when the null update was kept. */
function candidatesTried(a: Row): number {
  const b = num(a["trust_region/backtracks"]) ?? 0;
  return num(a["trust_region/accepted"]) === 1 ? b + 1 : b;
}

/** One compact row per (stage, agent): the per-stage trust-region statistics the results keep. */
export function stageAgentRows(stages: Row[], tags: Row): Row[] {
  const out: Row[] = [];
  for (const s of stages) {
    for (const a of (s.agents as Row[] | undefined) ?? []) {
      out.push({
        ...tags,
        step: s.step,
        agent: a.agent,
        position: a["order/position"],
        kl_radius: a["trust_region/kl_radius"],
        kl_quantile: round(num(a["trust_region/kl_quantile"]) ?? NaN, 6),
        kl_max: round(num(a["trust_region/kl_max"]) ?? NaN, 6),
        violation: a["trust_region/violation"],
        violation_rate: round(num(a["trust_region/violation_rate"]) ?? NaN),
        candidates: candidatesTried(a),
        backtracks: a["trust_region/backtracks"],
        accepted: a["trust_region/accepted"],
        kl_coef: round(num(a["actor/kl_coef"]) ?? NaN, 6),
        gain: round(num(a["surrogate/gain"]) ?? NaN, 6),
        gain_predicted:
          num(a["surrogate/gain_predicted"]) === null ? null : round(num(a["surrogate/gain_predicted"])!, 6),
        reward_mean: round(num(s["reward/mean"]) ?? NaN),
        improvement: num(s["cert/improvement"]) === null ? null : round(num(s["cert/improvement"])!),
        monotonicity_violation: num(s["cert/monotonicity_violation"]),
      });
    }
  }
  return out;
}

export interface TrustStats {
  updates: number;
  /** Mean over updates of the accepted update's KL quantile, and the largest. */
  kl_quantile_mean: number;
  kl_quantile_max: number;
  kl_max_max: number;
  /** Share of updates whose full step (first candidate) violated the radius. */
  first_step_violation_rate: number;
  /** Candidates outside δ ÷ candidates tried (trust_region/violation_rate; what the report's sweep chart plots). */
  candidate_violation_rate: number;
  /** Share of updates where a candidate was accepted (1 − share of null updates). */
  accepted_rate: number;
  /** Share of accepted updates whose KL quantile exceeds the radius (never for sat). */
  accepted_outside_radius_rate: number;
  backtracks_mean: number;
}

export function trustStats(rows: Row[]): TrustStats {
  const n = rows.length;
  const mean = (f: (r: Row) => number) => (n > 0 ? rows.reduce((s, r) => s + f(r), 0) / n : NaN);
  const tried = rows.reduce((s, r) => s + (r.candidates as number), 0);
  const outside = rows.reduce((s, r) => s + (r.violation_rate as number) * (r.candidates as number), 0);
  const acc = rows.filter((r) => r.accepted === 1);
  return {
    updates: n,
    kl_quantile_mean: round(
      mean((r) => r.kl_quantile as number),
      6,
    ),
    kl_quantile_max: round(Math.max(...rows.map((r) => r.kl_quantile as number)), 6),
    kl_max_max: round(Math.max(...rows.map((r) => r.kl_max as number)), 6),
    first_step_violation_rate: round(mean((r) => r.violation as number)),
    candidate_violation_rate: round(tried > 0 ? outside / tried : 0),
    accepted_rate: round(mean((r) => r.accepted as number)),
    accepted_outside_radius_rate: round(
      acc.length > 0
        ? acc.filter((r) => (r.kl_quantile as number) > (r.kl_radius as number) + 1e-12).length / acc.length
        : 0,
    ),
    backtracks_mean: round(
      mean((r) => r.backtracks as number),
      3,
    ),
  };
}

/** trustStats of the rows of each value of `key` ("position" in σ, or "agent"). */
export function trustStatsBy(rows: Row[], key: "position" | "agent"): (TrustStats & Row)[] {
  const values = [...new Set(rows.map((r) => r[key] as number))].sort((a, b) => a - b);
  return values.map((v) => ({ [key]: v, ...trustStats(rows.filter((r) => r[key] === v)) }));
}

export interface TeamStats {
  stages: number;
  reward_mean_first5: number;
  reward_mean_last5: number;
  /** Stages with a held-out improvement measured (absent for independent-vote, see README). */
  improvement_stages: number;
  improvement_mean: number | null;
  /** 95% t-interval of the mean per-stage held-out improvement (stages as independent draws). */
  improvement_mean_ci: [number, number] | null;
  improvement_negative_rate: number | null;
  /** Share of stages whose held-out improvement interval lies below 0 (cert/monotonicity_violation). */
  monotonicity_violation_rate: number | null;
  tokens: number;
  train_seconds_stages: number;
}

/** 97.5% quantiles of Student's t for 1..30 degrees of freedom. */
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131,
  2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/** t_{0.975}(df); a fractional df (Welch) is rounded down, which widens the interval slightly. */
export function t975(df: number): number {
  const d = Math.max(1, Math.floor(df));
  return d <= T975.length ? T975[d - 1] : 1.96 + 2.4 / d;
}

function meanVar(xs: number[]): { m: number; v: number } {
  const n = xs.length;
  const m = xs.reduce((s, x) => s + x, 0) / n;
  return { m, v: xs.reduce((s, x) => s + (x - m) ** 2, 0) / (n - 1) };
}

/** 95% t-interval of the mean of xs, or null with fewer than 2 values. */
export function meanCI(xs: number[]): [number, number] | null {
  const n = xs.length;
  if (n < 2) return null;
  const { m, v } = meanVar(xs);
  const half = (t975(n - 1) * Math.sqrt(v)) / Math.sqrt(n);
  return [round(m - half), round(m + half)];
}

/** mean(xs) − mean(ys) with its 95% Welch interval (seeds as independent draws), or null. */
export function welchCI(xs: number[], ys: number[]): { diff: number; ci: [number, number] } | null {
  if (xs.length < 2 || ys.length < 2) return null;
  const a = meanVar(xs);
  const b = meanVar(ys);
  const sa = a.v / xs.length;
  const sb = b.v / ys.length;
  const se = Math.sqrt(sa + sb);
  const df = se > 0 ? (sa + sb) ** 2 / (sa ** 2 / (xs.length - 1) + sb ** 2 / (ys.length - 1)) : 1;
  const diff = a.m - b.m;
  const half = t975(df) * se;
  return { diff: round(diff), ci: [round(diff - half), round(diff + half)] };
}

/** Per-stage held-out improvements (cert/improvement) of a run, in stage order. */
export function stageImprovements(stages: Row[]): number[] {
  return stages.map((s) => num(s["cert/improvement"])).filter((x): x is number => x !== null);
}

/** "0.0021 [−0.0100, 0.0142]" for per-stage improvements pooled over runs. */
export function improvementCell(xs: number[]): string {
  if (xs.length === 0) return "–";
  const m = xs.reduce((s, x) => s + x, 0) / xs.length;
  const ci = meanCI(xs);
  return ci ? `${m.toFixed(4)} [${ci[0].toFixed(4)}, ${ci[1].toFixed(4)}]` : m.toFixed(4);
}

export function teamStats(stages: Row[]): TeamStats {
  const rewards = stages.map((s) => num(s["reward/mean"]) ?? NaN);
  const avg = (xs: number[]) => (xs.length > 0 ? xs.reduce((s, x) => s + x, 0) / xs.length : NaN);
  const imp = stages.map((s) => num(s["cert/improvement"])).filter((x): x is number => x !== null);
  const mv = stages.map((s) => num(s["cert/monotonicity_violation"])).filter((x): x is number => x !== null);
  return {
    stages: stages.length,
    reward_mean_first5: round(avg(rewards.slice(0, 5))),
    reward_mean_last5: round(avg(rewards.slice(-5))),
    improvement_stages: imp.length,
    improvement_mean: imp.length > 0 ? round(avg(imp)) : null,
    improvement_mean_ci: meanCI(imp),
    improvement_negative_rate: imp.length > 0 ? round(imp.filter((x) => x < 0).length / imp.length) : null,
    monotonicity_violation_rate: mv.length > 0 ? round(avg(mv)) : null,
    tokens: stages.reduce((s, r) => s + (num(r.num_tokens) ?? 0), 0),
    train_seconds_stages: round(
      stages.reduce((s, r) => s + (num(r["timing_s/step"]) ?? 0), 0),
      1,
    ),
  };
}

// ---------------------------------------------------------------------------------------------
// Results files and tables

/** The commit the code ran at (the dist/ build may hold uncommitted changes of others: see README). */
export function gitHead(): string | null {
  const res = spawnSync("git", ["rev-parse", "HEAD"], { cwd: ROOT, encoding: "utf8" });
  return res.status === 0 ? res.stdout.trim() : null;
}

/**
 * The commit (and uncommitted source changes) the build was made from: build-info.json of a pinned
 * build (experiments/freeze.sh), else the repository's HEAD and working tree now.
 */
export function buildInfo(): { git_commit: string | null; git_dirty_sources: string[] } {
  const info = join(BUILD, "build-info.json");
  if (existsSync(info)) {
    const b = JSON.parse(readFileSync(info, "utf8")) as { commit: string; dirty_sources: string[] };
    return { git_commit: b.commit, git_dirty_sources: b.dirty_sources };
  }
  return { git_commit: gitHead(), git_dirty_sources: gitDirtySources() };
}

/** Uncommitted changes under src/ and assembly/ when the results were written (others' work in progress). */
export function gitDirtySources(): string[] {
  const res = spawnSync("git", ["status", "--short", "src", "assembly"], { cwd: ROOT, encoding: "utf8" });
  return res.status === 0 ? res.stdout.split("\n").filter((l) => l.trim() !== "") : [];
}

export function writeResult(file: string, value: Record<string, unknown>): string {
  mkdirSync(paths.results, { recursive: true });
  const path = join(paths.results, file);
  writeFileSync(
    path,
    JSON.stringify(
      {
        ...value,
        ...buildInfo(),
        build_hash: buildHash(),
        build_dir: relative(ROOT, BUILD) || ".",
      },
      null,
      2,
    ) + "\n",
  );
  return path;
}

export function writeJsonl(file: string, rows: Row[]): string {
  mkdirSync(paths.results, { recursive: true });
  const path = join(paths.results, file);
  writeFileSync(path, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
  return path;
}

export function writeText(file: string, text: string): string {
  mkdirSync(paths.results, { recursive: true });
  const path = join(paths.results, file);
  writeFileSync(path, text);
  return path;
}

/** "0.312 [0.290, 0.335]" from an EvalResult metric and its interval. */
export function cell(metrics: Record<string, number>, key: string): string {
  const v = metrics[key];
  if (v === undefined || !Number.isFinite(v)) return "–";
  const lo = metrics[`${key}/ci_low`];
  const hi = metrics[`${key}/ci_high`];
  return Number.isFinite(lo) && Number.isFinite(hi)
    ? `${v.toFixed(3)} [${lo.toFixed(3)}, ${hi.toFixed(3)}]`
    : v.toFixed(3);
}

export function markdownTable(header: string[], rows: (string | number)[][]): string {
  const fmt = (x: string | number) => (typeof x === "number" ? (Number.isFinite(x) ? String(x) : "–") : x);
  return [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.map(fmt).join(" | ")} |`),
  ].join("\n");
}

/** Wilson 95% interval of a proportion k/n. */
export function wilson(k: number, n: number): [number, number] {
  if (n === 0) return [NaN, NaN];
  const z = 1.96;
  const p = k / n;
  const den = 1 + (z * z) / n;
  const mid = (p + (z * z) / (2 * n)) / den;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / den;
  return [Math.max(0, mid - half), Math.min(1, mid + half)];
}

/** "0.433 [0.31, 0.56]": a share of n updates with its Wilson interval. */
export function shareCell(rate: number, n: number): string {
  const [lo, hi] = wilson(Math.round(rate * n), n);
  return `${rate.toFixed(3)} [${lo.toFixed(2)}, ${hi.toFixed(2)}]`;
}

/** "0.330 [0.321, 0.339]": mean over seeds with the 95% t-interval over seeds. */
export function seedCell(xs: number[]): string {
  const ys = xs.filter((x) => Number.isFinite(x));
  if (ys.length === 0) return "–";
  const m = ys.reduce((s, x) => s + x, 0) / ys.length;
  const ci = meanCI(ys);
  return ci ? `${m.toFixed(3)} [${ci[0].toFixed(3)}, ${ci[1].toFixed(3)}]` : m.toFixed(3);
}

/** "+0.012 [−0.004, 0.028]": difference of seed means with its Welch interval. */
export function diffCell(xs: number[], ys: number[]): string {
  const w = welchCI(xs, ys);
  if (!w) return "–";
  const sign = (x: number) => (x >= 0 ? "+" : "") + x.toFixed(3);
  return `${sign(w.diff)} [${w.ci[0].toFixed(3)}, ${w.ci[1].toFixed(3)}]`;
}

/** Metric columns of a table: avg@1, then pass@k and maj@k for k > 1. */
export function shownMetrics(metrics: Record<string, number>): string[] {
  const keys = Object.keys(metrics).filter((k) => !k.includes("/"));
  return [
    "avg@1",
    ...keys.filter((k) => k.startsWith("pass@") && k !== "pass@1"),
    ...keys.filter((k) => k.startsWith("maj@") && k !== "maj@1"),
  ];
}

/** Reads a results JSONL written earlier (for --tables-only). */
export function readJsonl(file: string): Row[] {
  return readFileSync(join(paths.results, file), "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as Row);
}

/** Reads a results JSON written earlier (for --tables-only). */
export function readResult(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(paths.results, file), "utf8")) as Record<string, unknown>;
}

export function log(line: string): void {
  process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

/**
 * The clock of one experiment, started when it is made: seconds since then, and the fields every
 * results file starts with (name, scale, the command that reproduces it, wall time, load at start).
 */
export function experimentClock(experiment: string): {
  seconds: () => number;
  header: (scale: string) => Record<string, unknown>;
} {
  const t0 = performance.now();
  const load = uptimeLoad();
  const seconds = () => (performance.now() - t0) / 1000;
  return {
    seconds,
    header: (scale) => ({
      experiment,
      scale,
      command: `node dist/experiments/${experiment}.js ${process.argv.slice(2).join(" ")}`.trim(),
      seconds: round(seconds(), 0),
      load_average_at_start: load,
    }),
  };
}

export function uptimeLoad(): number[] {
  try {
    return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).map(Number);
  } catch {
    return [];
  }
}
