/**
 * The miniature set-up of the result experiments (swap, team-vs-single, ablations, certificate):
 * the task, the model sizes, pretraining of base agents with `sat pretrain`, the RL settings of
 * `sat train`, and evaluation on one fixed set of held-out prompts. Each experiment has a full
 * scale and a `--quick` scale (tiny pretraining, two stages, a few prompts: what the tests run).
 *
 * Task: `multistep` at difficulty 3 (three + − × operations, one intermediate result per line) in a
 * relay of three agents with at most 12 tokens per turn: a turn holds about one line, so each agent
 * naturally does one step of the chain and the last one writes the answer.
 */
import { existsSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { createEngine, type FastEngine } from "../src/engine/engine.js";
import { loadModel } from "../src/model/checkpoint.js";
import { CharTokenizer } from "../src/model/tokenizer.js";
import { readSafetensors } from "../src/model/safetensors.js";
import { getTask, makeProblems, type Problem, type TaskFamily } from "../src/tasks/index.js";
import { ModelMember } from "../src/team/member.js";
import type { TeamMember } from "../src/contracts/member.js";
import { evaluateTeam, type EvalOptions, type EvalResult } from "../src/eval/evaluate.js";
import { markdownOf, type ExperimentTable } from "../src/report/experiment.js";
import { ROOT, round, satRun, writeResult, writeText, type CliArgs } from "./lib.js";

export const TASK = "multistep";
export const DIFFICULTY = 3;
export const MAX_TURN_TOKENS = 12;
export const MAX_COMPLETION = 40;
export const MAX_PROMPT = 24;
export const N_AGENTS = 3;
/** Trust-region radius of SAT and the Stage-0 radius (the paper's δ = δ0 = 0.01). */
export const DELTA = 0.01;
export const LR = 1e-4;
/** Seed of the held-out evaluation prompts and sampling (fixed, independent of training seeds). */
export const EVAL_SEED = 20260;

export interface Scale {
  name: "full" | "quick";
  pretrainSteps: number;
  stages: number;
  seeds: number[];
  promptsPerStep: number;
  n: number;
  miniBatch: number;
  evalPrompts: number;
  evalN: number;
  ks: number[];
}

export const FULL: Scale = {
  name: "full",
  pretrainSteps: 2000,
  stages: 30,
  seeds: [1, 2, 3, 4, 5],
  promptsPerStep: 16,
  n: 8,
  miniBatch: 8,
  evalPrompts: 400,
  evalN: 8,
  ks: [1, 4, 8],
};

export const QUICK: Scale = {
  name: "quick",
  pretrainSteps: 30,
  stages: 2,
  seeds: [1, 2],
  promptsPerStep: 4,
  n: 4,
  miniBatch: 2,
  evalPrompts: 12,
  evalN: 4,
  ks: [1, 4],
};

/** The scale of a run: --quick or full, with --seeds/--stages/--eval-prompts/--eval-n given explicitly on top. */
export function scaleOf(args: CliArgs): Scale {
  const s = { ...(args.quick ? QUICK : FULL) };
  if (args.explicit.has("--seeds")) s.seeds = args.seeds;
  if (args.explicit.has("--stages")) s.stages = args.stages;
  if (args.explicit.has("--eval-prompts")) s.evalPrompts = args.evalPrompts;
  if (args.explicit.has("--eval-n")) s.evalN = args.evalN;
  s.ks = s.ks.filter((k) => k <= s.evalN);
  return s;
}

/** Model sizes by name: `model.*` overrides of `sat pretrain` (GPT-2 style, 4 heads). */
export const SIZES: Record<string, string[]> = {
  nano: ["model.preset=nano"], // d 64, 2 layers
  micro: ["model.preset=micro"], // d 128, 4 layers
  "d96-l3": ["model.preset=nano", "model.d_model=96", "model.n_layers=3"],
  "d136-l4": ["model.preset=nano", "model.d_model=136", "model.n_layers=4"],
};

const taskSets = [
  `tasks.name=${TASK}`,
  `tasks.difficulty=${DIFFICULTY}`,
  `rollout.max_prompt_length=${MAX_PROMPT}`,
  `rollout.max_completion_length=${MAX_COMPLETION}`,
  `team.max_turn_tokens=${MAX_TURN_TOKENS}`,
  "run.threads=1",
];

export interface BaseAgents {
  size: string;
  /** Model directories (agents/agent-<i>/ of the pretraining run), relative to the repository root. */
  dirs: string[];
  params: number;
  /** Tokens of the supervised batches (padding excluded), summed over agents. */
  tokens: number;
  seconds: number;
  command: string;
  /** Held-out greedy accuracy of each agent at the end of pretraining. */
  accuracy: number[];
}

/** Parameters of a model directory (the element count of every tensor in model.safetensors). */
export function paramCount(dir: string): number {
  let n = 0;
  for (const t of readSafetensors(join(resolve(ROOT, dir), "model.safetensors")).tensors.values())
    n += t.shape.reduce((a, b) => a * b, 1);
  return n;
}

/**
 * `agents` base agents of a size, pretrained with `sat pretrain` on the task's worked solutions for
 * a fixed number of steps (no early stop, so every size sees the same data and tokens: the data
 * stream depends on the seed only). Shared by every experiment under runs/experiments/bases/.
 */
export function pretrainBase(
  size: string,
  seed: number,
  scale: Scale,
  reuse: boolean,
  agents = 1,
): BaseAgents {
  const sets = [
    ...taskSets,
    ...SIZES[size],
    `pretrain.agents=${agents}`,
    `pretrain.steps=${scale.pretrainSteps}`,
    "pretrain.target_accuracy=null",
    `pretrain.eval_steps=${Math.max(1, scale.pretrainSteps)}`,
    `eval.n_prompts=${Math.min(200, scale.evalPrompts)}`,
    "run.save_steps=-1",
    "run.save_interval_s=0",
    `run.seed=${seed}`,
  ];
  const name = `${size}-x${agents}-s${seed}-${scale.pretrainSteps}`;
  const r = satRun("pretrain", "bases", name, sets, reuse);
  const dirs = Array.from({ length: agents }, (_, i) => relative(ROOT, join(r.dir, "agents", `agent-${i}`)));
  for (const d of dirs)
    if (!existsSync(join(ROOT, d, "model.safetensors")))
      throw new Error(`${name}: no pretrained agent in ${d}`);
  const lines = readFileSync(join(r.dir, "pretrain.jsonl"), "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as { num_tokens?: number });
  const evals = readFileSync(join(r.dir, "eval.jsonl"), "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as { name: string; step: number; "avg@1": number });
  const accuracy = dirs.map((_, i) => {
    const rows = evals.filter((e) => e.name === `pretrain-agent-${i}`);
    return rows.length > 0 ? rows[rows.length - 1]["avg@1"] : NaN;
  });
  return {
    size,
    dirs,
    params: paramCount(dirs[0]),
    tokens: lines.reduce((s, l) => s + (l.num_tokens ?? 0), 0),
    seconds: round(r.seconds, 1),
    command: r.command,
    accuracy,
  };
}

/** `sat train` overrides of the miniature set-up: SAT defaults of the project, δ = 0.01, lr 1e-4. */
export function trainSets(scale: Scale, seed: number, agents: string[], stages = scale.stages): string[] {
  return [
    ...taskSets,
    `rollout.prompts_per_step=${scale.promptsPerStep}`,
    `rollout.n=${scale.n}`,
    "rollout.temperature=1",
    `team.n_agents=${N_AGENTS}`,
    "team.protocol=relay",
    "team.rounds=1",
    `team.agent_checkpoints=${JSON.stringify(agents)}`,
    `algo.kl_radius=${DELTA}`,
    "algo.ppo_epochs=2",
    `algo.ppo_mini_batch_size=${scale.miniBatch}`,
    `optim.lr=${LR}`,
    "algo.cert_prompts=0",
    // The run's own evaluations are a sanity check; every run is evaluated again on the experiment's
    // common held-out prompts.
    "eval.before_train=false",
    `eval.n_prompts=${Math.min(32, scale.evalPrompts)}`,
    "eval.n=1",
    "eval.k=[1]",
    "eval.bootstrap_samples=0",
    "run.save_steps=-1",
    "run.save_interval_s=0",
    `run.max_steps=${stages}`,
    `run.seed=${seed}`,
  ];
}

export interface MiniEvaluator {
  tok: CharTokenizer;
  task: TaskFamily;
  problems: Problem[];
  engine: FastEngine;
  opts: EvalOptions;
  /**
   * A fresh engine for the next evaluation: models and decoders are not freed one by one, so a
   * process that evaluates many teams would otherwise fill the engine's 4 GiB heap.
   */
  renew(): Promise<void>;
  close(): Promise<void>;
}

export async function makeMiniEvaluator(scale: Scale): Promise<MiniEvaluator> {
  const tok = new CharTokenizer();
  const task = getTask(TASK);
  const problems = makeProblems(task, {
    split: "test",
    n: scale.evalPrompts,
    seed: EVAL_SEED,
    difficulty: DIFFICULTY,
  });
  const opts: EvalOptions = {
    protocol: "relay",
    rounds: 1,
    maxTurnTokens: MAX_TURN_TOKENS,
    maxCompletionLength: MAX_COMPLETION,
    temperature: 1,
    topP: 1,
    n: scale.evalN,
    k: scale.ks,
    bootstrap: 1000,
    seed: EVAL_SEED,
  };
  const ev: MiniEvaluator = {
    tok,
    task,
    problems,
    engine: await createEngine({ threads: 1 }),
    opts,
    renew: async () => {
      await ev.engine.close();
      ev.engine = await createEngine({ threads: 1 });
    },
    close: () => ev.engine.close(),
  };
  return ev;
}

export function loadMember(ev: MiniEvaluator, dir: string): ModelMember {
  return new ModelMember(loadModel(resolve(ROOT, dir), ev.engine, ev.tok));
}

/**
 * A team (or one model, which then takes `N_AGENTS` turns of its own: the team's turn budget) in
 * the relay on the common held-out prompts: avg@1, pass@k, maj@k with bootstrap intervals.
 */
export async function evalMembers(
  ev: MiniEvaluator,
  members: TeamMember[],
  name: string,
): Promise<EvalResult> {
  return evaluateTeam(members, ev.tok, ev.task, ev.problems, {
    ...ev.opts,
    rounds: Math.ceil(N_AGENTS / members.length),
    name,
    perAgent: members.length > 1,
  });
}

export async function evalDirs(ev: MiniEvaluator, dirs: string[], name: string): Promise<EvalResult> {
  await ev.renew();
  return evalMembers(
    ev,
    dirs.map((d) => loadMember(ev, d)),
    name,
  );
}

/** The agent directories of a team checkpoint. */
export function teamDirs(checkpoint: string, n = N_AGENTS): string[] {
  return Array.from({ length: n }, (_, i) => relative(ROOT, join(checkpoint, `agent-${i}`)));
}

/** The numbers of one evaluation that go into the results. */
export function evalNumbers(r: EvalResult): Record<string, unknown> {
  return {
    name: r.name,
    samples_per_prompt: r.n,
    prompts: r.numPrompts,
    metrics: Object.fromEntries(Object.entries(r.metrics).map(([k, v]) => [k, round(v)])),
    per_agent: r.perAgent.map((a) => round(a.soloAccuracy)),
    tokens_per_answer: round(r.tokens / (r.n * r.numPrompts), 2),
    seconds: round(r.seconds, 1),
  };
}

/** Training summary of a run directory: stages, generated tokens, training seconds. */
export function runCost(runDir: string): { stages: number; tokens: number; seconds: number } {
  const rows = readFileSync(join(runDir, "stages.jsonl"), "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as Record<string, number>);
  return {
    stages: rows.length,
    tokens: rows.length > 0 ? rows[rows.length - 1].num_tokens : 0,
    seconds: round(
      rows.reduce((s, r) => s + (r["timing_s/step"] ?? 0), 0),
      1,
    ),
  };
}

/**
 * Writes results/<name>.json (the results with their tables: what `sat report` renders) and
 * results/<name>.md (the same tables as markdown, with the verdicts and the wall time).
 */
export function writeOutputs(
  name: string,
  result: Record<string, unknown> & { tables: ExperimentTable[] },
): void {
  // A statistic that does not exist (an interval of one seed, a ratio over a zero gain) is null.
  for (const t of result.tables)
    t.rows = t.rows.map((r) => r.map((c) => (typeof c === "number" && !Number.isFinite(c) ? null : c)));
  writeResult(`${name}.json`, result);
  const md: string[] = [];
  if (typeof result.seconds === "number")
    md.push(`Wall time ${(result.seconds / 60).toFixed(1)} min (\`${String(result.command ?? "")}\`).\n`);
  for (const t of result.tables) {
    md.push(`### ${t.title}\n`);
    if (t.caption) md.push(`${t.caption}\n`);
    md.push(markdownOf(t) + "\n");
  }
  writeText(`${name}.md`, md.join("\n"));
}

type Json = Record<string, unknown>;
const numOr = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** stages.jsonl of a run directory. */
export function stagesOf(runDir: string): Json[] {
  return readFileSync(join(runDir, "stages.jsonl"), "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as Json);
}

/** Per stage: the measured held-out change with its interval and standard error, and the certificate. */
export function stageSummaries(stages: Json[], tags: Json): Json[] {
  return stages.map((s) => {
    const lo = numOr(s["cert/improvement_ci_low"]);
    const hi = numOr(s["cert/improvement_ci_high"]);
    return {
      ...tags,
      step: s.step,
      reward: numOr(s["reward/mean"]),
      tokens: numOr(s["rollout/generated_tokens"]),
      improvement: numOr(s["cert/improvement"]),
      ci_low: lo,
      ci_high: hi,
      se: lo !== null && hi !== null ? (hi - lo) / (2 * 1.959963984540054) : null,
      violation: numOr(s["cert/monotonicity_violation"]),
      lower_bound: numOr(s["cert/lower_bound"]),
      cpo_bound: numOr(s["cert/cpo_bound"]),
      surrogate_sum: numOr(s["cert/surrogate_sum"]),
      occupancy_penalty: numOr(s["cert/occupancy_penalty"]),
      cpo_occupancy_penalty: numOr(s["cert/cpo_occupancy_penalty"]),
      bias_penalty: numOr(s["cert/bias_penalty"]),
      sample_penalty: numOr(s["cert/sample_penalty"]),
      gamma: numOr(s["cert/gamma"]),
      a_max: numOr(s["cert/a_max"]),
      gain_in_z_units: numOr(s["cert/gain_in_z_units"]),
    };
  });
}

/** Per stage and agent: position in σ, whether the full step left δ, candidates outside δ ÷ tried, acceptance. */
export function agentSummaries(stages: Json[], tags: Json): Json[] {
  const out: Json[] = [];
  for (const s of stages)
    for (const a of (s.agents as Json[] | undefined) ?? []) {
      const backtracks = numOr(a["trust_region/backtracks"]) ?? 0;
      const accepted = numOr(a["trust_region/accepted"]);
      out.push({
        ...tags,
        step: s.step,
        agent: a.agent,
        position: a["order/position"],
        kl_radius: numOr(a["trust_region/kl_radius"]),
        kl_quantile: numOr(a["trust_region/kl_quantile"]),
        kl_quantile_full: numOr(a["trust_region/kl_quantile_full"]),
        first_step_violation: numOr(a["trust_region/violation"]),
        violation_rate: numOr(a["trust_region/violation_rate"]),
        candidates: accepted === 1 ? backtracks + 1 : backtracks,
        accepted,
        kl_coef: numOr(a["actor/kl_coef"]),
      });
    }
  return out;
}
