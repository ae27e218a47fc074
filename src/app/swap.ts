/**
 * `sat swap`: plug-and-play upgrade of one agent (sat-method §5). Stage 0 puts the new model inside
 * the incumbent's δ0 trust region state by state (a projected member that mixes both models at
 * decode time). The swapped team is evaluated as it is; with `distill`, the new model is then
 * trained towards the projection on the states the team visits and, when the result passes the
 * trust-region check, written as a plain agent of a new team checkpoint that `sat train` continues
 * from (the other agents untouched).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { Rng } from "../engine/rng.js";
import { loadModel, saveModel } from "../model/checkpoint.js";
import { makeProblems } from "../tasks/index.js";
import { rolloutTeam, type TeamMember } from "../team/rollout.js";
import { ModelMember } from "../team/member.js";
import { LmPolicy } from "../team/lm-policy.js";
import { ProjectedMember, distillProjection, type DistillResult } from "../swap/projected-member.js";
import type { StateRef } from "../algorithm/index.js";
import { evaluateTeam, evalRows, type EvalResult } from "../eval/evaluate.js";
import type { ResolvedConfig } from "../config/schema.js";
import type { Progress } from "../io/progress.js";
import type { RunDir } from "../io/rundir.js";
import type { JsonlWriter } from "../io/jsonl.js";
import { agentDirsOf } from "./evaluate.js";
import { heldOutProblems } from "./train.js";
import { engineOf, evalOptionsOf, lmOptimOf, rolloutOptionsOf, taskOf, teamTokenizer } from "./setup.js";

export interface SwapRequest {
  checkpoint: string; // team checkpoint dir (agent-<i>/ inside)
  agent: number;
  replacement: string; // model dir of the new agent
  delta0: number;
  distill: boolean;
}

export interface SwapResult {
  evals: EvalResult[];
  projectedFrac: number; // share of the new agent's decoded states that needed projection
  distill: DistillResult | null;
  teamDir: string | null; // the new team checkpoint when distillation was accepted
}

/** `openRun` is called once every model has loaded, so bad inputs leave no run directory behind. */
export async function runSwap(
  cfg: ResolvedConfig,
  openRun: () => RunDir,
  req: SwapRequest,
  progress: Progress,
): Promise<SwapResult> {
  const dirs = agentDirsOf(req.checkpoint);
  if (!(Number.isInteger(req.agent) && req.agent >= 0 && req.agent < dirs.length)) {
    throw new Error(`--agent ${req.agent}: the team in ${req.checkpoint} has agents 0..${dirs.length - 1}`);
  }
  const tok = teamTokenizer(cfg, [
    ...dirs.map((dir, i) => ({ label: `--checkpoint agent-${i}`, dir })),
    { label: "--with", dir: req.replacement },
  ]);
  const task = await taskOf(cfg, tok);
  const engine = await engineOf(cfg);
  let evalLog: JsonlWriter | null = null;
  try {
    const models = dirs.map((d) => loadModel(d, engine, tok));
    const incumbent = models[req.agent];
    const pre = loadModel(req.replacement, engine, tok);
    const projected = new ProjectedMember(pre, incumbent, req.delta0, cfg.rollout.temperature);
    const run = openRun();
    evalLog = run.openEval();
    const team: TeamMember[] = models.map((m, i) => (i === req.agent ? projected : new ModelMember(m)));
    const problems = heldOutProblems(cfg, task);
    const opts = evalOptionsOf(cfg);
    const evals = [
      await evaluateTeam(
        models.map((m) => new ModelMember(m)),
        tok,
        task,
        problems,
        { ...opts, name: "before swap" },
      ),
      await evaluateTeam(team, tok, task, problems, { ...opts, name: `swap agent ${req.agent} (stage 0)` }),
    ];
    const projectedFrac = projected.counters.states
      ? projected.counters.projected / projected.counters.states
      : 0;
    progress.log(
      `stage 0: the new agent needed projection at ${(100 * projectedFrac).toFixed(1)}% of its states (max KL to the incumbent ${projected.counters.klMax.toExponential(2)} ≤ δ0 = ${req.delta0})`,
    );
    let distill: DistillResult | null = null;
    let teamDir: string | null = null;
    if (req.distill) {
      const train = makeProblems(task, {
        split: "train",
        n: cfg.swap.distill_prompts ?? cfg.rollout.prompts_per_step * 4,
        seed: new Rng(cfg.run.seed).fork("swap").seed,
        difficulty: cfg.tasks.difficulty ?? undefined,
      });
      const trajs = await rolloutTeam(
        team,
        tok,
        train,
        cfg.rollout.n,
        rolloutOptionsOf(cfg),
        task.verify,
        new Rng(cfg.run.seed).fork("swap-rollout"),
      );
      const states: StateRef[] = [];
      trajs.forEach((t, i) => t.owner.forEach((o, s) => o === req.agent && states.push({ traj: i, t: s })));
      const temperature = cfg.rollout.temperature;
      const student = new LmPolicy(pre, temperature, {
        ...lmOptimOf(cfg),
        lr: cfg.swap.distill_lr ?? cfg.optim.lr,
      });
      distill = distillProjection(
        student,
        new LmPolicy(incumbent, temperature, lmOptimOf(cfg)),
        req.delta0,
        trajs,
        states,
        {
          epochs: cfg.swap.distill_epochs,
          miniBatch: cfg.algo.ppo_mini_batch_size * cfg.rollout.n,
          klQuantile: cfg.algo.kl_quantile,
        },
      );
      progress.log(
        `distillation: KL quantile to the incumbent ${distill.klQuantile.toExponential(2)} on ${distill.checkStates} held-out states after ${distill.attempts} attempt(s) (target radius ${distill.kappa}·δ0) → ${distill.accepted ? "accepted: the new agent is a plain member of " + join(run.dir, "team") + ", which sat train continues from" : "rejected (kept the projected member)"}`,
      );
      if (distill.accepted) {
        teamDir = join(run.dir, "team");
        models[req.agent] = pre;
        models.forEach((m, i) => {
          const d = join(teamDir!, `agent-${i}`);
          mkdirSync(d, { recursive: true });
          saveModel(d, m, tok);
        });
        evals.push(
          await evaluateTeam(
            models.map((m) => new ModelMember(m)),
            tok,
            task,
            problems,
            { ...opts, name: `swap agent ${req.agent} (distilled)` },
          ),
        );
      }
    }
    for (const row of evalRows(0, evals, task.name)) evalLog.append(row);
    return { evals, projectedFrac, distill, teamDir };
  } finally {
    evalLog?.close();
    await engine.close();
  }
}
