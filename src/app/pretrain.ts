/**
 * `sat pretrain`: supervised training of base agents on the task's worked solutions. Writes each
 * agent to `<run>/agents/agent-<i>/` in Hugging Face layout, one line per step to
 * `pretrain.jsonl` and the held-out accuracy to `eval.jsonl`.
 */
import { mkdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import { Rng } from "../engine/rng.js";
import { Transformer } from "../model/transformer.js";
import { saveModel } from "../model/checkpoint.js";
import { makeProblems } from "../tasks/index.js";
import { sftTrain, DEFAULT_SFT, type SftOptions } from "../train/sft.js";
import type { ResolvedConfig } from "../config/schema.js";
import type { Progress } from "../io/progress.js";
import { JsonlWriter } from "../io/jsonl.js";
import type { RunDir } from "../io/rundir.js";
import { engineOf, modelConfigOf, taskOf, teamTokenizer } from "./setup.js";

export interface PretrainResult {
  agentDirs: string[];
  accuracies: number[];
  seconds: number;
}

export const AGENTS_DIR = "agents";

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

export async function runPretrain(
  cfg: ResolvedConfig,
  openRun: RunDir | (() => RunDir),
  progress: Progress,
  signal?: AbortSignal,
): Promise<PretrainResult> {
  const t0 = performance.now();
  const tok = teamTokenizer(cfg, []);
  const task = await taskOf(cfg, tok);
  // Opened once the task's data have passed their checks, so a bad dataset leaves no directory.
  const run = typeof openRun === "function" ? openRun() : openRun;
  const engine = await engineOf(cfg);
  const log = new JsonlWriter(run.path("pretrain.jsonl"));
  const evalLog = run.openEval();
  const test = makeProblems(task, {
    split: "test",
    n: Math.min(cfg.eval.n_prompts, 200),
    seed: cfg.run.seed,
    difficulty: cfg.tasks.difficulty ?? undefined,
    testPercent: cfg.tasks.test_percent,
  });
  const result: PretrainResult = { agentDirs: [], accuracies: [], seconds: 0 };
  try {
    for (let i = 0; i < cfg.pretrain.agents; i++) {
      const seed = new Rng(cfg.run.seed).fork(`pretrain/${i}`).seed;
      const model = new Transformer(modelConfigOf(cfg, tok.vocabSize), engine, new Rng(seed).fork("init"));
      const opts = sftOptionsOf(cfg, seed);
      const bar = progress.phase(`pretrain agent ${i}`, opts.steps);
      const r = await sftTrain(model, tok, task, test, opts, {
        signal,
        onStep: (s) => {
          bar.tick(1, s.tokens);
          log.append({
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
          evalLog.append({
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
      });
      bar.done();
      if (signal?.aborted) throw new Error("interrupted");
      const dir = agentDir(run.dir, i);
      mkdirSync(dir, { recursive: true });
      saveModel(dir, model, tok);
      result.agentDirs.push(dir);
      result.accuracies.push(r.finalAccuracy);
      progress.log(
        `agent ${i}: ${r.steps} steps, held-out greedy accuracy ${(100 * r.finalAccuracy).toFixed(1)}% → ${dir}`,
      );
    }
  } finally {
    log.close();
    evalLog.close();
    await engine.close();
  }
  result.seconds = (performance.now() - t0) / 1000;
  return result;
}
