/**
 * model.backend = torch: the config's backend.torch_* / backend.ray_* keys mapped to the PyTorch
 * team's options, the agents' starting weights (team.agent_checkpoints[i], or the run's own
 * initial model written once to a temporary Hugging Face directory so both backends start from
 * the same weights), and a torch agent's checkpoint directory: Hugging Face layout (or a PEFT
 * adapter) plus torch_optimizer.safetensors, with the team's tokenizer.json next to them.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CheckpointError, saveModel } from "../model/checkpoint.js";
import { CharTokenizer, type Tokenizer } from "../model/tokenizer.js";
import { saveTokenizer } from "../model/tokenizer.js";
import { findPython } from "../io/python.js";
import { agentCheckpointOf } from "../config/index.js";
import type { ResolvedConfig } from "../config/schema.js";
import { BackendError } from "../backend/torch/client.js";
import { TorchTeam, type TorchAgentSource, type TorchBackendOptions } from "../backend/torch/team.js";
import { lmOptimOf } from "./setup.js";
import type { Transformer } from "../model/transformer.js";

export const TORCH_OPTIMIZER_FILE = "torch_optimizer.safetensors";

/** The Python packages a torch run of this config needs. */
export function torchPackagesOf(cfg: ResolvedConfig): string[] {
  const b = cfg.backend;
  return [
    "torch",
    "transformers",
    "safetensors",
    ...(b.torch_lora_rank > 0 ? ["peft"] : []),
    ...(b.torch_launcher === "ray" ? ["ray"] : []),
  ];
}

/** The interpreter of the workers: backend.torch_python, else the first Python with the packages. */
export function torchPythonOf(cfg: ResolvedConfig): string {
  if (cfg.backend.torch_python !== null) return cfg.backend.torch_python;
  const probe = findPython(torchPackagesOf(cfg));
  if (!probe.ok)
    throw new BackendError(`model.backend=torch: ${probe.reason}; \`sat doctor\` shows what is missing`);
  return probe.python;
}

export function torchOptionsOf(
  cfg: ResolvedConfig,
  python: string,
  env?: Record<string, string>,
): TorchBackendOptions {
  const b = cfg.backend;
  const targets = b.torch_lora_target_modules;
  return {
    python,
    launcher: b.torch_launcher,
    workers: b.torch_workers,
    device: b.torch_device,
    dtype: b.torch_dtype,
    threads: b.torch_threads,
    timeoutS: b.torch_timeout_s,
    startTimeoutS: Math.max(b.torch_timeout_s, 600),
    microBatchSize: b.torch_micro_batch_size,
    refCacheMb: b.torch_ref_cache_mb,
    lora:
      b.torch_lora_rank > 0
        ? {
            rank: b.torch_lora_rank,
            alpha: b.torch_lora_alpha,
            targetModules: targets === "all-linear" ? targets : targets.split(",").map((s) => s.trim()),
          }
        : null,
    ray: {
      address: b.ray_address,
      numCpus: b.ray_num_cpus,
      numGpus: b.ray_num_gpus,
      shipFiles: b.ray_ship_files,
    },
    temperature: cfg.rollout.temperature,
    optim: lmOptimOf(cfg),
    seed: cfg.run.seed,
    env,
  };
}

/**
 * Starts the team's workers from team.agent_checkpoints (Hugging Face model directories) or,
 * where none is given, from `fresh(i)`, the run's own initial model; checks every agent's
 * vocabulary and context against the run.
 */
export async function openTorchTeam(
  cfg: ResolvedConfig,
  n: number,
  tok: Tokenizer,
  fresh: (i: number) => Transformer,
  env?: Record<string, string>,
): Promise<TorchTeam> {
  const python = torchPythonOf(cfg);
  const temp: string[] = [];
  try {
    const sources: TorchAgentSource[] = [];
    for (let i = 0; i < n; i++) {
      const path = agentCheckpointOf(cfg, i);
      if (path && !existsSync(path))
        throw new CheckpointError(
          `team.agent_checkpoints[${i}]: ${path} does not exist; give a Hugging Face model directory (e.g. from huggingface-cli download <model> --local-dir <dir>)`,
        );
      if (path) sources.push({ path });
      else {
        const dir = mkdtempSync(join(tmpdir(), "sat-init-"));
        temp.push(dir);
        saveModel(dir, fresh(i), tok);
        sources.push({ path: dir });
      }
    }
    const team = await TorchTeam.start(torchOptionsOf(cfg, python, env), sources);
    try {
      checkAgents(cfg, team, tok);
    } catch (err) {
      await team.close();
      throw err;
    }
    return team;
  } finally {
    for (const d of temp) rmSync(d, { recursive: true, force: true });
  }
}

function checkAgents(cfg: ResolvedConfig, team: TorchTeam, tok: Tokenizer): void {
  const needed = cfg.rollout.max_prompt_length + cfg.rollout.max_completion_length;
  team.loaded.forEach((l, i) => {
    const key = agentCheckpointOf(cfg, i) ? `team.agent_checkpoints[${i}]` : `agent ${i}`;
    // Hugging Face models may pad their embedding (Qwen3: 151,936 rows for 151,669 tokens).
    const exact = tok instanceof CharTokenizer;
    if (exact ? l.vocabSize !== tok.vocabSize : l.vocabSize < tok.vocabSize)
      throw new CheckpointError(
        `${key}: the model has ${l.vocabSize} embedding rows, the team's tokenizer ${tok.vocabSize} tokens; agents of a team share one tokenizer (model.tokenizer)`,
      );
    if (l.maxSeqLen < needed)
      throw new CheckpointError(
        `${key}: the model has a context of ${l.maxSeqLen} tokens, less than rollout.max_prompt_length + rollout.max_completion_length = ${needed}; shorten the rollout or use a model with a longer context`,
      );
  });
}

/** Writes every torch agent into `dir`/agent-i (weights or adapter, optimizer state, tokenizer.json). */
export async function saveTorchAgents(dir: string, team: TorchTeam, tok: Tokenizer): Promise<void> {
  for (let i = 0; i < team.size; i++) {
    const d = join(dir, `agent-${i}`);
    mkdirSync(d, { recursive: true });
    await team.save(i, d);
    saveTokenizer(d, tok);
  }
}

/**
 * The sources to resume a torch team from checkpoint `dir` (checked without loading anything, so a
 * checkpoint that does not fit is refused before the run directory changes).
 */
export function torchSourcesOf(cfg: ResolvedConfig, dir: string, n: number): TorchAgentSource[] {
  const sources: TorchAgentSource[] = [];
  for (let i = 0; i < n; i++) {
    const d = join(dir, `agent-${i}`);
    if (!existsSync(d))
      throw new CheckpointError(
        `${d}: missing; the checkpoint does not hold agent ${i} of the configured ${n}-agent team`,
      );
    if (!existsSync(join(d, TORCH_OPTIMIZER_FILE))) {
      const engine = existsSync(join(d, "optimizer.safetensors"));
      throw new CheckpointError(
        engine
          ? `${d}: written by the engine backend; resume it with model.backend=engine`
          : `${d}: no ${TORCH_OPTIMIZER_FILE}; not a checkpoint of a torch agent`,
      );
    }
    if (cfg.backend.torch_lora_rank > 0) {
      if (!existsSync(join(d, "adapter_model.safetensors")))
        throw new CheckpointError(`${d}: no adapter_model.safetensors; the run was not a LoRA run`);
      const base = agentCheckpointOf(cfg, i);
      if (!base)
        throw new CheckpointError(
          `team.agent_checkpoints[${i}]: a LoRA run resumes on its base model; give the run's team.agent_checkpoints`,
        );
      sources.push({ path: base, adapter: d, optimizerState: d });
    } else {
      if (!existsSync(join(d, "config.json")))
        throw new CheckpointError(`${d}: no config.json; not a Hugging Face model directory`);
      sources.push({ path: d, optimizerState: d });
    }
  }
  return sources;
}
