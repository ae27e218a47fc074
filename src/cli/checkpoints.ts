/**
 * Command-line checks of checkpoint paths (`sat eval --checkpoint`, `sat swap --checkpoint/--with`),
 * made before any output directory is created, so a wrong path fails at once with a message that
 * names its flag and says what the path should hold.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { checkpointProblem, RunDirError, resolveCheckpoint, RUN_FILES } from "../io/rundir.js";
import { UsageError } from "./errors.js";
import { modelWeightsPath } from "../model/checkpoint.js";

const AGENT_DIR = /^agent-\d+$/;
const MODEL_FILE = "model.safetensors";

function agentCount(dir: string): number {
  return readdirSync(dir).filter((d) => AGENT_DIR.test(d)).length;
}

/**
 * A team checkpoint given as `flag`: a dir with agent-<i>/ inside (verified against its manifest
 * when it has one), or a run dir (its newest intact checkpoint; damaged newer ones go to `warn`).
 */
export function teamCheckpointArg(
  path: string,
  flag: string,
  warn: (m: string) => void = () => {},
): { dir: string; agents: number } {
  if (!existsSync(path) || !statSync(path).isDirectory()) {
    throw new UsageError(
      `${flag} ${path}: no such directory; give a team checkpoint (<run>/checkpoints/stage-K) or a run directory`,
    );
  }
  if (agentCount(path) > 0) {
    if (existsSync(join(path, RUN_FILES.manifest))) {
      const problem = checkpointProblem(path);
      if (problem) throw new RunDirError(`${flag} ${path}: ${problem}; give an older checkpoint`, 1);
    }
    return { dir: path, agents: agentCount(path) };
  }
  if (modelWeightsPath(path)) {
    throw new UsageError(
      `${flag} ${path}: a single model, not a team checkpoint; give a directory with agent-<i>/ inside (<run>/checkpoints/stage-K) or a run directory`,
    );
  }
  if (!existsSync(join(path, RUN_FILES.manifest)) && !existsSync(join(path, RUN_FILES.checkpoints))) {
    throw new UsageError(
      `${flag} ${path}: not a team checkpoint (no agent-<i>/) nor a run directory (no ${RUN_FILES.checkpoints}/); give <run>/checkpoints/stage-K or a run directory`,
    );
  }
  const { dir } = resolveCheckpoint(path, flag, warn);
  const agents = agentCount(dir);
  if (agents === 0)
    throw new UsageError(
      `${flag} ${path}: checkpoint ${dir} holds no agent-<i>/ directories; it is not a team checkpoint`,
    );
  return { dir, agents };
}

/** A single model directory (Hugging Face layout) given as `flag`. */
export function modelDirArg(path: string, flag: string): string {
  if (!existsSync(path) || !statSync(path).isDirectory()) {
    throw new UsageError(
      `${flag} ${path}: no such directory; give a model directory (model.safetensors, config.json, tokenizer.json)`,
    );
  }
  if (!modelWeightsPath(path)) {
    const hint =
      agentCount(path) > 0
        ? `; for a team checkpoint give one of its agents, e.g. ${join(path, "agent-0")}`
        : "";
    throw new UsageError(
      `${flag} ${path}: no ${MODEL_FILE} there; give a model directory (model.safetensors, config.json, tokenizer.json)${hint}`,
    );
  }
  return path;
}
