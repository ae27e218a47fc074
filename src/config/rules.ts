/**
 * Rules that involve more than one config key, each failing with a message that says how to fix
 * it (like TRL's GRPOConfig.__post_init__), plus defaults derived from other keys and small
 * per-agent accessors. Pure functions over the parsed config.
 */
import type { ParsedConfig, ResolvedConfig } from "./schema.js";

/** Fills defaults that depend on other keys. */
export function deriveDefaults(c: ParsedConfig): ResolvedConfig {
  return { ...c, algo: { ...c.algo, clip_ratio_high: c.algo.clip_ratio_high ?? c.algo.clip_ratio_low } };
}

/** The trust-region radius δ_i of agent `agent`: its team.kl_radius entry, else algo.kl_radius. */
export function klRadiusOf(config: ResolvedConfig, agent: number): number {
  return config.team.kl_radius[agent] ?? config.algo.kl_radius;
}

/** The starting checkpoint of agent `agent`, or null for the run's own initial model. */
export function agentCheckpointOf(config: ResolvedConfig, agent: number): string | null {
  return config.team.agent_checkpoints[agent] ?? null;
}

/** Minibatches per PPO epoch: prompts are split into groups of ppo_mini_batch_size. */
export function minibatchesPerEpoch(config: {
  rollout: { prompts_per_step: number };
  algo: { ppo_mini_batch_size: number };
}): number {
  return Math.ceil(config.rollout.prompts_per_step / config.algo.ppo_mini_batch_size);
}

/** The keys the stage rules read (a parsed config, or a StageConfig mapped back to keys). */
export interface StageRuleView {
  rollout: { prompts_per_step: number };
  algo: {
    name: string;
    ppo_epochs: number;
    ppo_mini_batch_size: number;
    order: string;
    intermediate: string;
  };
}

const SIMULTANEOUS = ["joint", "single", "independent-vote"];

/** Rules of one stage, shared by the config loader and the library's validateStageConfig. */
export function stageRuleProblems(c: StageRuleView, nAgents: number): CrossFieldProblem[] {
  const out: CrossFieldProblem[] = [];
  const add = (key: string, message: string) => out.push({ key, message });
  const algo = c.algo.name;
  if (algo === "single" && nAgents !== 1)
    add("algo.name", `algo.name=single trains one agent, the team has ${nAgents}`);
  if (c.algo.ppo_mini_batch_size > c.rollout.prompts_per_step) {
    add(
      "algo.ppo_mini_batch_size",
      `algo.ppo_mini_batch_size (${c.algo.ppo_mini_batch_size}) is larger than rollout.prompts_per_step (${c.rollout.prompts_per_step}); lower it to at most ${c.rollout.prompts_per_step}`,
    );
  } else {
    const updates = c.algo.ppo_epochs * minibatchesPerEpoch(c);
    if (updates < 2) {
      add(
        "algo.ppo_epochs",
        `algo.ppo_epochs × minibatches = ${updates}: with a single optimizer step per stage the KL penalty β has no effect (sat-method §3c); set algo.ppo_epochs ≥ 2 or algo.ppo_mini_batch_size < rollout.prompts_per_step`,
      );
    }
  }
  if (SIMULTANEOUS.includes(algo) && c.algo.order === "greedy")
    add(
      "algo.order",
      `algo.order=greedy has no meaning for algo.name=${algo} (all agents update from the same batch); use static or random`,
    );
  if (SIMULTANEOUS.includes(algo) && c.algo.intermediate === "resample")
    add(
      "algo.intermediate",
      `algo.intermediate=resample has no meaning for algo.name=${algo} (no intermediate policy); use reweight`,
    );
  return out;
}

/** model.backend = torch and its backend.torch_* / backend.ray_* keys. */
function torchBackendProblems(c: ParsedConfig): CrossFieldProblem[] {
  const out: CrossFieldProblem[] = [];
  const b = c.backend;
  const defaults = { torch_lora_rank: 0, torch_launcher: "process", ray_address: null } as const;
  if (c.model.backend === "engine") {
    for (const [key, def] of Object.entries(defaults))
      if (b[key as keyof typeof defaults] !== def)
        out.push({
          key: `backend.${key}`,
          message: `backend.${key} applies to the PyTorch backend; set model.backend=torch or drop backend.${key}`,
        });
    return out;
  }
  if (b.rollout_url !== null)
    out.push({
      key: "backend.rollout_url",
      message:
        "backend.rollout_url samples for engine agents; with model.backend=torch the workers write the turns: drop backend.rollout_url or use model.backend=engine",
    });
  if (c.algo.adv_estimator === "gae")
    out.push({
      key: "algo.adv_estimator",
      message:
        "algo.adv_estimator=gae needs a critic, which only the engine backend has; use algo.adv_estimator=group or model.backend=engine",
    });
  const n = c.algo.name === "single" ? 1 : c.team.n_agents;
  const bases = c.team.agent_checkpoints.slice(0, n).filter((p) => p !== null).length;
  if (b.torch_lora_rank > 0 && bases < n)
    out.push({
      key: "team.agent_checkpoints",
      message: `backend.torch_lora_rank=${b.torch_lora_rank} trains adapters on a pretrained base: give team.agent_checkpoints for all ${n} agents`,
    });
  if (b.ray_address !== null && b.torch_launcher !== "ray")
    out.push({
      key: "backend.ray_address",
      message: `backend.ray_address is set but backend.torch_launcher=${b.torch_launcher}; set backend.torch_launcher=ray`,
    });
  return out;
}

export interface CrossFieldProblem {
  /** The key the fix most likely belongs to (dotted path). */
  key: string;
  /** What is wrong and how to fix it, one line. */
  message: string;
}

/** Rules that involve more than one key; an empty list means the config is consistent. */
export function crossFieldProblems(c: ParsedConfig): CrossFieldProblem[] {
  const out: CrossFieldProblem[] = [];
  const add = (key: string, message: string) => out.push({ key, message });

  const maxK = Math.max(...c.eval.k);
  if (c.eval.n < maxK) {
    add(
      "eval.n",
      `eval.n (${c.eval.n}) must be ≥ the largest k in eval.k (${maxK}); raise eval.n to ${maxK} or drop k=${maxK} from eval.k`,
    );
  }
  if (new Set(c.eval.k).size !== c.eval.k.length) {
    add("eval.k", `eval.k has duplicates (${JSON.stringify(c.eval.k)}); list each k once`);
  }
  if (c.eval.temperature === 0 && c.eval.n > 1) {
    add(
      "eval.temperature",
      `eval.temperature=0 (greedy) makes all ${c.eval.n} samples identical; set eval.n=1 and eval.k=[1], or use a temperature > 0`,
    );
  }
  if (c.algo.adv_estimator === "group" && c.rollout.n < 2) {
    add(
      "rollout.n",
      `rollout.n=${c.rollout.n} leaves a single trajectory per group, so group advantages are all zero; use rollout.n ≥ 2 or algo.adv_estimator=gae`,
    );
  }
  out.push(...stageRuleProblems(c, c.algo.name === "single" ? 1 : c.team.n_agents));
  out.push(...torchBackendProblems(c));
  if (c.algo.name === "independent-vote" && c.team.protocol !== "independent")
    add(
      "team.protocol",
      `algo.name=independent-vote trains agents that answer alone: set team.protocol=independent`,
    );
  if (c.team.max_turn_tokens > c.rollout.max_completion_length) {
    add(
      "team.max_turn_tokens",
      `team.max_turn_tokens (${c.team.max_turn_tokens}) exceeds rollout.max_completion_length (${c.rollout.max_completion_length}); lower it or raise the transcript cap`,
    );
  }
  for (const key of ["kl_radius", "agent_checkpoints"] as const) {
    const list = c.team[key];
    if (list.length !== 0 && list.length !== c.team.n_agents) {
      add(
        `team.${key}`,
        `team.${key} has ${list.length} entr${list.length === 1 ? "y" : "ies"} but team.n_agents is ${c.team.n_agents}; give one entry per agent (null = default) or []`,
      );
    }
  }
  const t = c.tasks;
  for (const key of ["preset", "prompt_field", "answer_field", "solution_field", "verifier"] as const) {
    if (t.dataset === null && t[key] !== null) {
      add(
        `tasks.${key}`,
        `tasks.${key} applies to a dataset file only; set tasks.dataset=<file.jsonl|file.parquet> or remove tasks.${key}`,
      );
    }
  }
  if (t.dataset !== null && t.difficulty !== null) {
    add(
      "tasks.difficulty",
      `tasks.difficulty applies to the built-in task families only, not to tasks.dataset; remove it`,
    );
  }
  out.push(...backendProblems(c));
  const m = c.model;
  if (m.d_model !== null && m.n_heads !== null && m.d_model % m.n_heads !== 0) {
    add(
      "model.n_heads",
      `model.n_heads (${m.n_heads}) must divide model.d_model (${m.d_model}); pick a divisor such as ${largestDivisorAtMost(m.d_model, m.n_heads)}`,
    );
  }
  if (m.n_kv_heads !== null && m.arch === "gpt2") {
    add("model.n_kv_heads", "model.n_kv_heads applies to arch=llama only; remove it or set model.arch=llama");
  }
  if (m.n_kv_heads !== null && m.n_heads !== null && m.n_heads % m.n_kv_heads !== 0) {
    add("model.n_kv_heads", `model.n_kv_heads (${m.n_kv_heads}) must divide model.n_heads (${m.n_heads})`);
  }
  const needed = c.rollout.max_prompt_length + c.rollout.max_completion_length;
  if (m.max_seq_len !== null && m.max_seq_len < needed) {
    add(
      "model.max_seq_len",
      `model.max_seq_len (${m.max_seq_len}) cannot hold max_prompt_length + max_completion_length = ${needed}; raise it to ${needed} or shorten the rollout`,
    );
  }
  return out;
}

/** backend.rollout_*: a server that can be reached, names that carry the version, agents that exist. */
function backendProblems(c: ParsedConfig): CrossFieldProblem[] {
  const b = c.backend;
  const out: CrossFieldProblem[] = [];
  const add = (key: string, message: string) => out.push({ key: `backend.${key}`, message });
  if (b.rollout_url !== null) {
    let url: URL | null = null;
    try {
      url = new URL(b.rollout_url);
    } catch {
      /* reported below */
    }
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:"))
      add(
        "rollout_url",
        `backend.rollout_url ${JSON.stringify(b.rollout_url)} is not an http(s) URL; give e.g. http://127.0.0.1:8000`,
      );
  } else if (b.rollout_publish_dir !== null || b.rollout_agents.length > 0) {
    const key = b.rollout_publish_dir !== null ? "rollout_publish_dir" : "rollout_agents";
    add(
      key,
      `backend.${key} is set but backend.rollout_url is null; give the server's URL or drop backend.${key}`,
    );
  }
  if (!b.rollout_model.includes("{version}"))
    add(
      "rollout_model",
      `backend.rollout_model ${JSON.stringify(b.rollout_model)} has no {version}; served names carry the weights' version so that a reply from stale weights is refused (e.g. agent-{agent}@v{version})`,
    );
  const served = b.rollout_agents.length > 0 ? b.rollout_agents : [...Array(c.team.n_agents).keys()];
  if (served.length > 1 && !b.rollout_model.includes("{agent}"))
    add(
      "rollout_model",
      `backend.rollout_model ${JSON.stringify(b.rollout_model)} has no {agent}, so every served agent would ask for the same weights`,
    );
  for (const a of b.rollout_agents) {
    if (a >= c.team.n_agents)
      add(
        "rollout_agents",
        `backend.rollout_agents names agent ${a}, the team has ${c.team.n_agents} (0 to ${c.team.n_agents - 1})`,
      );
  }
  if (new Set(b.rollout_agents).size !== b.rollout_agents.length)
    add(
      "rollout_agents",
      `backend.rollout_agents has duplicates (${JSON.stringify(b.rollout_agents)}); list each agent once`,
    );
  if (b.rollout_publish_dir !== null && b.rollout_api !== "sat")
    add(
      "rollout_publish_dir",
      `backend.rollout_publish_dir publishes whole engine agents, which only sat serve loads at run time (vLLM and SGLang load LoRA adapters only); set backend.rollout_api=sat or serve fixed weights without a publish dir`,
    );
  return out;
}

function largestDivisorAtMost(n: number, k: number): number {
  for (let d = Math.min(k, n); d > 1; d--) if (n % d === 0) return d;
  return 1;
}
