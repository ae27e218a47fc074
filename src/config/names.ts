/**
 * Help for mistyped or foreign key names: the sat-llm key behind common TRL / verl / OpenRLHF /
 * Hugging Face names (conventions.md §1; names only), and "did you mean" by edit distance.
 */
import { listKeys, SECTION_NAMES } from "./schema.js";

/** Upstream name → [sat-llm key, who uses the name, optional note]. Keyed by the last path segment. */
export const UPSTREAM_NAMES: Record<string, [string, string, string?]> = {
  num_generations: ["rollout.n", "TRL"],
  vllm_server_base_url: ["backend.rollout_url", "TRL", "with backend.rollout_api=vllm"],
  n_samples_per_prompt: ["rollout.n", "OpenRLHF"],
  num_iterations: ["algo.ppo_epochs", "TRL"],
  max_epochs: ["algo.ppo_epochs", "OpenRLHF"],
  clip_ratio: ["algo.clip_ratio_low", "verl", "clip_ratio_high defaults to it"],
  epsilon: ["algo.clip_ratio_low", "TRL"],
  epsilon_high: ["algo.clip_ratio_high", "TRL"],
  eps_clip: ["algo.clip_ratio_low", "OpenRLHF"],
  clip_ratio_c: ["algo.clip_ratio_high", "verl", "sat-llm has no dual clip"],
  beta: ["algo.kl_coef", "TRL"],
  kl_loss_coef: ["algo.kl_coef", "verl"],
  init_kl_coef: ["algo.kl_coef", "OpenRLHF"],
  kl_target: ["algo.kl_radius", "OpenRLHF", "SAT enforces a trust region instead of adapting β to a target"],
  target_kl: ["algo.kl_radius", "verl", "SAT enforces a trust region instead of adapting β to a target"],
  learning_rate: ["optim.lr", "TRL/HF"],
  actor_learning_rate: ["optim.lr", "OpenRLHF"],
  adam_beta1: ["optim.betas", "HF", "give both as [β1, β2]"],
  adam_beta2: ["optim.betas", "HF", "give both as [β1, β2]"],
  adam_epsilon: ["optim.eps", "HF"],
  grad_clip: ["optim.max_grad_norm", "verl"],
  clip_grad: ["optim.max_grad_norm", "verl"],
  max_norm: ["optim.max_grad_norm", "OpenRLHF"],
  max_response_length: ["rollout.max_completion_length", "verl"],
  response_length: ["rollout.max_completion_length", "verl"],
  generate_max_len: ["rollout.max_completion_length", "OpenRLHF"],
  max_new_tokens: ["rollout.max_completion_length", "OpenRLHF"],
  prompt_max_len: ["rollout.max_prompt_length", "OpenRLHF"],
  train_batch_size: ["rollout.prompts_per_step", "verl/OpenRLHF", "counted in prompts"],
  rollout_batch_size: ["rollout.prompts_per_step", "OpenRLHF"],
  generation_batch_size: [
    "rollout.prompts_per_step",
    "TRL",
    "TRL counts completions, sat-llm counts prompts",
  ],
  per_device_train_batch_size: ["algo.ppo_mini_batch_size", "TRL/HF", "sat-llm counts prompts per minibatch"],
  advantage_estimator: ["algo.adv_estimator", "OpenRLHF"],
  norm_adv_by_std_in_grpo: ["algo.scale_rewards", "verl", "true = group, false = none"],
  no_advantage_std_norm: ["algo.scale_rewards", "OpenRLHF", "true = none"],
  total_training_steps: ["run.max_steps", "verl"],
  num_train_epochs: ["run.max_steps", "HF", "sat-llm counts stages"],
  num_episodes: ["run.max_steps", "OpenRLHF", "sat-llm counts stages"],
  save_freq: ["run.save_steps", "verl"],
  max_ckpt_num: ["run.save_total_limit", "OpenRLHF"],
  max_actor_ckpt_to_keep: ["run.save_total_limit", "verl"],
  test_freq: ["eval.steps", "verl"],
  eval_steps: ["eval.steps", "HF/OpenRLHF"],
  val_before_train: ["eval.before_train", "verl"],
  eval_on_start: ["eval.before_train", "HF"],
  eval_n_samples_per_prompt: ["eval.n", "OpenRLHF"],
  num_generations_eval: ["eval.n", "TRL"],
  eval_temperature: ["eval.temperature", "OpenRLHF"],
  default_local_dir: ["run.output_dir", "verl"],
  save_path: ["run.output_dir", "OpenRLHF"],
  ckpt_path: ["run.output_dir", "OpenRLHF"],
  data_seed: ["run.seed", "HF", "one root seed; sub-streams are derived"],
  hidden_size: ["model.d_model", "HF"],
  n_embd: ["model.d_model", "nanoGPT/HF GPT-2"],
  num_hidden_layers: ["model.n_layers", "HF"],
  n_layer: ["model.n_layers", "nanoGPT/HF GPT-2"],
  num_attention_heads: ["model.n_heads", "HF"],
  n_head: ["model.n_heads", "nanoGPT/HF GPT-2"],
  num_key_value_heads: ["model.n_kv_heads", "HF"],
  intermediate_size: ["model.d_ff", "HF"],
  block_size: ["model.max_seq_len", "nanoGPT"],
  max_position_embeddings: ["model.max_seq_len", "HF"],
  train_files: ["tasks.dataset", "verl", "one file; the test split is held out from it by content hash"],
  dataset_name: ["tasks.dataset", "TRL", "a local .jsonl or .parquet file"],
  prompt_key: ["tasks.prompt_field", "verl"],
  reward_funcs: ["tasks.verifier", "TRL"],
};

/** Optimal-string-alignment distance: edits are insert, delete, substitute, swap two neighbours. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 0; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The closest candidate if it is close enough to be a plausible typo, else null. */
export function closest(word: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) [best, bestD] = [c, d];
  }
  if (best === null) return null;
  return bestD <= Math.max(1, Math.min(3, Math.floor(best.length / 3))) ? best : null;
}

/**
 * A hint for an unknown key at `path` (dotted, e.g. "algo.num_generations"): the upstream mapping,
 * the same name in another section, or the closest key by edit distance. Starts with "; ".
 */
export function unknownKeyHint(path: string): string {
  const segments = path.split(".");
  const last = segments[segments.length - 1];
  const normalized = last.replace(/-/g, "_");
  const keys = listKeys();
  if (Object.hasOwn(UPSTREAM_NAMES, normalized)) {
    const [ours, who, note] = UPSTREAM_NAMES[normalized];
    if (ours !== path) {
      return `; ${last} is the ${who} name; sat-llm uses ${ours}${note ? ` (${note})` : ""}`;
    }
  }
  if (segments.length === 1) {
    const section = closest(last, SECTION_NAMES);
    const sameName = keys.filter((k) => k.name === normalized);
    if (sameName.length > 0) {
      return `; keys are grouped by section: use ${sameName.map((k) => k.path).join(" or ")}`;
    }
    if (section) return `; did you mean section "${section}"?`;
    return `; top-level keys are the sections ${SECTION_NAMES.join(", ")}`;
  }
  const elsewhere = keys.filter((k) => k.name === normalized && k.path !== path);
  if (elsewhere.length > 0) return `; did you mean ${elsewhere.map((k) => k.path).join(" or ")}?`;
  const section = segments.slice(0, -1).join(".");
  const siblings = keys.filter((k) => k.section === section).map((k) => k.name);
  const sibling = closest(normalized, siblings);
  if (sibling) return `; did you mean ${section}.${sibling}?`;
  const anywhere = closest(
    normalized,
    keys.map((k) => k.name),
  );
  if (anywhere) {
    const full = keys.find((k) => k.name === anywhere)!.path;
    return `; did you mean ${full}?`;
  }
  return siblings.length > 0 ? `; keys under ${section}: ${siblings.join(", ")}` : "";
}
