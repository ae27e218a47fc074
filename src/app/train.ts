/**
 * `sat train`: SAT stages (or a baseline) on a team, logged and checkpointed into a run directory.
 *
 * Run layout: `stages.jsonl` gets one object per stage (team metrics at the top level, per-agent
 * metrics under `agents`), appended and fsynced as the stage ends; `eval.jsonl` the evaluations;
 * `checkpoints/stage-K/` every agent's weights and optimizer state (and, for gae, the critic's under
 * `critic/`) plus `trainer_state.json` (stage index, β per agent, policy versions), published
 * atomically, `latest` updated last.
 * Resuming loads that checkpoint; since every random stream of a stage derives from (seed, stage),
 * a resumed run ends with the same weights, bit for bit, as an uninterrupted one.
 * Checkpoints are written every run.save_steps stages, once run.save_interval_s seconds have passed
 * since the last one, at the end, and on Ctrl-C (after the stage in progress). A stage whose
 * weights come out non-finite stops the run before anything of it is logged or saved.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Rng } from "../engine/rng.js";
import type { Engine } from "../engine/engine.js";
import { Transformer } from "../model/transformer.js";
import {
  CheckpointError,
  loadModel,
  loadOptimizer,
  nonFiniteTensor,
  saveModel,
  saveOptimizer,
} from "../model/checkpoint.js";
import { SafetensorsError } from "../model/safetensors.js";
import type { Tokenizer } from "../model/tokenizer.js";
import { makeProblems, ProblemStream, type Problem, type TaskFamily } from "../tasks/index.js";
import { runStage, stageMetrics, type StageRecord } from "../algorithm/index.js";
import { TeamTrainer, type TeamTrainState } from "../train/team.js";
import { loadCriticInto, saveCritic } from "../team/critic.js";
import { evaluateTeam, evalRows, formatEvalTable, type EvalResult } from "../eval/evaluate.js";
import type { ResolvedConfig } from "../config/schema.js";
import { agentCheckpointOf } from "../config/index.js";
import type { Progress } from "../io/progress.js";
import type { JsonlWriter } from "../io/jsonl.js";
import type { CheckpointInfo, RunDir } from "../io/rundir.js";
import { writeFileAtomic } from "../io/atomic.js";
import type { TorchAgentSource, TorchTeam } from "../backend/torch/team.js";
import { openTorchTeam, saveTorchAgents, torchSourcesOf } from "./torch-team.js";
import {
  engineOf,
  evalOptionsOf,
  lmOptimOf,
  modelConfigOf,
  rolloutOptionsOf,
  stageConfigOf,
  taskOf,
  teamSizeOf,
  teamTokenizer,
} from "./setup.js";
import { rolloutRecordOf, samplerOf } from "./rollout-server.js";
import { SavePolicy } from "./save-policy.js";
import {
  checkEvalMemory,
  checkStageMemory,
  evalShapeOf,
  modelDims,
  stageShapeOf,
  type MemoryBudget,
} from "./memory.js";
import { availableMemory, jsHeapLimit } from "../io/sysmem.js";

export const TRAINER_STATE_FILE = "trainer_state.json";
export const CRITIC_DIR = "critic";

export interface TrainResult {
  steps: number;
  evals: EvalResult[];
  finalDir: string;
  seconds: number;
}

export { teamSizeOf } from "./setup.js";

/** The team's starting models: team.agent_checkpoints[i] when given, else a fresh initialisation. */
export function initialModels(cfg: ResolvedConfig, engine: Engine, tok: Tokenizer): Transformer[] {
  const n = teamSizeOf(cfg);
  const models: Transformer[] = [];
  for (let i = 0; i < n; i++) {
    const path = agentCheckpointOf(cfg, i);
    if (path) {
      // gae needs no value head on the agents: the trainer's separate critic supplies the values.
      models.push(loadStartingAgent(cfg, i, path, engine, tok));
    } else {
      models.push(freshModel(cfg, engine, tok, i));
    }
  }
  return models;
}

/** Agent i's initial model when team.agent_checkpoints gives none (seeded by run.seed and i). */
export function freshModel(cfg: ResolvedConfig, engine: Engine, tok: Tokenizer, i: number): Transformer {
  return new Transformer(modelConfigOf(cfg, tok.vocabSize), engine, new Rng(cfg.run.seed).fork(`init/${i}`));
}

/** team.agent_checkpoints[i], loaded so that any problem is reported under its config key. */
function loadStartingAgent(
  cfg: ResolvedConfig,
  i: number,
  path: string,
  engine: Engine,
  tok: Tokenizer,
): Transformer {
  const key = `team.agent_checkpoints[${i}]`;
  if (!existsSync(path)) {
    throw new CheckpointError(
      `${key}: ${path} does not exist; give a model directory (model.safetensors, config.json, tokenizer.json) such as <pretrain run>/agents/agent-${i}`,
    );
  }
  let model: Transformer;
  try {
    model = loadModel(path, engine, tok);
  } catch (err) {
    if (err instanceof CheckpointError || err instanceof SafetensorsError)
      throw new CheckpointError(`${key}: ${err.message}`);
    throw err;
  }
  // The rollout would silently cut transcripts at the model's context (cf. the model.max_seq_len rule).
  const needed = cfg.rollout.max_prompt_length + cfg.rollout.max_completion_length;
  if (model.cfg.maxSeqLen < needed) {
    throw new CheckpointError(
      `${key}: ${path} has a context of ${model.cfg.maxSeqLen} tokens, less than rollout.max_prompt_length + rollout.max_completion_length = ${needed}; shorten the rollout or use a model with a longer context`,
    );
  }
  return model;
}

/**
 * One stages.jsonl object from a stage record: team metrics flat, per-agent metrics under `agents`
 * (conventions.md §2), plus what only the run knows (wall time, cumulative tokens).
 */
export function stageRow(record: StageRecord, extra: Record<string, unknown>): Record<string, unknown> {
  const row: Record<string, unknown> = { step: record.step + 1, time: Date.now() / 1000, ...extra };
  const agents = new Map<number, Record<string, unknown>>();
  for (const m of stageMetrics(record)) {
    if (m.agent === null) row[m.key] = m.value;
    else {
      if (!agents.has(m.agent)) agents.set(m.agent, { agent: m.agent });
      agents.get(m.agent)![m.key] = m.value;
    }
  }
  row.agents = [...agents.values()].sort((a, b) => (a.agent as number) - (b.agent as number));
  return row;
}

/**
 * Stages that teach the team nothing, worth a console line and a `warnings` entry in the record:
 * every update rejected by the trust region, or every prompt group with equal rewards.
 */
export function stageWarnings(record: StageRecord, step: number): string[] {
  // Equal rewards everywhere also make every update fail (no gain), so that is the one reported.
  if (record.fracZeroStd === 1)
    return [
      `stage ${step}: every prompt group had the same reward for all its samples, so every advantage is zero and nothing was learned; change tasks.difficulty or raise rollout.n`,
    ];
  const agents = record.agents;
  if (record.algo === "sat" && agents.length > 0 && agents.every((a) => a.accepted === 0))
    return [
      `stage ${step}: every agent update was rejected by the trust region (null updates, the team is unchanged); lower optim.lr or raise algo.kl_radius`,
    ];
  return [];
}

/** A Ctrl-C that stopped the run; exit code 130, the message says where it stopped. */
export class InterruptedError extends Error {
  readonly exitCode = 130;
  override name = "InterruptedError";
}

async function saveTeam(
  dir: string,
  trainer: TeamTrainer,
  tok: Tokenizer,
  torch: TorchTeam | null,
): Promise<void> {
  if (torch) await saveTorchAgents(dir, torch, tok);
  trainer.models.forEach((m, i) => {
    const d = join(dir, `agent-${i}`);
    mkdirSync(d, { recursive: true });
    saveModel(d, m, tok);
    saveOptimizer(d, trainer.policies[i].optimizer.snapshot());
  });
  if (trainer.critic) {
    const d = join(dir, CRITIC_DIR);
    mkdirSync(d, { recursive: true });
    saveCritic(d, trainer.critic, tok);
  }
  writeFileAtomic(join(dir, TRAINER_STATE_FILE), JSON.stringify(trainer.getState(), null, 2) + "\n");
}

function loadTeam(dir: string, step: number, trainer: TeamTrainer, engine: Engine, tok: Tokenizer): void {
  checkTeamSize(dir, trainer.members.length);
  trainer.models.forEach((m, i) => {
    const d = join(dir, `agent-${i}`);
    const loaded = loadModel(d, engine, tok);
    if (loaded.params.length !== m.params.length) {
      throw new CheckpointError(
        `${d}: checkpoint agent ${i} has a different architecture from the configured one; resume with the run's own model settings`,
      );
    }
    m.params.set(loaded.params);
    trainer.policies[i].optimizer.restore(loadOptimizer(d, m.params));
  });
  if (trainer.critic) {
    const d = join(dir, CRITIC_DIR);
    if (!existsSync(d))
      throw new CheckpointError(
        `${d}: missing; algo.adv_estimator = gae resumes the critic from the checkpoint`,
      );
    loadCriticInto(d, trainer.critic);
  }
  trainer.setState(readTrainerState(join(dir, TRAINER_STATE_FILE), step, trainer.models.length));
}

function checkTeamSize(dir: string, n: number): void {
  const saved = readdirSync(dir).filter((d) => /^agent-\d+$/.test(d)).length;
  if (saved !== n) {
    throw new CheckpointError(
      `${dir}: the checkpoint holds ${saved} agent(s), the configured team ${n}; resume with the run's own team settings (team.n_agents, algo.name)`,
    );
  }
}

/** trainer_state.json of a checkpoint, checked against the checkpoint's step and the team size. */
function readTrainerState(path: string, step: number, nAgents: number): TeamTrainState {
  const fail = (what: string): never => {
    throw new CheckpointError(
      `${path}: ${what}; resume from an older checkpoint with --resume <run>/checkpoints/stage-K`,
    );
  };
  let state: Partial<TeamTrainState> = {};
  try {
    state = JSON.parse(readFileSync(path, "utf8")) as Partial<TeamTrainState>;
  } catch (err) {
    fail(`unreadable trainer state (${(err as Error).message})`);
  }
  const numbers = (v: unknown) =>
    Array.isArray(v) && v.length === nAgents && v.every((x) => typeof x === "number" && Number.isFinite(x));
  if (typeof state !== "object" || state === null) fail("trainer state is not a JSON object");
  if (state.step !== step)
    fail(`trainer state is for stage ${JSON.stringify(state.step)}, the checkpoint for stage ${step}`);
  if (!numbers(state.klCoef) || !numbers(state.versions))
    fail(`trainer state needs klCoef and versions, ${nAgents} numbers each`);
  return state as TeamTrainState;
}

/** Policy versions saved with a team checkpoint; zeros when it has no trainer state. */
export function checkpointVersions(dir: string, n: number): number[] {
  const path = join(dir, TRAINER_STATE_FILE);
  if (!existsSync(path)) return new Array(n).fill(0);
  const state = JSON.parse(readFileSync(path, "utf8")) as { versions?: unknown };
  const v = state.versions;
  if (!Array.isArray(v) || v.length !== n || !v.every((x) => Number.isInteger(x) && x >= 0))
    throw new Error(`${path}: versions must list one non-negative integer per agent (${n})`);
  return v as number[];
}

export function heldOutProblems(cfg: ResolvedConfig, task: TaskFamily): Problem[] {
  try {
    return makeProblems(task, {
      split: "test",
      n: cfg.eval.n_prompts,
      seed: new Rng(cfg.run.seed).fork("eval-prompts").seed,
      difficulty: cfg.tasks.difficulty ?? undefined,
      testPercent: cfg.tasks.test_percent,
    });
  } catch (err) {
    // Too many prompts for the test split: a setting to change, not a crash.
    throw Object.assign(new Error(`eval.n_prompts=${cfg.eval.n_prompts}: ${(err as Error).message}`), {
      exitCode: 2,
    });
  }
}

/** The engine's float heap is one WebAssembly memory: at most 4 GiB (src/engine/kernels/heap.ts). */
const WASM_HEAP_LIMIT = 4 * 2 ** 30;

/** What this process may use now: free memory (cgroup-aware), the engine's heap and V8's heap limits. */
export function memoryBudget(cfg: ResolvedConfig): MemoryBudget {
  return {
    available: availableMemory(),
    engineLimit: cfg.run.kernels === "wasm" ? WASM_HEAP_LIMIT : null,
    jsHeapLimit: jsHeapLimit(),
  };
}

/**
 * Refuses, before anything runs, a stage (and its evaluations) that would not fit in memory; the
 * message gives the estimate and the largest setting that fits.
 */
export function checkTrainMemory(
  cfg: ResolvedConfig,
  models: Transformer[],
  task: TaskFamily,
  tok: Tokenizer,
): void {
  const dims = modelDims(models[0].cfg, models[0].params.length);
  const budget = memoryBudget(cfg);
  const prompt = longestPrompt(cfg, task, tok);
  // Evaluation decoders stay on the engine's heap next to the stage's buffers.
  const evalEst = checkEvalMemory(dims, evalShapeOf(cfg, models.length, prompt), budget);
  checkStageMemory(dims, stageShapeOf(cfg, models.length, prompt), {
    ...budget,
    engineReserved: evalEst.engine,
  });
}

/** Tokens (with <bos>) of the longest of a sample of the task's training prompts. */
export function longestPrompt(cfg: ResolvedConfig, task: TaskFamily, tok: Tokenizer): number {
  const sample = new ProblemStream(task, {
    seed: new Rng(cfg.run.seed).fork("memory-estimate").seed,
    difficulty: cfg.tasks.difficulty ?? undefined,
    testPercent: cfg.tasks.test_percent,
  }).take(256);
  return 1 + Math.max(...sample.map((p) => tok.encode(p.prompt).length));
}

/**
 * Runs the training. `runDir` may be a function that opens the run directory: it is then called
 * once the starting agents have loaded, and gets a hook that loads the checkpoint to resume from
 * before the directory changes, so a bad team.agent_checkpoints or a checkpoint that does not fit
 * the configured team leaves the run directory as it was.
 */
export async function runTrain(
  cfg: ResolvedConfig,
  runDir: RunDir | ((onResume: (from: CheckpointInfo) => void) => RunDir),
  progress: Progress,
  signal?: AbortSignal,
): Promise<TrainResult> {
  const t0 = performance.now();
  if (cfg.backend.rollout_url !== null && cfg.backend.rollout_publish_dir === null) {
    // A server with fixed weights would sample for agents whose weights move here.
    const msg =
      "sat train updates the agents, so a rollout server must load each new version: set backend.rollout_publish_dir (with sat serve --load-dir) or train without backend.rollout_url (a server with fixed weights suits sat eval)";
    throw Object.assign(new Error(msg), { exitCode: 2 });
  }
  const tok = teamTokenizer(cfg);
  const task = await taskOf(cfg, tok);
  const engine = await engineOf(cfg);
  let stagesLog: JsonlWriter | undefined;
  let evalLog: JsonlWriter | undefined;
  let torch: TorchTeam | null = null;
  try {
    if (cfg.model.backend === "torch") {
      torch = await openTorchTeam(cfg, teamSizeOf(cfg), tok, (i) => freshModel(cfg, engine, tok, i));
      progress.log(torch.describe());
    }
    const models = torch ? [] : initialModels(cfg, engine, tok);
    // The estimate is of the engine's buffers; torch workers hold their own memory.
    if (!torch) checkTrainMemory(cfg, models, task, tok);
    const n = torch ? torch.size : models.length;
    const algo = cfg.algo.name;
    const agents = torch?.members.map((member, a) => ({ member, learner: torch!.learners[a] }));
    const trainer = new TeamTrainer(agents ?? models, tok, {
      stage: stageConfigOf(cfg, n),
      rollout: rolloutOptionsOf(cfg, n),
      groupSize: cfg.rollout.n,
      klCoef: cfg.algo.kl_coef,
      optim: lmOptimOf(cfg),
      task,
      difficulty: cfg.tasks.difficulty ?? undefined,
      testPercent: cfg.tasks.test_percent,
      heldOutPrompts: cfg.algo.cert_prompts,
      heldOutSamples: cfg.algo.cert_samples ?? cfg.rollout.n,
      seed: cfg.run.seed,
      sampler: samplerOf(cfg, tok),
    });
    const rolloutRecord = rolloutRecordOf(cfg, n);
    let resumed = false;
    let torchResume: TorchAgentSource[] | null = null;
    const resume = (from: CheckpointInfo): void => {
      if (torch) {
        // Checked here, loaded once the run directory is open (loading a torch agent is asynchronous).
        checkTeamSize(from.dir, n);
        torchResume = torchSourcesOf(cfg, from.dir, n);
        trainer.setState(readTrainerState(join(from.dir, TRAINER_STATE_FILE), from.step, n));
      } else loadTeam(from.dir, from.step, trainer, engine, tok);
      resumed = true;
    };
    const run = typeof runDir === "function" ? runDir(resume) : runDir;
    if (run.resumeFrom && !resumed) resume(run.resumeFrom);
    if (torch && torchResume) await torch.load(torchResume);
    if (run.resumeFrom) progress.log(`resuming from ${run.resumeFrom.dir} (stage ${trainer.state.step})`);
    stagesLog = run.openStages();
    evalLog = run.openEval();
    const problems = heldOutProblems(cfg, task);
    const evals: EvalResult[] = [];
    const evaluate = async (name: string): Promise<void> => {
      const step = trainer.state.step;
      const bar = progress.phase(`eval ${name}`, 1);
      const r = await evaluateTeam(trainer.members, tok, task, problems, {
        ...evalOptionsOf(cfg, trainer.members.length),
        name,
        perAgent: cfg.team.protocol === "independent" || trainer.members.length > 1,
      });
      bar.tick(1, r.tokens);
      bar.done();
      evals.push(r);
      for (const row of evalRows(step, [r], task.name)) evalLog!.append(row);
    };
    if (trainer.state.step === 0 && cfg.eval.before_train) await evaluate("start");
    const maxSteps = cfg.run.max_steps;
    const maxTokens = cfg.run.max_tokens ?? Infinity;
    const savePolicy = new SavePolicy(cfg.run.save_steps, cfg.run.save_interval_s);
    let savedStep = run.resumeFrom?.step ?? -1;
    const save = async (step: number): Promise<void> => {
      await run.publishCheckpoint(step, (dir) => saveTeam(dir, trainer, tok, torch), {
        keep: cfg.run.save_total_limit,
      });
      savedStep = step;
      savePolicy.saved();
    };
    const bar = progress.phase(`train ${algo}`, maxSteps - trainer.state.step);
    while (trainer.state.step < maxSteps && trainer.state.tokens < maxTokens) {
      // A stage never returns to the event loop; yielding here lets a pending Ctrl-C handler run.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (signal?.aborted) {
        const step = trainer.state.step;
        if (step > savedStep && step > 0) await save(step);
        throw new InterruptedError(
          step > 0
            ? `interrupted after stage ${step}; checkpoint ${run.path(`checkpoints/stage-${step}`)} is complete; continue with sat train --resume --output-dir ${run.dir}`
            : "interrupted before stage 1; nothing to save",
        );
      }
      // One bar per stage, counting agent updates; rollout tokens feed its tokens/s.
      const stageBar = progress.phase(`stage ${trainer.state.step + 1}: rollout and agent updates`, n);
      const tStage = performance.now();
      const record = await runStage(
        trainer.stageInput(undefined, (e) =>
          stageBar.tick(e.kind === "agent" ? 1 : 0, e.kind === "rollout" ? e.tokens : 0),
        ),
      );
      trainer.finishStage(record);
      stageBar.done();
      const seconds = (performance.now() - tStage) / 1000;
      const step = trainer.state.step;
      trainer.models.forEach((m, i) => {
        const bad = nonFiniteTensor(m);
        if (bad)
          throw new CheckpointError(
            `stage ${step}: agent ${i}'s tensor "${bad.name}" became non-finite (${bad.count} NaN/Inf values); the run diverged and this stage is neither logged nor saved; resume from the last checkpoint with a lower optim.lr`,
          );
      });
      const warnings = stageWarnings(record, step);
      const row = stageRow(record, {
        "timing_s/step": seconds,
        num_tokens: trainer.state.tokens,
        "perf/throughput": record.generatedTokens / seconds,
        ...rolloutRecord,
        ...(warnings.length > 0 ? { warnings } : {}),
      });
      stagesLog.append(row);
      for (const w of warnings) progress.warn?.(w);
      progress.metrics(row as { step: number });
      bar.tick(1, record.generatedTokens);
      const last = step === maxSteps || trainer.state.tokens >= maxTokens;
      // Evaluations come before the stage's checkpoint, so a resume from it never redoes or skips one.
      if (last || (cfg.eval.steps > 0 && step % cfg.eval.steps === 0)) await evaluate(algo);
      if (last || savePolicy.due(step)) await save(step);
    }
    bar.done();
    if (evals.length > 0) progress.log(formatEvalTable(evals));
    const finalDir = run.latestCheckpoint()?.dir ?? "";
    return { steps: trainer.state.step, evals, finalDir, seconds: (performance.now() - t0) / 1000 };
  } finally {
    stagesLog?.close();
    evalLog?.close();
    await torch?.close();
    await engine.close();
  }
}
