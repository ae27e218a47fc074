/**
 * `sat pretrain`: supervised training of base agents on the task's worked solutions. Writes each
 * agent to `<run>/agents/agent-<i>/` in Hugging Face layout (published atomically when the agent is
 * done), one line per step to `pretrain.jsonl` and the held-out accuracy to `eval.jsonl`.
 *
 * Resumable like `sat train`: checkpoints/stage-<G>/ (G = supervised steps done over all agents)
 * holds the agent in training (weights and optimizer under `agent/`) and `trainer_state.json` (which
 * agent, its step, the data stream and RNG positions, its evaluations, and the finished agents).
 * They are written every run.save_steps steps, once run.save_interval_s seconds have passed, when
 * an agent is done, and on Ctrl-C. `--resume` skips finished agents, continues the one in training
 * bit for bit, and drops the log records after the checkpoint so none is duplicated.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Rng } from "../engine/rng.js";
import { Transformer } from "../model/transformer.js";
import { CheckpointError, loadModel, loadOptimizer, saveModel, saveOptimizer } from "../model/checkpoint.js";
import { makeProblems } from "../tasks/index.js";
import { sftTrain, DEFAULT_SFT, type SftOptions, type SftState } from "../train/sft.js";
import type { AdamWState } from "../engine/adamw.js";
import type { ResolvedConfig } from "../config/schema.js";
import type { Progress } from "../io/progress.js";
import type { JsonlWriter } from "../io/jsonl.js";
import { publishDir, writeFileAtomic } from "../io/atomic.js";
import { PRETRAIN_LOG, RUN_FILES, type CheckpointInfo, type RunDir } from "../io/rundir.js";
import { engineOf, modelConfigOf, taskOf, teamTokenizer } from "./setup.js";
import { SavePolicy } from "./save-policy.js";
import { InterruptedError, TRAINER_STATE_FILE } from "./train.js";

export interface PretrainResult {
  agentDirs: string[];
  accuracies: number[];
  seconds: number;
}

export const AGENTS_DIR = "agents";
/** Inside a pretraining checkpoint: the agent in training. */
const AGENT_IN_TRAINING = "agent";

export function agentDir(runDir: string, i: number): string {
  return join(runDir, AGENTS_DIR, `agent-${i}`);
}

/** True when `runDir` holds `n` pretrained agents. */
export function hasPretrainedAgents(runDir: string, n: number): boolean {
  for (let i = 0; i < n; i++) if (!existsSync(join(agentDir(runDir, i), "model.safetensors"))) return false;
  return true;
}

export function sftOptionsOf(cfg: ResolvedConfig, seed: number): SftOptions {
  return {
    ...DEFAULT_SFT,
    steps: cfg.pretrain.steps,
    batchSize: cfg.pretrain.batch_size,
    lr: cfg.pretrain.lr,
    warmupSteps: Math.min(DEFAULT_SFT.warmupSteps, Math.max(1, Math.floor(cfg.pretrain.steps / 10))),
    difficulty: cfg.tasks.difficulty ?? undefined,
    evalEvery: cfg.pretrain.eval_steps,
    targetAccuracy: cfg.pretrain.target_accuracy ?? 1,
    seed,
  };
}

/** trainer_state.json of a pretraining checkpoint. */
interface PretrainState {
  kind: "pretrain";
  /** Supervised steps done over all agents (the checkpoint's stage number). */
  global_step: number;
  /** The agent in training (== pretrain.agents when all are done). */
  agent: number;
  /** Its state; null when it has not started. */
  sft: SftState | null;
  /** Held-out accuracy of each finished agent. */
  accuracies: number[];
}

function readPretrainState(from: CheckpointInfo): PretrainState {
  const path = join(from.dir, TRAINER_STATE_FILE);
  let s: PretrainState;
  try {
    s = JSON.parse(readFileSync(path, "utf8")) as PretrainState;
  } catch (err) {
    throw new CheckpointError(`${path}: unreadable pretraining state (${(err as Error).message})`);
  }
  if (s?.kind !== "pretrain" || !Number.isInteger(s.agent) || !Array.isArray(s.accuracies))
    throw new CheckpointError(
      `${path}: not a pretraining checkpoint (a sat train run?); resume it with the command that wrote it`,
    );
  return s;
}

/**
 * Which log records a resume from `state` drops: pretrain.jsonl and eval.jsonl rows of later
 * agents, or of the agent in training after its saved step.
 */
function recordAfter(state: PretrainState) {
  const stepOf = (s: SftState | null) => (s ? s.step : 0);
  return (file: string, r: Record<string, unknown>): boolean => {
    let agent: number | null = null;
    if (file === PRETRAIN_LOG && typeof r.agent === "number") agent = r.agent;
    if (file === RUN_FILES.eval && typeof r.name === "string") {
      const m = /^pretrain-agent-(\d+)$/.exec(r.name);
      if (m) agent = Number(m[1]);
    }
    if (agent === null || typeof r.step !== "number") return false;
    return agent > state.agent || (agent === state.agent && r.step > stepOf(state.sft));
  };
}

/**
 * Opens the run directory through `openRun`, which gets the hooks a resume needs: the checkpoint
 * is read (and refused if it is not a pretraining one) before the directory changes, and the
 * records after it are dropped.
 */
export type OpenPretrainRun = (hooks: {
  onResume: (from: CheckpointInfo) => void;
  dropAfterResume: (file: string, r: Record<string, unknown>, from: CheckpointInfo) => boolean;
}) => RunDir;

export async function runPretrain(
  cfg: ResolvedConfig,
  runOrOpen: RunDir | OpenPretrainRun,
  progress: Progress,
  signal?: AbortSignal,
): Promise<PretrainResult> {
  const t0 = performance.now();
  const tok = teamTokenizer(cfg, []);
  const task = await taskOf(cfg, tok);
  // Opened once the task's data have passed their checks, so a bad dataset leaves no directory.
  let resumed: PretrainState | null = null;
  const onResume = (from: CheckpointInfo) => {
    resumed = readPretrainState(from);
  };
  const run =
    typeof runOrOpen === "function"
      ? runOrOpen({ onResume, dropAfterResume: (file, r) => recordAfter(resumed!)(file, r) })
      : runOrOpen;
  if (run.resumeFrom && !resumed) onResume(run.resumeFrom);
  const start: PretrainState = resumed ?? {
    kind: "pretrain",
    global_step: 0,
    agent: 0,
    sft: null,
    accuracies: [],
  };
  if (run.resumeFrom)
    progress.log(`resuming from ${run.resumeFrom.dir} (agent ${start.agent}, step ${start.sft?.step ?? 0})`);
  const engine = await engineOf(cfg);
  let log: JsonlWriter | null = null;
  let evalLog: JsonlWriter | null = null;
  const test = makeProblems(task, {
    split: "test",
    n: Math.min(cfg.eval.n_prompts, 200),
    seed: cfg.run.seed,
    difficulty: cfg.tasks.difficulty ?? undefined,
    testPercent: cfg.tasks.test_percent,
  });
  const result: PretrainResult = { agentDirs: [], accuracies: [...start.accuracies], seconds: 0 };
  for (let i = 0; i < start.agent; i++) result.agentDirs.push(agentDir(run.dir, i));
  const savePolicy = new SavePolicy(cfg.run.save_steps, cfg.run.save_interval_s);
  let globalStep = start.global_step;
  let savedStep = run.resumeFrom?.step ?? -1;
  const save = async (state: PretrainState, model?: Transformer, adam?: AdamWState): Promise<void> => {
    await run.publishCheckpoint(
      state.global_step,
      (dir) => {
        if (model && adam) {
          const d = join(dir, AGENT_IN_TRAINING);
          mkdirSync(d);
          saveModel(d, model, tok);
          saveOptimizer(d, adam);
        }
        writeFileAtomic(join(dir, TRAINER_STATE_FILE), JSON.stringify(state, null, 1) + "\n");
      },
      { keep: cfg.run.save_total_limit },
    );
    savedStep = state.global_step;
    savePolicy.saved();
  };
  try {
    log = run.openLog(PRETRAIN_LOG);
    evalLog = run.openEval();
    for (let i = start.agent; i < cfg.pretrain.agents; i++) {
      const seed = new Rng(cfg.run.seed).fork(`pretrain/${i}`).seed;
      const model = new Transformer(modelConfigOf(cfg, tok.vocabSize), engine, new Rng(seed).fork("init"));
      const opts = sftOptionsOf(cfg, seed);
      let resume: { state: SftState; optimizer: AdamWState } | undefined;
      if (i === start.agent && start.sft) {
        const d = join(run.resumeFrom!.dir, AGENT_IN_TRAINING);
        const saved = loadModel(d, engine, tok);
        if (saved.params.length !== model.params.length)
          throw new CheckpointError(
            `${d}: the saved agent has another architecture than the configured one; resume with the run's own model settings`,
          );
        model.params.set(saved.params);
        resume = { state: start.sft, optimizer: loadOptimizer(d, model.params) };
      }
      const stepBase = globalStep - (resume?.state.step ?? 0);
      const bar = progress.phase(`pretrain agent ${i}`, opts.steps - (resume?.state.step ?? 0));
      const state = (sft: SftState | null, step: number): PretrainState => ({
        kind: "pretrain",
        global_step: step,
        agent: i,
        sft,
        accuracies: [...result.accuracies],
      });
      const r = await sftTrain(model, tok, task, test, opts, {
        signal,
        resume,
        onStep: (s) => {
          bar.tick(1, s.tokens);
          log!.append({
            step: s.step,
            agent: i,
            loss: s.loss,
            learning_rate: s.lr,
            grad_norm: s.gradNorm,
            num_tokens: s.tokens,
            "perf/throughput": s.tokens / s.seconds,
          });
        },
        onEval: (e) => {
          evalLog!.append({
            step: e.step,
            name: `pretrain-agent-${i}`,
            task: task.name,
            protocol: "solo",
            n: 1,
            num_prompts: e.n,
            "avg@1": e.accuracy,
          });
          progress.log(
            `agent ${i} step ${e.step}: held-out greedy accuracy ${(100 * e.accuracy).toFixed(1)}% (${e.n} prompts)`,
          );
        },
        afterStep: async (step, sftState, opt) => {
          globalStep = stepBase + step;
          if (savePolicy.due(step)) await save(state(sftState(), globalStep), model, opt.snapshot());
        },
      });
      bar.done();
      globalStep = stepBase + r.steps;
      if (r.interrupted) {
        if (globalStep > savedStep) await save(state(r.state, globalStep), model, r.optimizer.snapshot());
        throw new InterruptedError(
          `interrupted at agent ${i}, step ${r.steps}; checkpoint ${run.path(`checkpoints/stage-${globalStep}`)} is complete; continue with sat pretrain --resume --output-dir ${run.dir}`,
        );
      }
      const dir = agentDir(run.dir, i);
      await publishDir(dir, (tmp) => saveModel(tmp, model, tok));
      result.agentDirs.push(dir);
      result.accuracies.push(r.finalAccuracy);
      // The agent is done: the next checkpoint starts the next one (no weights needed).
      await save({
        kind: "pretrain",
        global_step: globalStep,
        agent: i + 1,
        sft: null,
        accuracies: [...result.accuracies],
      });
      progress.log(
        `agent ${i}: ${r.steps} steps, held-out greedy accuracy ${(100 * r.finalAccuracy).toFixed(1)}% → ${dir}`,
      );
    }
  } finally {
    log?.close();
    evalLog?.close();
    await engine.close();
  }
  result.seconds = (performance.now() - t0) / 1000;
  return result;
}
