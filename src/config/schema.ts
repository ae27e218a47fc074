/**
 * The sat-llm configuration schema: one strict object per concern (model, team, tasks, rollout, algo,
 * optim, pretrain, eval, run, backend). Every leaf carries its default, a type/range text and a one-line help
 * string that names the TRL / verl / OpenRLHF equivalent where one exists (conventions.md §1).
 * Cross-field rules are in rules.ts; `load.ts` applies the schema once, at the edge.
 * This file does no I/O and imports nothing from the rest of the project.
 */
import * as z from "zod";

// ---------------------------------------------------------------------------------------------
// Leaf builders: each returns a zod schema with its default and help attached, and records the
// human-readable type text that `listKeys`, `--print-defaults` and error messages show.

interface Range {
  min?: number; // inclusive
  max?: number; // inclusive
  gt?: number; // exclusive
  lt?: number; // exclusive
}

const LEAF_TYPES = new WeakMap<z.ZodType, string>();

function rangeText({ min, max, gt, lt }: Range): string {
  const lo = min ?? gt;
  const hi = max ?? lt;
  if (lo !== undefined && hi !== undefined) {
    return `in ${min !== undefined ? "[" : "("}${lo}, ${hi}${max !== undefined ? "]" : ")"}`;
  }
  if (lo !== undefined) return `${min !== undefined ? "≥" : ">"} ${lo}`;
  if (hi !== undefined) return `${max !== undefined ? "≤" : "<"} ${hi}`;
  return "";
}

function numberSchema(r: Range, integer: boolean): z.ZodNumber {
  let s = integer ? z.number().int() : z.number();
  if (r.min !== undefined) s = s.gte(r.min);
  if (r.max !== undefined) s = s.lte(r.max);
  if (r.gt !== undefined) s = s.gt(r.gt);
  if (r.lt !== undefined) s = s.lt(r.lt);
  return s;
}

function typed<T extends z.ZodType>(schema: T, typeText: string): T {
  LEAF_TYPES.set(schema, typeText);
  return schema;
}

function numText(r: Range, integer: boolean): string {
  return `${integer ? "integer" : "number"} ${rangeText(r)}`.trim();
}

const real = (def: number, r: Range, help: string) =>
  typed(numberSchema(r, false).default(def).describe(help), numText(r, false));
const realOrNull = (def: number | null, r: Range, help: string) =>
  typed(numberSchema(r, false).nullable().default(def).describe(help), `${numText(r, false)}, or null`);
const int = (def: number, r: Range, help: string) =>
  typed(numberSchema(r, true).default(def).describe(help), numText(r, true));
const intOrNull = (def: number | null, r: Range, help: string) =>
  typed(numberSchema(r, true).nullable().default(def).describe(help), `${numText(r, true)}, or null`);
/** A cadence in steps: -1 (off) or a positive integer. */
const cadence = (def: number, help: string) =>
  typed(
    z
      .number()
      .int()
      .refine((v) => v === -1 || v >= 1, { message: "must be -1 or an integer ≥ 1" })
      .default(def)
      .describe(help),
    "integer: -1 (off) or ≥ 1",
  );
const flag = (def: boolean, help: string) => typed(z.boolean().default(def).describe(help), "boolean");
const text = (def: string, help: string) =>
  typed(z.string().min(1).default(def).describe(help), "non-empty string");
const textOrNull = (def: string | null, help: string) =>
  typed(z.string().min(1).nullable().default(def).describe(help), "non-empty string, or null");
function choice<const T extends readonly [string, ...string[]]>(values: T, def: T[number], help: string) {
  return typed(
    z
      .enum(values)
      .default(def as never)
      .describe(help),
    `one of ${values.join(" | ")}`,
  );
}
function choiceOrNull<const T extends readonly [string, ...string[]]>(values: T, help: string) {
  return typed(
    z.enum(values).nullable().default(null).describe(help),
    `one of ${values.join(" | ")}, or null`,
  );
}
const intList = (def: number[], r: Range, help: string) =>
  typed(
    z
      .array(numberSchema(r, true))
      .min(1)
      .default(() => [...def])
      .describe(help),
    `non-empty list of integers ${rangeText(r)}`,
  );
const realOrNullList = (r: Range, help: string) =>
  typed(
    z
      .array(numberSchema(r, false).nullable())
      .default(() => [])
      .describe(help),
    `list of (number ${rangeText(r)} or null)`,
  );
const textOrNullList = (help: string) =>
  typed(
    z
      .array(z.string().min(1).nullable())
      .default(() => [])
      .describe(help),
    "list of (path or null)",
  );
const variables = (help: string) =>
  typed(
    z
      .record(z.string(), z.unknown())
      .default(() => ({}))
      .describe(help),
    "mapping of names to values",
  );
const realPair = (def: [number, number], r: Range, help: string) =>
  typed(
    z
      .tuple([numberSchema(r, false), numberSchema(r, false)])
      .default((): [number, number] => [def[0], def[1]])
      .describe(help),
    `[number, number], each ${rangeText(r)}`,
  );

// ---------------------------------------------------------------------------------------------
// Sections. Order inside a section is the order `--print-defaults` shows.

const model = z.strictObject({
  preset: choice(
    ["nano", "micro", "small", "base"],
    "nano",
    "size preset: nano ≈0.1M, micro ≈0.8M, small ≈3M, base ≈10M parameters",
  ),
  arch: choice(
    ["gpt2", "llama"],
    "gpt2",
    "structure: gpt2 (LayerNorm, learned positions, GELU) or llama (RMSNorm, RoPE, SwiGLU, GQA)",
  ),
  d_model: intOrNull(
    null,
    { min: 8, max: 4096 },
    "width C; null = the preset's (HF hidden_size, nanoGPT n_embd)",
  ),
  n_layers: intOrNull(
    null,
    { min: 1, max: 64 },
    "transformer blocks L; null = the preset's (HF num_hidden_layers)",
  ),
  n_heads: intOrNull(null, { min: 1, max: 64 }, "attention heads, must divide d_model; null = the preset's"),
  n_kv_heads: intOrNull(
    null,
    { min: 1, max: 64 },
    "key/value heads (grouped-query attention, llama only), must divide n_heads; null = n_heads",
  ),
  d_ff: intOrNull(
    null,
    { min: 1, max: 65536 },
    "MLP hidden size; null = the preset's (HF intermediate_size)",
  ),
  max_seq_len: intOrNull(
    null,
    { min: 8, max: 65536 },
    "context length in tokens, must hold a prompt plus a full transcript; null = the preset's",
  ),
  tokenizer: textOrNull(
    null,
    "model directory (or tokenizer.json) whose tokenizer the team uses (HF AutoTokenizer path); null = the agents' checkpoints' own, else the built-in character tokenizer",
  ),
  chat_template: flag(
    true,
    "wrap prompts in the tokenizer's chat template with the generation prompt when it has one (TRL/verl apply_chat_template); false = BOS (if any) + raw text",
  ),
  chat_template_kwargs: variables(
    "extra chat-template variables, e.g. {enable_thinking: false} for Qwen3 (verl data.apply_chat_template_kwargs)",
  ),
  eot_token: textOrNull(
    null,
    "token that ends a relay turn, as the text of one token; null = the tokenizer's: <eot>, else <|im_end|>, <|eot_id|>, <end_of_turn> or <|end|>",
  ),
  eos_token: textOrNull(
    null,
    "token that ends an episode, as the text of one token; null = the tokenizer's eos_token, or its document end (<|endoftext|>, ...) when that is the turn token (HF eos_token)",
  ),
  backend: choice(
    ["engine", "torch"],
    "engine",
    "where agents run: engine = this package's own CPU engine; torch = PyTorch workers (CPU or GPU, optionally on Ray; backend.torch_*, docs/scale-out.md)",
  ),
});

const team = z.strictObject({
  n_agents: int(3, { min: 1, max: 16 }, "agents in the team (n)"),
  protocol: choice(
    ["relay", "independent"],
    "relay",
    "relay: agents take turns on one shared transcript; independent: each answers alone, majority vote",
  ),
  rounds: int(1, { min: 1, max: 16 }, "relay rounds R (each agent speaks once per round)"),
  max_turn_tokens: int(
    16,
    { min: 1, max: 8192 },
    "token cap of one relay turn M (a turn also ends at the end-of-turn token)",
  ),
  kl_radius: realOrNullList(
    { gt: 0, max: 10 },
    "per-agent trust-region radius δ_i; [] or a null entry = algo.kl_radius",
  ),
  agent_checkpoints: textOrNullList(
    "per-agent starting weights (checkpoint dirs); [] or a null entry = the run's own initial model",
  ),
});

const tasks = z.strictObject({
  name: text("add", "built-in task family (see `sat tasks list`); ignored when tasks.dataset is set"),
  difficulty: intOrNull(null, { min: 0, max: 100 }, "task difficulty; null = the family's default"),
  test_percent: real(
    10,
    { gt: 0, lt: 100 },
    "percent of problems (chosen by content hash) held out for evaluation",
  ),
  dataset: textOrNull(
    null,
    "your problems as a .jsonl or .parquet file, one per line/row; null = generate from tasks.name (verl data.train_files, TRL dataset_name)",
  ),
  preset: choiceOrNull(
    ["gsm8k", "math", "verl"],
    "field layout of tasks.dataset: gsm8k = question/answer ending '#### n'; math = problem/solution with \\boxed{}; verl = prompt as chat messages + reward_model.ground_truth (DAPO-Math); null = prompt/answer/solution",
  ),
  prompt_field: textOrNull(
    null,
    "field holding the prompt, text or chat messages [{role, content}]; a dotted path reaches nested fields; null = the preset's (verl data.prompt_key)",
  ),
  answer_field: textOrNull(
    null,
    "field holding the reference answer; with the math verifier a worked solution works too (its last \\boxed{} or '#### n'); null = the preset's (verl reward_model.ground_truth)",
  ),
  solution_field: textOrNull(
    null,
    "field holding a worked solution, the target of `sat pretrain`; null = the preset's (for verl none: the answer alone is the target)",
  ),
  verifier: choiceOrNull(
    ["exact", "math"],
    "how a completion is checked against the answer: exact (text after the last '#') or math (\\boxed{}/'####'/'answer:', normalised, symbolic equivalence); null = math for a preset, else exact (TRL reward_funcs, verl reward function)",
  ),
});

const rollout = z.strictObject({
  prompts_per_step: int(
    8,
    { min: 1, max: 65536 },
    "prompts per stage P, never completions (verl data.train_batch_size, OpenRLHF rollout_batch_size)",
  ),
  n: int(
    8,
    { min: 1, max: 1024 },
    "team trajectories per prompt, the group size G (TRL num_generations, verl rollout.n, OpenRLHF n_samples_per_prompt)",
  ),
  temperature: real(
    1,
    { gt: 0, max: 10 },
    "sampling temperature, part of the policy being trained (TRL/verl temperature)",
  ),
  top_p: real(1, { gt: 0, max: 1 }, "nucleus sampling mass, 1 = off (TRL/verl top_p)"),
  max_completion_length: int(
    48,
    { min: 1, max: 65536 },
    "token cap of the whole team transcript (TRL max_completion_length, verl data.max_response_length)",
  ),
  max_prompt_length: int(
    32,
    { min: 1, max: 65536 },
    "longest prompt in tokens; a longer prompt is an error, never truncated (verl data.max_prompt_length)",
  ),
});

const algo = z.strictObject({
  name: choice(
    ["sat", "joint", "happo", "single", "independent-vote"],
    "sat",
    "sat = sequential updates with a checked KL trust region; joint = all agents at once; happo = sequential, clip only; single = one model; independent-vote = agents trained alone, majority vote",
  ),
  adv_estimator: choice(
    ["group", "gae"],
    "group",
    "group = z-score of returns within each prompt's group; gae = value head + GAE (verl algorithm.adv_estimator)",
  ),
  scale_rewards: choice(
    ["group", "batch", "none"],
    "group",
    "std used to scale advantages: per group, whole batch, or none (TRL scale_rewards)",
  ),
  adv_clip: real(
    5,
    { gt: 0, max: 1e6 },
    "advantages are clipped to ±adv_clip (A_clip; also bounds A_max in the certificate)",
  ),
  gamma: real(1, { min: 0, max: 1 }, "discount for gae (verl algorithm.gamma)"),
  lam: real(0.95, { min: 0, max: 1 }, "GAE λ (verl algorithm.lam)"),
  clip_ratio_low: real(
    0.2,
    { gt: 0, lt: 1 },
    "clip ε below 1 (TRL epsilon, verl actor.clip_ratio_low, OpenRLHF eps_clip)",
  ),
  clip_ratio_high: realOrNull(
    null,
    { gt: 0, max: 10 },
    "clip ε above 1; null = clip_ratio_low (TRL epsilon_high, verl actor.clip_ratio_high)",
  ),
  kl_coef: real(
    0.1,
    { min: 0, max: 1000 },
    "initial KL penalty β of each agent (TRL beta, verl actor.kl_loss_coef, OpenRLHF init_kl_coef)",
  ),
  kl_coef_growth: real(
    1.5,
    { min: 1, max: 100 },
    "factor by which β moves between stages (up after a step outside δ, down after one well inside)",
  ),
  kl_coef_rule: choice(
    ["adaptive", "grow"],
    "adaptive",
    "adaptive: PPO's adaptive KL on the full step's KL quantile q (q > δ → β·growth, q < δ/growth → β/growth; verl kl_ctrl.type=adaptive); grow: β·growth after a violation, never lowered",
  ),
  kl_coef_min: real(1e-4, { min: 0, max: 1e6 }, "lower bound of β under the adaptive rule"),
  kl_coef_max: real(1e3, { min: 0, max: 1e6 }, "upper bound of β"),
  trust_region: choiceOrNull(
    ["checked", "penalty", "none"],
    "checked = β·KL penalty + exact per-state KL check with backtracking; penalty = β only; none = neither; null = the algorithm's own (sat: checked, baselines: none)",
  ),
  ratio_level: choice(
    ["sequence", "token"],
    "sequence",
    "importance ratio per agent turn: sequence = product over the agent's tokens (SAT), token = per token with token-mean loss (TRL importance_sampling_level=token, verl loss_agg_mode=token-mean)",
  ),
  kl_radius: real(
    0.01,
    { gt: 0, max: 10 },
    "trust-region radius δ on the exact per-state KL(new ‖ current); per agent via team.kl_radius",
  ),
  kl_quantile: real(
    0.99,
    { gt: 0, max: 1 },
    "level 1-α: an update is accepted iff this quantile of per-state KL is ≤ δ",
  ),
  ppo_epochs: int(
    2,
    { min: 1, max: 1000 },
    "passes over each stage's batch E (TRL num_iterations, verl actor.ppo_epochs, OpenRLHF max_epochs)",
  ),
  ppo_mini_batch_size: int(
    4,
    { min: 1, max: 65536 },
    "prompts per minibatch; a group is never split (verl actor.ppo_mini_batch_size)",
  ),
  order: choice(
    ["static", "random", "greedy"],
    "random",
    "agent update order σ: static (0..n-1), random (seeded), greedy (descending predicted gain)",
  ),
  max_backtracks: int(
    10,
    { min: 0, max: 1000 },
    "line-search candidates θ_cur + ξ^j·Δ tried before keeping the old agent",
  ),
  backtrack_ratio: real(0.8, { gt: 0, lt: 1 }, "line-search shrink factor ξ"),
  intermediate: choice(
    ["reweight", "resample"],
    "reweight",
    "intermediate policy: reweight old rollouts by truncated ratios, or resample fresh ones (n× rollout cost)",
  ),
  dkw_eta: real(0.05, { gt: 0, lt: 1 }, "η of the logged DKW slack sqrt(log(2/η)/(2N)) on the KL quantile"),
  cert_gamma: real(
    0.99,
    { gt: 0, lt: 1 },
    "γ of the certificate's discounted bound (loose for episodic tasks; reported anyway)",
  ),
  cert_confidence: real(
    0.05,
    { gt: 0, lt: 1 },
    "δ_conf of the certificate's finite-sample term (the bound holds with probability 1 − δ_conf)",
  ),
  cert_prompts: int(
    16,
    { min: 0, max: 65536 },
    "held-out prompts (× algo.cert_samples samples, the same before and after) for each stage's measured improvement cert/improvement; 0 = off",
  ),
  cert_samples: intOrNull(
    null,
    { min: 1, max: 4096 },
    "samples per held-out prompt for cert/improvement; null = rollout.n (for a fixed cost, more prompts with fewer samples each give a tighter paired interval)",
  ),
});

const optim = z.strictObject({
  lr: real(
    1e-4,
    { gt: 0, max: 1 },
    "AdamW learning rate of RL stages (TRL learning_rate, verl actor.optim.lr; upstream 1e-6 suits pretrained LLMs, tiny models need more)",
  ),
  betas: realPair([0.9, 0.999], { min: 0, lt: 1 }, "AdamW β1, β2 (HF adam_beta1, adam_beta2)"),
  eps: real(1e-8, { gt: 0, max: 1 }, "AdamW ε (HF adam_epsilon)"),
  weight_decay: real(0, { min: 0, max: 1 }, "decoupled weight decay (HF weight_decay)"),
  max_grad_norm: real(
    1,
    { min: 0, max: 1e6 },
    "gradient-norm clip, 0 disables (HF max_grad_norm, verl actor.grad_clip, OpenRLHF max_norm)",
  ),
});

const pretrain = z.strictObject({
  agents: int(
    1,
    { min: 1, max: 16 },
    "distinct base agents to pretrain (seeds differ); the team reuses them in turn, so 1 = every agent starts as copies of one",
  ),
  steps: int(2000, { min: 0, max: 1e8 }, "supervised steps on worked solutions before RL; 0 = skip"),
  batch_size: int(32, { min: 1, max: 65536 }, "sequences per supervised step"),
  lr: real(1e-3, { gt: 0, max: 1 }, "AdamW learning rate of supervised pretraining"),
  target_accuracy: realOrNull(
    0.5,
    { min: 0, max: 1 },
    "stop once held-out greedy accuracy reaches this, leaving headroom for RL; null = run all steps",
  ),
  eval_steps: int(200, { min: 1, max: 1e8 }, "measure held-out accuracy every this many steps"),
});

const swap = z.strictObject({
  delta0: realOrNull(
    null,
    { gt: 0, max: 10 },
    "Stage-0 radius δ0 of a plug-and-play swap (sat swap): the new agent is projected into this KL ball around the one it replaces; null = algo.kl_radius",
  ),
  distill_prompts: intOrNull(
    null,
    { min: 1, max: 1e6 },
    "train prompts whose team rollouts (× rollout.n) the new agent is distilled on; null = 4 × rollout.prompts_per_step",
  ),
  distill_epochs: int(40, { min: 1, max: 1e6 }, "passes of distillation over those rollouts"),
  distill_lr: realOrNull(null, { gt: 0, max: 1 }, "AdamW learning rate of distillation; null = optim.lr"),
});

const evalSection = z.strictObject({
  steps: cadence(
    -1,
    "evaluate every this many stages; -1 = only before training (eval.before_train) and at the end (verl trainer.test_freq)",
  ),
  before_train: flag(true, "evaluate the initial team before stage 1 (verl trainer.val_before_train)"),
  n: int(
    8,
    { min: 1, max: 4096 },
    "samples per prompt, at least every k in eval.k (verl val_kwargs.n, OpenRLHF eval_n_samples_per_prompt)",
  ),
  k: intList([1, 4, 8], { min: 1 }, "k values for pass@k, maj@k and avg@k"),
  temperature: real(
    1,
    { min: 0, max: 10 },
    "sampling temperature at evaluation; 0 = greedy (then eval.n must be 1)",
  ),
  top_p: real(1, { gt: 0, max: 1 }, "nucleus sampling mass at evaluation"),
  n_prompts: int(200, { min: 1, max: 1e7 }, "held-out (test split) prompts per evaluation"),
  bootstrap_samples: int(
    1000,
    { min: 0, max: 1e7 },
    "bootstrap resamples for confidence intervals; 0 = none",
  ),
});

const run = z.strictObject({
  output_dir: textOrNull(null, "run directory; null = runs/<command>-<date>-<time> (TRL output_dir)"),
  seed: int(
    42,
    { min: 0, max: 4294967295 },
    "root seed; data, rollout, order and init streams are derived from it (TRL/OpenRLHF seed)",
  ),
  max_steps: int(
    50,
    { min: 1, max: 1e8 },
    "SAT stages to run; a stage = rollout + one sweep over all agents (TRL max_steps, verl total_training_steps)",
  ),
  logging_steps: int(
    1,
    { min: 1, max: 1e8 },
    "console line every this many stages; stages.jsonl gets every stage (TRL logging_steps)",
  ),
  max_tokens: intOrNull(
    null,
    { min: 1, max: 1e15 },
    "stop once the training rollouts have generated this many tokens (budget-matched comparisons across algorithms); null = run.max_steps only",
  ),
  save_steps: cadence(
    -1,
    "checkpoint every this many stages (pretraining: steps); -1 = only by run.save_interval_s, on Ctrl-C and at the end (HF save_steps, verl trainer.save_freq)",
  ),
  save_interval_s: real(
    60,
    { min: 0, max: 1e9 },
    "also checkpoint at the end of a stage (pretraining: step) once this many seconds passed since the last checkpoint; 0 = off",
  ),
  save_total_limit: intOrNull(
    3,
    { min: 1, max: 1e6 },
    "keep only the newest this many checkpoints; null = keep all (HF save_total_limit, OpenRLHF max_ckpt_num)",
  ),
  threads: intOrNull(null, { min: 1, max: 64 }, "worker threads for the dense kernels; null = every core"),
  kernels: choice(
    ["auto", "native", "wasm", "ts"],
    "auto",
    "kernel tier: auto (native when its addon loads on this CPU, else wasm), native (C, AVX-512/AVX2), wasm (WebAssembly SIMD), ts (reference, slow)",
  ),
});

// Other backends (docs/scale-out.md): rollouts through an OpenAI-compatible server (rollout_*), agents
// in PyTorch workers (torch_*, with model.backend = torch) and their Ray launcher (ray_*).
const backend = z.strictObject({
  rollout_url: textOrNull(
    null,
    "base URL of an OpenAI-compatible server that writes the served agents' turns, e.g. http://127.0.0.1:8000 (vLLM, SGLang, llama.cpp, sat serve); null = sample in-process (verl rollout.name, TRL vllm_mode=server)",
  ),
  rollout_api: choice(
    ["vllm", "sglang", "llamacpp", "sat"],
    "vllm",
    "the server family, which fixes the request fields and how token ids and log-probs come back (docs/scale-out.md)",
  ),
  rollout_model: text(
    "agent-{agent}@v{version}",
    "served name of an agent's weights; {agent} = agent index, {version} = policy version (required: a reply from other weights is refused)",
  ),
  rollout_agents: typed(
    z
      .array(z.number().int().min(0).max(15))
      .default(() => [])
      .describe("agents whose turns the server writes; [] = every agent (the others sample in-process)"),
    "list of agent indices",
  ),
  rollout_publish_dir: textOrNull(
    null,
    "trained served agents: each new version is written here and loaded by the server under its versioned name (sat serve --load-dir); null = the server holds fixed weights",
  ),
  rollout_timeout_s: real(120, { gt: 0, max: 86400 }, "seconds one request may take before it is retried"),
  rollout_retries: int(
    3,
    { min: 0, max: 100 },
    "retries of a request after a timeout, a lost connection or HTTP 5xx/429",
  ),
  rollout_backoff_s: real(
    1,
    { min: 0, max: 600 },
    "wait before the first retry, doubled for each further one",
  ),
  rollout_concurrency: int(32, { min: 1, max: 4096 }, "requests in flight at most (one per episode turn)"),
  torch_device: choice(
    ["auto", "cpu", "cuda"],
    "auto",
    "device of the PyTorch workers; auto = cuda when torch sees a GPU (TRL use_cpu)",
  ),
  torch_dtype: choice(
    ["float32", "bfloat16"],
    "float32",
    "parameter and compute dtype of the PyTorch workers (TRL torch_dtype, verl actor.fsdp_config.param_dtype); log-probs and KL are computed in float64 from float32 logits",
  ),
  torch_launcher: choice(
    ["process", "ray"],
    "process",
    "how workers start: process = local Python processes; ray = Ray actors through a driver (backend.ray_*)",
  ),
  torch_workers: choice(
    ["per_agent", "shared"],
    "per_agent",
    "per_agent = one worker per agent (on GPU k mod #GPUs with the process launcher); shared = one worker for the team, where LoRA agents share one base model",
  ),
  torch_lora_rank: int(
    0,
    { min: 0, max: 4096 },
    "PEFT LoRA rank of each agent's adapter; 0 = full fine-tuning (verl actor_rollout_ref.model.lora_rank)",
  ),
  torch_lora_alpha: real(16, { gt: 0, max: 1e6 }, "LoRA α (verl lora_alpha, PEFT lora_alpha)"),
  torch_lora_target_modules: text(
    "all-linear",
    "modules that get adapters: all-linear or a comma-separated list of module names (verl target_modules)",
  ),
  torch_micro_batch_size: int(
    16,
    { min: 1, max: 65536 },
    "trajectories per forward pass in a worker; memory only (verl ppo_micro_batch_size_per_gpu)",
  ),
  torch_ref_cache_mb: real(
    1024,
    { min: 0, max: 1e7 },
    "π_cur's log-prob rows are kept for an update when they fit in this many MiB, else recomputed from θ_cur (large vocabularies)",
  ),
  torch_threads: intOrNull(
    null,
    { min: 1, max: 1024 },
    "torch intra-op threads per worker; null = torch's default (set it for bit-identical reruns across machines)",
  ),
  torch_timeout_s: real(
    600,
    { gt: 0, max: 1e6 },
    "seconds one worker request may take; a worker that does not answer is stopped and the stage fails",
  ),
  torch_python: textOrNull(
    null,
    "Python interpreter of the workers; null = $SAT_PYTHON, else ./.venv/bin/python, else python3 (see sat doctor)",
  ),
  ray_address: textOrNull(
    null,
    "Ray cluster to put the agents' workers on (auto, ray://host:10001); null = ray.init() on this machine (verl ray_init)",
  ),
  ray_num_cpus: real(1, { gt: 0, max: 1024 }, "CPUs reserved for each agent's actor"),
  ray_num_gpus: real(
    0,
    { min: 0, max: 64 },
    "GPUs reserved for each agent's actor (verl trainer.n_gpus_per_node)",
  ),
  ray_ship_files: flag(
    true,
    "send model and checkpoint files to and from the actors through Ray; false = every node sees the same paths (shared file system)",
  ),
});

/** The sections, in the order they are printed. */
export const SECTIONS = {
  model,
  team,
  tasks,
  rollout,
  algo,
  optim,
  pretrain,
  swap,
  eval: evalSection,
  run,
  backend,
} as const;

export type SectionName = keyof typeof SECTIONS;
export const SECTION_NAMES = Object.keys(SECTIONS) as SectionName[];

/** The whole config; every section may be omitted (it then takes its defaults). */
export const ConfigSchema = z.strictObject({
  model: model.prefault({}),
  team: team.prefault({}),
  tasks: tasks.prefault({}),
  rollout: rollout.prefault({}),
  algo: algo.prefault({}),
  optim: optim.prefault({}),
  pretrain: pretrain.prefault({}),
  swap: swap.prefault({}),
  eval: evalSection.prefault({}),
  run: run.prefault({}),
  backend: backend.prefault({}),
});

type DeepReadonly<T> = T extends readonly unknown[]
  ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

/** The schema's output before derived defaults are filled in. */
export type ParsedConfig = z.output<typeof ConfigSchema>;

/** What the library receives: validated, derived defaults filled in, frozen. */
export type ResolvedConfig = DeepReadonly<
  Omit<ParsedConfig, "algo"> & {
    algo: Omit<ParsedConfig["algo"], "clip_ratio_high"> & { clip_ratio_high: number };
  }
>;

export type ModelSection = ResolvedConfig["model"];
export type TeamConfig = ResolvedConfig["team"];
export type TasksConfig = ResolvedConfig["tasks"];
export type RolloutConfig = ResolvedConfig["rollout"];
export type AlgoConfig = ResolvedConfig["algo"];
export type OptimConfig = ResolvedConfig["optim"];
export type PretrainConfig = ResolvedConfig["pretrain"];
export type SwapConfig = ResolvedConfig["swap"];
export type EvalConfig = ResolvedConfig["eval"];
export type RunConfig = ResolvedConfig["run"];
export type BackendConfig = ResolvedConfig["backend"];

// ---------------------------------------------------------------------------------------------
// Introspection: every leaf key with its default, type and help (for `sat config`, docs, tests).

export interface KeyInfo {
  /** Dotted path, e.g. "algo.kl_radius". */
  path: string;
  section: SectionName;
  name: string;
  default: unknown;
  /** Human-readable type and range, e.g. "number in (0, 1)". */
  type: string;
  description: string;
}

let defaultsCache: ParsedConfig | undefined;

/** The parsed defaults (before derived values), e.g. clip_ratio_high = null. */
export function parsedDefaults(): ParsedConfig {
  defaultsCache ??= ConfigSchema.parse({});
  return structuredClone(defaultsCache);
}

export function listKeys(): KeyInfo[] {
  const defaults = parsedDefaults() as unknown as Record<string, Record<string, unknown>>;
  const out: KeyInfo[] = [];
  for (const section of SECTION_NAMES) {
    const shape = SECTIONS[section].shape as Record<string, z.ZodType>;
    for (const [name, leaf] of Object.entries(shape)) {
      out.push({
        path: `${section}.${name}`,
        section,
        name,
        default: defaults[section][name],
        type: LEAF_TYPES.get(leaf) ?? "value",
        description: leaf.description ?? "",
      });
    }
  }
  return out;
}
