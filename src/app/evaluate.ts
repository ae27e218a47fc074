/**
 * `sat eval`: evaluates a team checkpoint on held-out prompts (avg@k, pass@k, maj@k with bootstrap
 * intervals, per-agent solo accuracy), optionally next to a single-model baseline at a matched
 * sample budget, and appends the rows to `eval.jsonl`.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { loadModel, modelWeightsPath } from "../model/checkpoint.js";
import { ModelMember } from "../team/member.js";
import { evaluateMatchedBudget, evaluateTeam, evalRows, type EvalResult } from "../eval/evaluate.js";
import type { ResolvedConfig } from "../config/schema.js";
import type { Progress } from "../io/progress.js";
import type { RunDir } from "../io/rundir.js";
import type { JsonlWriter } from "../io/jsonl.js";
import { resolveCheckpoint } from "../io/rundir.js";
import { engineOf, evalOptionsOf, taskOf, teamTokenizer } from "./setup.js";
import { checkpointVersions, heldOutProblems, longestPrompt, memoryBudget } from "./train.js";
import { remoteMember, rolloutServerOf } from "./rollout-server.js";
import { checkEvalMemory, evalShapeOf, modelDims } from "./memory.js";

/** Agent directories of a team checkpoint (`agent-0`, `agent-1`, …). */
export function agentDirsOf(checkpointDir: string): string[] {
  if (!existsSync(checkpointDir)) throw new Error(`${checkpointDir}: checkpoint not found`);
  const dirs = readdirSync(checkpointDir)
    .filter((d) => /^agent-\d+$/.test(d))
    .sort((a, b) => Number(a.slice(6)) - Number(b.slice(6)))
    .map((d) => join(checkpointDir, d));
  if (dirs.length === 0)
    throw new Error(`${checkpointDir}: no agent-<i>/ directories (not a team checkpoint)`);
  return dirs;
}

export interface EvalRequest {
  checkpoint: string; // team checkpoint dir or run dir (newest checkpoint)
  name: string;
  baseline?: string; // single-model checkpoint (an agent dir, or a team checkpoint whose agent-0 is used)
}

function resolveTeamDir(path: string): string {
  if (existsSync(join(path, "agent-0"))) return path;
  return resolveCheckpoint(path).dir;
}

/**
 * `openRun` is called once the models have loaded, so a bad checkpoint leaves no run directory
 * behind.
 */
export async function runEval(
  cfg: ResolvedConfig,
  openRun: () => RunDir,
  req: EvalRequest,
  progress: Progress,
): Promise<EvalResult[]> {
  const teamDir = resolveTeamDir(req.checkpoint);
  const agentDirs = agentDirsOf(teamDir);
  const baselineDir = req.baseline
    ? modelWeightsPath(req.baseline)
      ? req.baseline
      : agentDirsOf(resolveTeamDir(req.baseline))[0]
    : null;
  const tok = teamTokenizer(cfg, [
    ...agentDirs.map((dir, i) => ({ label: `--checkpoint agent-${i}`, dir })),
    ...(baselineDir ? [{ label: "--baseline", dir: baselineDir }] : []),
  ]);
  const task = await taskOf(cfg, tok);
  const engine = await engineOf(cfg);
  let log: JsonlWriter | null = null;
  try {
    // With a rollout server, served agents sample there, at the checkpoint's (fixed) versions.
    const server = rolloutServerOf(cfg);
    const versions = server ? checkpointVersions(teamDir, agentDirs.length) : [];
    const models = agentDirs.map((d) => loadModel(d, engine, tok));
    const members = models.map((model, a) => {
      const local = new ModelMember(model);
      return server?.serves(a) ? remoteMember(server, a, local.model, tok, () => versions[a], false) : local;
    });
    const single = baselineDir ? new ModelMember(loadModel(baselineDir, engine, tok)) : null;
    checkEvalMemory(
      modelDims(models[0].cfg, models[0].params.length),
      evalShapeOf(cfg, members.length, longestPrompt(cfg, task, tok)),
      memoryBudget(cfg),
    );
    log = openRun().openEval();
    const problems = heldOutProblems(cfg, task);
    const opts = evalOptionsOf(cfg, members.length);
    const results: EvalResult[] = [];
    const bar = progress.phase("eval", single ? 2 : 1);
    results.push(await evaluateTeam(members, tok, task, problems, { ...opts, name: req.name }));
    bar.tick(1, results[0].tokens);
    if (single) {
      const r = await evaluateMatchedBudget(
        single,
        tok,
        task,
        problems,
        { ...evalOptionsOf(cfg, 1), name: "single" },
        members.length,
      );
      results.push(r);
      bar.tick(1, r.tokens);
    }
    bar.done();
    const step = Number(/stage-(\d+)/.exec(teamDir)?.[1] ?? 0);
    for (const row of evalRows(step, results, task.name)) log.append(row);
    return results;
  } finally {
    log?.close();
    await engine.close();
  }
}
