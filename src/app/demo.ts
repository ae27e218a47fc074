/**
 * `sat demo`: the whole product in a few minutes on a laptop-class CPU.
 *   1. base agents: pretrained on the default task (reused from a cache when they exist);
 *   2. SAT: a team of copies of the base agent trained for a few stages (this run directory);
 *   3. baseline: one base agent trained alone with GRPO for the same number of stages;
 *   4. evaluation on the same held-out prompts: the starting team, the SAT team, and the single
 *      model at a matched sample budget;
 *   5. the HTML report of the run.
 */
import { join, resolve } from "node:path";
import type { ResolvedConfig } from "../config/schema.js";
import { validateConfig } from "../config/index.js";
import type { Progress } from "../io/progress.js";
import { openRunDir, type RunDir } from "../io/rundir.js";
import { loadModel } from "../model/checkpoint.js";
import { ModelMember } from "../team/member.js";
import {
  evaluateMatchedBudget,
  evaluateTeam,
  evalRows,
  formatEvalTable,
  type EvalResult,
} from "../eval/evaluate.js";
import { writeReport } from "../report/html.js";
import { hashString } from "../engine/rng.js";
import { agentDir, hasPretrainedAgents, runPretrain } from "./pretrain.js";
import { heldOutProblems, runTrain } from "./train.js";
import { engineOf, evalOptionsOf, taskOf, teamTokenizer } from "./setup.js";

export interface DemoResult {
  runDir: string;
  reportPath: string;
  evals: EvalResult[];
  seconds: number;
}

/** Settings of the demo that differ from the library defaults (the user's --set values win). */
export const DEMO_DEFAULTS = {
  model: { preset: "nano", max_seq_len: 64 },
  tasks: { name: "add", difficulty: 2 },
  team: { n_agents: 3, protocol: "relay", rounds: 1, max_turn_tokens: 12 },
  rollout: { prompts_per_step: 8, n: 8, max_prompt_length: 16, max_completion_length: 40 },
  algo: { name: "sat", kl_radius: 0.05, kl_coef: 0.1, ppo_epochs: 2, ppo_mini_batch_size: 4 },
  optim: { lr: 1e-4 },
  pretrain: { steps: 1000, batch_size: 32, lr: 5e-3, target_accuracy: 0.7, eval_steps: 50 },
  eval: { n_prompts: 200, n: 4, k: [1, 4], temperature: 1, before_train: true },
  run: { max_steps: 12 },
};

function withChanges(cfg: ResolvedConfig, changes: Record<string, Record<string, unknown>>): ResolvedConfig {
  const raw = JSON.parse(JSON.stringify(cfg)) as Record<string, Record<string, unknown>>;
  for (const [section, values] of Object.entries(changes)) raw[section] = { ...raw[section], ...values };
  return validateConfig(raw);
}

/** Where base agents for this pretraining setup are cached (shared by demo runs). */
export function baseCacheDir(cfg: ResolvedConfig, root: string): string {
  const key = hashString(JSON.stringify([cfg.model, cfg.tasks, cfg.pretrain, cfg.run.seed])).toString(16);
  return join(root, `base-${cfg.tasks.name}-${cfg.model.preset}-${key}`);
}

export async function runDemo(
  cfg: ResolvedConfig,
  run: RunDir,
  progress: Progress,
  signal?: AbortSignal,
  cacheRoot = resolve("runs", ".cache"),
): Promise<DemoResult> {
  const t0 = performance.now();
  const n = cfg.team.n_agents;
  // 1. Base agents.
  const baseDir = baseCacheDir(cfg, cacheRoot);
  if (!hasPretrainedAgents(baseDir, 1)) {
    progress.log(
      `pretraining a ${cfg.model.preset} base agent on "${cfg.tasks.name}" (cached in ${baseDir})`,
    );
    const cache = openRunDir(baseDir, { force: true, command: "sat demo (base agent cache)" });
    try {
      await runPretrain(withChanges(cfg, { pretrain: { agents: 1 } }), cache, progress, signal);
    } finally {
      cache.close();
    }
  } else {
    progress.log(`using the cached base agent in ${baseDir}`);
  }
  const base = agentDir(baseDir, 0);
  // 2. SAT team (this run directory).
  const satCfg = withChanges(cfg, {
    team: { agent_checkpoints: Array(n).fill(base) },
    algo: { name: "sat" },
  });
  progress.log(`training a team of ${n} with SAT for ${cfg.run.max_steps} stages`);
  const sat = await runTrain(satCfg, run, progress, signal);
  // 3. Single-model baseline, same stages.
  const singleDir = join(run.dir, "baseline-single");
  const singleCfg = withChanges(cfg, {
    team: { agent_checkpoints: Array(n).fill(base) },
    algo: { name: "single" },
    eval: { before_train: false },
  });
  progress.log(`training the single-model GRPO baseline for ${cfg.run.max_steps} stages`);
  const singleRun = openRunDir(singleDir, { force: true, command: "sat demo (baseline)" });
  const single = await runTrain(singleCfg, singleRun, progress, signal).finally(() => singleRun.close());
  // 4. Side-by-side evaluation on the same prompts.
  const tok = teamTokenizer(cfg, [{ label: "the base agent", dir: base }]);
  const task = await taskOf(cfg, tok);
  const engine = await engineOf(cfg);
  const evalLog = run.openEval();
  try {
    const problems = heldOutProblems(cfg, task);
    const opts = evalOptionsOf(cfg);
    const startTeam = Array.from({ length: n }, () => new ModelMember(loadModel(base, engine, tok)));
    const satTeam = Array.from(
      { length: n },
      (_, i) => new ModelMember(loadModel(join(sat.finalDir, `agent-${i}`), engine, tok)),
    );
    const singleModel = new ModelMember(loadModel(join(single.finalDir, "agent-0"), engine, tok));
    const bar = progress.phase("final evaluation", 3);
    const results = [
      await evaluateTeam(startTeam, tok, task, problems, { ...opts, name: "start" }),
      await evaluateTeam(satTeam, tok, task, problems, { ...opts, name: "sat" }),
      await evaluateMatchedBudget(
        singleModel,
        tok,
        task,
        problems,
        { ...evalOptionsOf(cfg, 1), name: "single (matched budget)" },
        n,
      ),
    ];
    bar.tick(3);
    bar.done();
    for (const row of evalRows(cfg.run.max_steps, results, task.name))
      evalLog.append({ ...row, final: true });
    progress.log(formatEvalTable(results));
    evalLog.close();
    const reportPath = await writeReport(run.dir);
    return { runDir: run.dir, reportPath, evals: results, seconds: (performance.now() - t0) / 1000 };
  } finally {
    evalLog.close();
    await engine.close();
  }
}
