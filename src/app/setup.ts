/**
 * The application layer's translation of a validated config into library objects: tokenizer,
 * task, model configs, engine, rollout/stage/optimizer options. The library never reads the config;
 * this is the one place where config keys meet library parameters.
 */
import { availableParallelism } from "node:os";
import { createEngine, type FastEngine } from "../engine/engine.js";
import { presetConfig, validateModelConfig, type ModelConfig } from "../model/config.js";
import { CheckpointError } from "../model/checkpoint.js";
import {
  CharTokenizer,
  DEFAULT_CHARS,
  SPECIAL_TOKENS,
  readTokenizer,
  readTokenizerHash,
  type Tokenizer,
  type TokenizerOptions,
} from "../model/tokenizer.js";
import {
  DatasetError,
  VERIFY,
  checkPrompts,
  datasetFamily,
  getTask,
  loadDataset,
  resolveLayout,
  splitProblems,
  type Dataset,
  type DatasetLayout,
  type Problem,
  type TaskFamily,
} from "../tasks/index.js";
import { encodeProblemPrompt, type RolloutOptions } from "../team/rollout.js";
import type { LmOptimOptions } from "../team/lm-policy.js";
import { stageConfigFrom, type StageConfig } from "../algorithm/index.js";
import type { ResolvedConfig } from "../config/schema.js";
import { agentCheckpointOf } from "../config/index.js";
import type { EvalOptions } from "../eval/evaluate.js";

/** Agents in the team: one for the single-model baseline, else team.n_agents. */
export function teamSizeOf(cfg: ResolvedConfig): number {
  return cfg.algo.name === "single" ? 1 : cfg.team.n_agents;
}

/** A model directory that may carry a tokenizer, with the config key or flag that named it. */
export interface TokenizerSource {
  label: string;
  dir: string;
}

/** The team's starting checkpoints (team.agent_checkpoints) as tokenizer sources. */
export function agentTokenizerSources(cfg: ResolvedConfig): TokenizerSource[] {
  const out: TokenizerSource[] = [];
  for (let i = 0; i < teamSizeOf(cfg); i++) {
    const dir = agentCheckpointOf(cfg, i);
    if (dir) out.push({ label: `team.agent_checkpoints[${i}]`, dir });
  }
  return out;
}

function tokenizerOptionsOf(cfg: ResolvedConfig): TokenizerOptions {
  return {
    eotToken: cfg.model.eot_token,
    eosToken: cfg.model.eos_token,
    chatTemplate: cfg.model.chat_template,
    chatTemplateKwargs: cfg.model.chat_template_kwargs,
  };
}

/**
 * The tokenizer every agent of the team shares: model.tokenizer when set, else the one the model
 * directories in `sources` carry (all of them the same by content hash), else the built-in
 * character tokenizer. Directories without a tokenizer.json take the team's.
 */
export function teamTokenizer(
  cfg: ResolvedConfig,
  sources: readonly TokenizerSource[] = agentTokenizerSources(cfg),
): Tokenizer {
  const all = cfg.model.tokenizer !== null ? [{ label: "model.tokenizer", dir: cfg.model.tokenizer }] : [];
  all.push(...sources);
  let first: { source: TokenizerSource; hash: string } | null = null;
  for (const source of all) {
    let hash: string | null;
    try {
      hash = readTokenizerHash(source.dir);
    } catch (err) {
      throw new CheckpointError(`${source.label}: ${(err as Error).message}`);
    }
    if (hash === null) {
      if (source.label === "model.tokenizer")
        throw new CheckpointError(`model.tokenizer: ${source.dir} has no tokenizer.json`);
      continue;
    }
    if (first === null) first = { source, hash };
    else if (hash !== first.hash) {
      const a = first.source;
      throw new CheckpointError(
        `${a.label} (${a.dir}) and ${source.label} (${source.dir}) have different tokenizers (sha256 ${first.hash.slice(0, 12)}… vs ${hash.slice(0, 12)}…); agents of a team must share one tokenizer`,
      );
    }
  }
  let tok: Tokenizer;
  try {
    tok = first
      ? readTokenizer(first.source.dir, tokenizerOptionsOf(cfg))!
      : new CharTokenizer(DEFAULT_CHARS);
  } catch (err) {
    throw new CheckpointError(`${first!.source.label}: ${(err as Error).message}`);
  }
  if (tok instanceof CharTokenizer) {
    // The character tokenizer's specials are fixed; a different choice is a config mistake.
    for (const [key, want] of [
      ["eot_token", SPECIAL_TOKENS[tok.eot]],
      ["eos_token", SPECIAL_TOKENS[tok.eos]],
    ] as const) {
      const given = cfg.model[key];
      if (given !== null && given !== want)
        throw Object.assign(
          new Error(
            `model.${key}: the built-in character tokenizer's token is ${want}, not ${JSON.stringify(given)}; leave it null or give the team a model directory with its own tokenizer.json`,
          ),
          { exitCode: 2 },
        );
    }
  }
  return tok;
}

export function datasetLayoutOf(cfg: ResolvedConfig): DatasetLayout {
  return resolveLayout({
    preset: cfg.tasks.preset,
    promptField: cfg.tasks.prompt_field,
    answerField: cfg.tasks.answer_field,
    solutionField: cfg.tasks.solution_field,
    verifier: cfg.tasks.verifier,
  });
}

/**
 * The built-in family tasks.name, or the problems of tasks.dataset. A dataset is read and every row
 * checked here, before any run directory exists: fields, that each prompt tokenizes within
 * rollout.max_prompt_length with `tok`, and that its test split can serve eval.n_prompts and the
 * per-stage held-out batch (rollout.prompts_per_step). Each failure is one line naming the file and
 * the line (or Parquet row).
 */
export async function taskOf(cfg: ResolvedConfig, tok: Tokenizer): Promise<TaskFamily> {
  if (cfg.tasks.dataset === null) return getTask(cfg.tasks.name);
  const data = await loadDataset(cfg.tasks.dataset, datasetLayoutOf(cfg));
  checkPrompts(data, {
    encode: (p: Problem) => encodeProblemPrompt(tok, p),
    maxPromptLength: cfg.rollout.max_prompt_length,
    limitName: "rollout.max_prompt_length",
  });
  checkSplits(data, cfg);
  return datasetFamily(data.problems, data.source, VERIFY[data.layout.verifier]);
}

/** The test split must hold eval.n_prompts problems and a held-out batch; the train split one problem. */
function checkSplits(data: Dataset, cfg: ResolvedConfig): void {
  const pct = cfg.tasks.test_percent;
  const test = splitProblems(data.problems, "test", pct).length;
  const train = splitProblems(data.problems, "train", pct).length;
  const of = `${test + train} distinct problems`;
  if (train === 0) {
    throw new DatasetError(
      `${data.source}: all ${of} fall in the test split (tasks.test_percent = ${pct}, by content hash); lower tasks.test_percent`,
    );
  }
  const needs: [string, number][] = [
    ["eval.n_prompts", cfg.eval.n_prompts],
    ["rollout.prompts_per_step", cfg.rollout.prompts_per_step],
  ];
  for (const [key, n] of needs) {
    if (test >= n) continue;
    const fix =
      test > 0 ? `set ${key} to at most ${test} or raise tasks.test_percent` : "raise tasks.test_percent";
    const use = key === "eval.n_prompts" ? "" : " (each stage's held-out batch)";
    throw new DatasetError(
      `${data.source}: the test split holds ${test} of ${of} (tasks.test_percent = ${pct}, by content hash), fewer than ${key} = ${n}${use}; ${fix}`,
    );
  }
}

export function modelConfigOf(cfg: ResolvedConfig, vocabSize: number): ModelConfig {
  const m = cfg.model;
  // Agents never carry a value head: gae's values come from the trainer's separate critic.
  const over: Partial<ModelConfig> = {};
  if (m.d_model !== null) over.dModel = m.d_model;
  if (m.n_layers !== null) over.nLayers = m.n_layers;
  if (m.n_heads !== null) over.nHeads = m.n_heads;
  if (m.d_ff !== null) over.dFF = m.d_ff;
  if (m.max_seq_len !== null) over.maxSeqLen = m.max_seq_len;
  if (m.n_kv_heads !== null) over.nKvHeads = m.n_kv_heads;
  if (over.dModel !== undefined || over.nHeads !== undefined) {
    const base = presetConfig(m.preset, vocabSize, m.arch);
    over.headDim = (over.dModel ?? base.dModel) / (over.nHeads ?? base.nHeads);
    if (!Number.isInteger(over.headDim)) {
      throw new Error(
        `model.n_heads must divide model.d_model (${over.dModel ?? base.dModel} / ${over.nHeads ?? base.nHeads})`,
      );
    }
  }
  return validateModelConfig(presetConfig(cfg.model.preset, vocabSize, cfg.model.arch, over));
}

export function threadsOf(cfg: ResolvedConfig): number {
  return cfg.run.threads ?? availableParallelism();
}

export function engineOf(cfg: ResolvedConfig): Promise<FastEngine> {
  return createEngine({ impl: cfg.run.kernels, threads: threadsOf(cfg) });
}

/**
 * Rollout settings for a team of `members` agents. A smaller team (the single-model baseline) gets
 * proportionally more relay rounds, so every team has the same number of turns per transcript.
 */
export function rolloutOptionsOf(cfg: ResolvedConfig, members = cfg.team.n_agents): RolloutOptions {
  return {
    protocol: cfg.team.protocol,
    rounds: Math.ceil((cfg.team.rounds * cfg.team.n_agents) / members),
    maxTurnTokens: cfg.team.max_turn_tokens,
    maxCompletionLength: cfg.rollout.max_completion_length,
    maxPromptLength: cfg.rollout.max_prompt_length,
    temperature: cfg.rollout.temperature,
    topP: cfg.rollout.top_p,
  };
}

/** The stage configuration of a team of `nAgents` (the mapping lives in algorithm/config.ts STAGE_KEYS). */
export function stageConfigOf(cfg: ResolvedConfig, nAgents: number): StageConfig {
  return stageConfigFrom(cfg, nAgents);
}

export function lmOptimOf(cfg: ResolvedConfig): LmOptimOptions {
  return {
    lr: cfg.optim.lr,
    beta1: cfg.optim.betas[0],
    beta2: cfg.optim.betas[1],
    eps: cfg.optim.eps,
    weightDecay: cfg.optim.weight_decay,
    maxGradNorm: cfg.optim.max_grad_norm,
  };
}

export function evalOptionsOf(cfg: ResolvedConfig, members = cfg.team.n_agents): EvalOptions {
  return {
    ...rolloutOptionsOf(cfg, members),
    temperature: cfg.eval.temperature,
    topP: cfg.eval.top_p,
    n: cfg.eval.n,
    k: [...cfg.eval.k],
    bootstrap: cfg.eval.bootstrap_samples,
    seed: cfg.run.seed,
  };
}
