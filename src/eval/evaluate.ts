/**
 * Team evaluation on held-out problems: avg@k, pass@k and maj@k with bootstrap intervals over
 * prompts, every agent's solo accuracy, the matched-budget single-model baseline, eval.jsonl rows
 * and the CLI table.
 *
 * A "sample" of a prompt is one team answer:
 * - relay: one team episode (rollout groups [i·n, (i+1)·n) of problem i);
 * - independent: the majority vote over the agents' g-th answers, g = 0..n−1 (ties to the lowest
 *   agent index), so a prompt still has n team samples.
 * The team rollout consumes `new Rng(seed)` directly, so `rolloutTeam` with that rng replays it.
 */
import { Rng } from "../engine/rng.js";
import type { Tokenizer } from "../model/tokenizer.js";
import type { Problem, TaskFamily } from "../tasks/index.js";
import { rolloutTeam, type Protocol, type RolloutOptions, type TeamMember } from "../team/rollout.js";
import type { TeamTrajectory } from "../team/trajectory.js";
import {
  aggregateMetrics,
  bootstrapCI,
  majorityAnswer,
  mean,
  METRIC_NAMES,
  perPromptMetrics,
  type PromptSamples,
} from "./metrics.js";

export interface EvalOptions {
  protocol: Protocol;
  rounds: number;
  maxTurnTokens: number;
  maxCompletionLength: number;
  temperature: number;
  topP: number;
  /** Samples per prompt (eval.n); at least every k. */
  n: number;
  /** k values (eval.k). */
  k: number[];
  /** Bootstrap resamples of the prompts; 0 = no intervals (NaN bounds). */
  bootstrap: number;
  seed: number;
  /** Run name in tables and eval.jsonl ("start", "sat", "single", …); default "team" / "single". */
  name?: string;
  speakingOrder?: number[];
  /** Interval level, default 0.95. */
  level?: number;
  /** Also measure every agent alone (default true). */
  perAgent?: boolean;
  /** Prompts rolled out together, to bound the KV-cache memory (default 32). */
  promptsPerBatch?: number;
}

export interface AgentScore {
  agent: number;
  soloAccuracy: number;
  ci_low: number;
  ci_high: number;
}

export interface EvalResult {
  name: string;
  protocol: Protocol;
  /** Samples per prompt actually drawn. */
  n: number;
  numPrompts: number;
  /** "avg@k", "pass@k", "maj@k" for each k, each with "<key>/ci_low" and "<key>/ci_high". */
  metrics: Record<string, number>;
  perAgent: AgentScore[];
  /** Model samples behind one team sample: 1 for a team, A for the matched-budget baseline. */
  budgetFactor: number;
  /** Tokens generated (completions, all rollouts of this evaluation). */
  tokens: number;
  seconds: number;
}

function checkOptions(opts: EvalOptions, problems: Problem[]): void {
  if (problems.length === 0) throw new Error("evaluate: no problems to evaluate");
  if (!Number.isInteger(opts.n) || opts.n < 1)
    throw new Error(`evaluate: n (samples per prompt) must be an integer ≥ 1, got ${opts.n}`);
  if (opts.k.length === 0) throw new Error("evaluate: k is empty; give at least one k (e.g. [1])");
  for (const k of opts.k) {
    if (!Number.isInteger(k) || k < 1) throw new Error(`evaluate: every k must be an integer ≥ 1, got ${k}`);
    if (k > opts.n)
      throw new Error(`evaluate: k=${k} exceeds n=${opts.n} samples per prompt; raise eval.n to ${k}`);
  }
}

function rolloutOptions(opts: EvalOptions, protocol: Protocol): RolloutOptions {
  const { rounds, maxTurnTokens, maxCompletionLength, temperature, topP, speakingOrder } = opts;
  return { protocol, rounds, maxTurnTokens, maxCompletionLength, temperature, topP, speakingOrder };
}

/**
 * rolloutTeam over the problems in batches of `promptsPerBatch`, reordered so that the result has
 * the layout of one call: writer blocks (independent) of problem groups of G.
 */
async function rolloutBatched(
  team: TeamMember[],
  tok: Tokenizer,
  problems: Problem[],
  G: number,
  ro: RolloutOptions,
  family: TaskFamily,
  rng: Rng,
  batch: number,
): Promise<TeamTrajectory[]> {
  const writers = ro.protocol === "relay" ? 1 : team.length;
  const blocks: TeamTrajectory[][] = Array.from({ length: writers }, () => []);
  for (let start = 0; start < problems.length; start += batch) {
    const chunk = problems.slice(start, start + batch);
    const trajs = await rolloutTeam(team, tok, chunk, G, ro, family.verify, rng);
    const per = chunk.length * G;
    for (let w = 0; w < writers; w++) {
      for (const t of trajs.slice(w * per, (w + 1) * per))
        blocks[w].push({
          ...t,
          promptId: t.promptId + start,
          groupId: w * problems.length + t.promptId + start,
        });
    }
  }
  return blocks.flat();
}

const isCorrect = (t: TeamTrajectory): number => (t.reward >= 1 ? 1 : 0);
const completionTokens = (ts: TeamTrajectory[]): number =>
  ts.reduce((s, t) => s + t.tokens.length - t.promptLength, 0);

/** An answer is judged by the verifier's reward of a sample that gave it (rewards depend on the answer only). */
function judgeFrom(trajs: TeamTrajectory[]): (answer: string) => boolean {
  const good = new Set<string>();
  for (const t of trajs) if (t.answer !== null && isCorrect(t)) good.add(t.answer);
  return (a) => good.has(a);
}

/** Samples of problem i from one writer block laid out as problem groups of G. */
function groupOf(block: TeamTrajectory[], i: number, G: number): TeamTrajectory[] {
  return block.slice(i * G, (i + 1) * G);
}

function samplesFromGroup(group: TeamTrajectory[]): PromptSamples {
  return { correct: group.map(isCorrect), answers: group.map((t) => t.answer), judge: judgeFrom(group) };
}

/** Team samples of problem i under the independent protocol: vote over the agents' g-th answers. */
function votedSamples(trajs: TeamTrajectory[], A: number, P: number, n: number, i: number): PromptSamples {
  const byAgent = Array.from({ length: A }, (_, a) => groupOf(trajs.slice(a * P * n, (a + 1) * P * n), i, n));
  const judge = judgeFrom(byAgent.flat());
  const answers = Array.from({ length: n }, (_, g) =>
    majorityAnswer(byAgent.map((group) => group[g].answer)),
  );
  return { correct: answers.map((a) => (a !== null && judge(a) ? 1 : 0)), answers, judge };
}

function soloScore(agent: number, perPromptAccuracy: number[], rng: Rng, opts: EvalOptions): AgentScore {
  const ci = bootstrapCI(perPromptAccuracy, rng.fork(`solo/${agent}`), opts.bootstrap, opts.level ?? 0.95);
  return { agent, soloAccuracy: ci.mean, ci_low: ci.low, ci_high: ci.high };
}

/** Evaluates a team on `problems` with opts.n team samples per prompt (see the file header). */
export async function evaluateTeam(
  team: TeamMember[],
  tok: Tokenizer,
  family: TaskFamily,
  problems: Problem[],
  opts: EvalOptions,
): Promise<EvalResult> {
  checkOptions(opts, problems);
  if (team.length === 0) throw new Error("evaluateTeam: the team has no agents");
  const t0 = performance.now();
  const { n } = opts;
  const P = problems.length;
  const A = team.length;
  const batch = opts.promptsPerBatch ?? 32;
  const root = new Rng(opts.seed);
  const trajs = await rolloutBatched(
    team,
    tok,
    problems,
    n,
    rolloutOptions(opts, opts.protocol),
    family,
    new Rng(opts.seed),
    batch,
  );
  let tokens = completionTokens(trajs);
  const prompts: PromptSamples[] = [];
  for (let i = 0; i < P; i++)
    prompts.push(
      opts.protocol === "relay" ? samplesFromGroup(groupOf(trajs, i, n)) : votedSamples(trajs, A, P, n, i),
    );
  const metrics = aggregateMetrics(
    perPromptMetrics(prompts, opts.k),
    root.fork("bootstrap"),
    opts.bootstrap,
    opts.level ?? 0.95,
  );

  const perAgent: AgentScore[] = [];
  if (opts.perAgent ?? true) {
    for (let a = 0; a < A; a++) {
      // Under independent the agents already wrote alone: their blocks of the team rollout are solo runs.
      let solo: TeamTrajectory[];
      if (opts.protocol === "independent") solo = trajs.slice(a * P * n, (a + 1) * P * n);
      else {
        solo = await rolloutBatched(
          [team[a]],
          tok,
          problems,
          n,
          rolloutOptions(opts, "independent"),
          family,
          root.fork(`solo-rollout/${a}`),
          batch,
        );
        tokens += completionTokens(solo);
      }
      const acc = Array.from({ length: P }, (_, i) => mean(groupOf(solo, i, n).map(isCorrect)));
      perAgent.push(soloScore(a, acc, root, opts));
    }
  }
  return {
    name: opts.name ?? "team",
    protocol: opts.protocol,
    n,
    numPrompts: P,
    metrics,
    perAgent,
    budgetFactor: 1,
    tokens,
    seconds: (performance.now() - t0) / 1000,
  };
}

/**
 * Matched-budget baseline: a team of A agents with K samples against one model with A·K samples.
 * The model writes under opts.protocol: `independent` = alone; `relay` = a relay with itself (the
 * protocol a `single` run is trained under, with the team's turn budget).
 * The model draws n·A samples per prompt; its "pass@k" and "maj@k" are pass@(A·k) and maj@(A·k),
 * so each column of the table compares equal sample budgets. avg@k (one sample's accuracy) does
 * not depend on the budget.
 */
export async function evaluateMatchedBudget(
  member: TeamMember,
  tok: Tokenizer,
  family: TaskFamily,
  problems: Problem[],
  opts: EvalOptions,
  teamSize: number,
): Promise<EvalResult> {
  checkOptions(opts, problems);
  if (!Number.isInteger(teamSize) || teamSize < 1)
    throw new Error(`evaluateMatchedBudget: teamSize must be an integer ≥ 1, got ${teamSize}`);
  const t0 = performance.now();
  const n = opts.n * teamSize;
  const P = problems.length;
  const root = new Rng(opts.seed);
  const trajs = await rolloutBatched(
    [member],
    tok,
    problems,
    n,
    rolloutOptions(opts, opts.protocol),
    family,
    new Rng(opts.seed),
    opts.promptsPerBatch ?? 32,
  );
  const prompts = Array.from({ length: P }, (_, i) => samplesFromGroup(groupOf(trajs, i, n)));
  const metrics = aggregateMetrics(
    perPromptMetrics(prompts, opts.k, teamSize),
    root.fork("bootstrap"),
    opts.bootstrap,
    opts.level ?? 0.95,
  );
  const perAgent = [
    soloScore(
      0,
      prompts.map((p) => mean(p.correct)),
      root,
      opts,
    ),
  ];
  return {
    name: opts.name ?? "single",
    protocol: opts.protocol,
    n,
    numPrompts: P,
    metrics,
    perAgent,
    budgetFactor: teamSize,
    tokens: completionTokens(trajs),
    seconds: (performance.now() - t0) / 1000,
  };
}

const finiteOrNull = (v: number): number | null => (Number.isFinite(v) ? v : null);

/** eval.jsonl rows (snake_case, NaN → null); per_agent entries carry the solo accuracy as "avg@1". */
export function evalRows(step: number, results: EvalResult[], task: string): Record<string, unknown>[] {
  return results.map((r) => {
    const row: Record<string, unknown> = {
      step,
      name: r.name,
      task,
      protocol: r.protocol,
      n: r.n,
      num_prompts: r.numPrompts,
    };
    if (r.budgetFactor !== 1) row.budget_factor = r.budgetFactor;
    for (const [key, v] of Object.entries(r.metrics)) row[key] = finiteOrNull(v);
    row.per_agent = r.perAgent.map((a) => ({
      agent: a.agent,
      "avg@1": finiteOrNull(a.soloAccuracy),
      ci_low: finiteOrNull(a.ci_low),
      ci_high: finiteOrNull(a.ci_high),
    }));
    return row;
  });
}

/** Metric keys of the results (no interval keys), ordered avg, pass, maj, then by k. */
function metricColumns(results: EvalResult[]): string[] {
  const keys = new Set<string>();
  for (const r of results) for (const key of Object.keys(r.metrics)) if (!key.includes("/")) keys.add(key);
  const rank = (key: string) => {
    const [name, k] = key.split("@");
    return METRIC_NAMES.indexOf(name as (typeof METRIC_NAMES)[number]) * 1e6 + Number(k);
  };
  return [...keys].sort((a, b) => rank(a) - rank(b));
}

function valueCell(v: number | undefined, lo: number | undefined, hi: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return "–";
  const half =
    lo !== undefined && hi !== undefined && Number.isFinite(lo) && Number.isFinite(hi)
      ? `±${((hi - lo) / 2).toFixed(3)}`
      : "";
  return v.toFixed(3) + half;
}

/** Fixed-width table: one row per run, one column per metric ("value±half-width of the interval"), then solo scores. */
export function formatEvalTable(results: EvalResult[]): string {
  const cols = metricColumns(results);
  const header = ["run", "protocol", "n", ...cols];
  const rows = results.map((r) => [
    r.name,
    r.protocol,
    String(r.n),
    ...cols.map((c) => valueCell(r.metrics[c], r.metrics[`${c}/ci_low`], r.metrics[`${c}/ci_high`])),
  ]);
  const widths = header.map((h, j) => Math.max(h.length, ...rows.map((row) => row[j].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, j) => (j < 2 ? c.padEnd(widths[j]) : c.padStart(widths[j])))
      .join("  ")
      .trimEnd();
  const out = [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)];
  for (const r of results) {
    if (r.perAgent.length === 0) continue;
    out.push(
      `${r.name} solo accuracy: ` +
        r.perAgent
          .map((a) => `agent ${a.agent} ${valueCell(a.soloAccuracy, a.ci_low, a.ci_high)}`)
          .join(", "),
    );
  }
  return out.join("\n");
}
