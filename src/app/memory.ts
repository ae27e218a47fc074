/**
 * Memory a SAT stage and an evaluation will need, estimated from the model and rollout sizes
 * before anything is allocated, so a setting that cannot fit is refused with the estimate and the
 * largest setting that does, instead of a V8 out-of-memory crash minutes in. Pure functions: the
 * caller passes the budgets (free memory, the engine's heap limit, V8's heap limit).
 *
 * What is counted follows where the current code keeps its data (B = trajectories scored at once,
 * T = prompt + completion tokens, S = agent-written states, V = vocabulary, P = parameters):
 *   weights     per agent: parameters and gradients (engine heap), AdamW moments, and while an
 *               agent updates its snapshot, θ0 and Δ in float64;
 *   activations per agent model: the teacher-forced forward over all B·T rows of the stage batch
 *               (every layer's saved activations, attention B·H·T², backward scratch; the LM head
 *               runs on chunks of scored states, so no (B·T, V) logits), the head's chunk buffers,
 *               and the KV-cache decoders of the rollout and of evaluation;
 *   logprobs    float32 log-prob rows: π_cur rows (S_a, V) of the agent being updated, and one
 *               piece of at most ROW_CHUNK_ENTRIES entries (or one trajectory) with its gradient;
 *   rollouts    trajectories as typed arrays and objects, the rollout's growing episode arrays, the
 *               held-out batches before and after, and the per-state references.
 * It is an upper-side estimate (prompts count at rollout.max_prompt_length, completions at their
 * cap); test/memory.test.ts compares it with measured peak RSS.
 */
import type { ResolvedConfig } from "../config/schema.js";
import type { ModelConfig } from "../model/config.js";
import { ROW_CHUNK_ENTRIES } from "../algorithm/row-learner.js";
import { headChunkRows } from "../team/lm-policy.js";

export interface ModelDims {
  arch: ModelConfig["arch"];
  params: number;
  nLayers: number;
  dModel: number;
  dFF: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  vocabSize: number;
  maxSeqLen: number;
}

export interface StageShape {
  /** Models trained (1 for the single-model baseline). */
  agents: number;
  protocol: "relay" | "independent";
  /** rollout.prompts_per_step and rollout.n. */
  prompts: number;
  group: number;
  /** Longest prompt in tokens (with <bos>). */
  promptTokens: number;
  /** Longest transcript after the prompt: rollout.max_completion_length, or less when turns cap it. */
  completionTokens: number;
  /** algo.ppo_mini_batch_size (prompts). */
  miniBatchPrompts: number;
  /** Held-out prompts rolled out before and after each stage (0 = none), and samples per prompt (default group). */
  heldOutPrompts: number;
  heldOutSamples?: number;
  /** algo.intermediate = resample: one extra batch per agent after the first. */
  resample: boolean;
  /** algo.adv_estimator = gae: a critic model of the agents' size. */
  critic: boolean;
}

export interface EvalShape {
  agents: number;
  protocol: "relay" | "independent";
  prompts: number;
  samples: number;
  promptTokens: number;
  completionTokens: number;
  /** Prompts rolled out together (evaluation works in batches). */
  batchPrompts: number;
}

export interface MemoryParts {
  weights: number;
  activations: number;
  logprobs: number;
  rollouts: number;
}

export interface MemoryEstimate {
  /** Everything, in bytes. */
  total: number;
  /** The part on the engine's float heap (a WebAssembly memory of at most 4 GiB with the wasm kernels). */
  engine: number;
  /** The part in V8's garbage-collected heap (JS objects and arrays; limited by --max-old-space-size). */
  jsHeap: number;
  parts: MemoryParts;
}

export interface MemoryBudget {
  /** Bytes the machine (or the cgroup) can still give this process. */
  available: number;
  /** Limit of the engine's float heap, or null when the engine uses plain arrays. */
  engineLimit: number | null;
  /** Engine bytes other users keep (evaluation decoders next to the stage's buffers). */
  engineReserved?: number;
  /** V8's heap limit in bytes. */
  jsHeapLimit: number;
}

const F32 = 4;
const F64 = 8;
/** Measured with node 20 (no pointer compression): a {traj, t} object plus its array slot. */
const STATE_REF_BYTES = 56;
/** A finished trajectory object with its four typed-array headers and small strings. */
const TRAJECTORY_OBJECT_BYTES = 1000;
/** A rollout episode's growing JS arrays, per token (four arrays, spare capacity included). */
const EPISODE_BYTES_PER_TOKEN = 48;
const EPISODE_BYTES = 400;

/** Float32 elements of the saved activations and backward scratch per row of a forward of T tokens. */
function activationFloatsPerRow(m: ModelDims, T: number): number {
  const C = m.dModel;
  const F = m.dFF;
  const q = m.nHeads * m.headDim;
  const kv = m.nKvHeads * m.headDim;
  const gpt2 = m.arch === "gpt2";
  const qk = m.arch === "qwen3";
  const perLayer =
    C +
    2 +
    (gpt2 ? 3 * C : 0) +
    (qk ? q + kv + m.nHeads + m.nKvHeads : 0) +
    q +
    2 * kv +
    q +
    C +
    C +
    C +
    2 +
    F +
    (gpt2 ? 0 : F) +
    F +
    C +
    C +
    T * m.nHeads; // the last term: attention weights, B·H·T·T per layer
  const global =
    2 + C + C + 2 + C + C + q + 2 * kv + (gpt2 ? 3 * C : 0) + (qk ? q + kv : 0) + q + F + (gpt2 ? 0 : F) + F;
  return m.nLayers * perLayer + global;
}

/** Engine bytes of a KV-cache decoder for B sequences of up to T tokens. */
function decoderBytes(m: ModelDims, B: number, T: number): number {
  const kv = m.nKvHeads * m.headDim;
  const q = m.nHeads * m.headDim;
  const C = m.dModel;
  const cache = m.nLayers * 2 * B * T * kv;
  const scratch =
    B * (2 * C + 2 + 3 * C + q + 2 * kv + m.nHeads + m.nKvHeads + q + C + 3 * m.dFF + m.vocabSize);
  return F32 * (cache + scratch + T);
}

const tokensOf = (m: ModelDims, promptTokens: number, completionTokens: number) =>
  Math.min(m.maxSeqLen, promptTokens + completionTokens);

/** A stage's memory (see the file header for what is counted). */
export function estimateStage(m: ModelDims, s: StageShape): MemoryEstimate {
  const T = tokensOf(m, s.promptTokens, s.completionTokens);
  const writers = s.protocol === "independent" ? s.agents : 1;
  // Trajectories of one stage batch, and those one agent's model scores at once.
  const N = s.prompts * s.group * writers;
  const scored = s.protocol === "independent" ? s.prompts * s.group : N;
  const completion = Math.min(s.completionTokens, T - 1);
  // States: tokens the agents wrote (a relay transcript's completion is shared among them).
  const S = N * completion;
  const Sa = s.protocol === "independent" ? scored * completion : S / s.agents;
  const models = s.agents + (s.critic ? 1 : 0);

  const weights =
    models * (2 * F32 * m.params + 2 * F32 * m.params) + // params + grads (engine), AdamW m, v
    F32 * 3 * m.params +
    F64 * 2 * m.params; // one agent's snapshot (params, m, v), θ0 and Δ
  const rows = scored * T;
  const heldOutGroup = s.heldOutSamples ?? s.group;
  const heldOutN = s.heldOutPrompts * heldOutGroup * writers;
  const chunk = Math.min(rows, headChunkRows(m.vocabSize));
  const engineActivations =
    models * F32 * rows * activationFloatsPerRow(m, T) +
    s.agents * F32 * (chunk * m.vocabSize + 2 * chunk * m.dModel + rows * m.dModel) + // LM-head chunks, d(hidden)
    s.agents * decoderBytes(m, scored, T) +
    (heldOutN > 0 && s.heldOutPrompts * heldOutGroup !== s.prompts * s.group
      ? s.agents * decoderBytes(m, s.heldOutPrompts * heldOutGroup, T)
      : 0);
  // Pieces hold whole trajectories: at least one trajectory's states (≤ completion), at most Sa.
  const piece = Math.min(Sa, Math.max(Math.floor(ROW_CHUNK_ENTRIES / m.vocabSize), completion));
  const logprobs = F32 * m.vocabSize * (Sa + 2 * piece);
  const batches = 1 + (s.resample ? s.agents - 1 : 0);
  const rolloutHeap =
    N * (EPISODE_BYTES + EPISODE_BYTES_PER_TOKEN * T) + // the rollout's episodes while it runs
    batches * N * TRAJECTORY_OBJECT_BYTES +
    2 * heldOutN * TRAJECTORY_OBJECT_BYTES +
    STATE_REF_BYTES * S;
  const rolloutExternal = batches * N * 13 * T + 2 * heldOutN * 13 * T + F64 * 3 * N * T; // + per-token traces (float64)
  const rollouts = rolloutHeap + rolloutExternal;
  const engine = models * 2 * F32 * m.params + engineActivations;
  const parts: MemoryParts = { weights, activations: engineActivations, logprobs, rollouts };
  return { total: weights + engineActivations + logprobs + rollouts, engine, jsHeap: rolloutHeap, parts };
}

/** An evaluation's memory: every sample's trajectory is kept until the metrics are computed. */
export function estimateEval(m: ModelDims, e: EvalShape): MemoryEstimate {
  const T = tokensOf(m, e.promptTokens, e.completionTokens);
  const writers = e.protocol === "independent" ? e.agents : 1;
  const kept = e.prompts * e.samples * writers;
  const batch = Math.min(e.prompts, e.batchPrompts) * e.samples;
  // Relay teams are also scored agent by agent (solo), one agent's samples at a time.
  const solo = e.protocol === "relay" && e.agents > 1 ? e.prompts * e.samples : 0;
  const perTrajectory = TRAJECTORY_OBJECT_BYTES + 200 + 13 * T; // + the re-numbered copy
  const rolloutHeap =
    (kept + solo) * (TRAJECTORY_OBJECT_BYTES + 200) +
    batch * (EPISODE_BYTES + EPISODE_BYTES_PER_TOKEN * T) +
    e.prompts * 600; // problems and per-prompt samples
  const rollouts =
    (kept + solo) * perTrajectory + batch * (EPISODE_BYTES + EPISODE_BYTES_PER_TOKEN * T) + e.prompts * 600;
  const activations = e.agents * decoderBytes(m, batch, T);
  const parts: MemoryParts = { weights: 0, activations, logprobs: 0, rollouts };
  return { total: activations + rollouts, engine: activations, jsHeap: rolloutHeap, parts };
}

/** Which budget `est` exceeds first, or null when it fits. */
export function exceeded(est: MemoryEstimate, b: MemoryBudget): string | null {
  const reserved = b.engineReserved ?? 0;
  if (b.engineLimit !== null && est.engine + reserved > b.engineLimit)
    return (
      `the engine's float heap holds at most ${formatBytes(b.engineLimit)} (its part: ${formatBytes(est.engine)}` +
      (reserved > 0 ? `, plus ${formatBytes(reserved)} for evaluation)` : ")")
    );
  if (est.jsHeap > 0.9 * b.jsHeapLimit)
    return `V8's heap limit is ${formatBytes(b.jsHeapLimit)} (its part: ${formatBytes(est.jsHeap)}; node --max-old-space-size raises it)`;
  if (est.total > b.available) return `${formatBytes(b.available)} is available`;
  return null;
}

/** The largest integer v in [1, hi] with fits(v), or 0 (fits is monotone: true up to some v). */
export function largestFitting(hi: number, fits: (v: number) => boolean): number {
  if (!fits(1)) return 0;
  let lo = 1;
  while (lo < hi) {
    const mid = Math.floor((lo + hi + 1) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** 1536 → "1.5 KB", in powers of 1000 (as free(1) -h and disks say), three significant digits. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB", "PB"];
  let v = bytes;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${u === 0 ? Math.round(v) : v.toPrecision(3)} ${units[u]}`;
}

/** "weights 3.1 MB, activations 1.2 GB, …" largest first. */
export function formatParts(p: MemoryParts): string {
  const names: Record<keyof MemoryParts, string> = {
    weights: "weights and optimizer",
    activations: "activations and KV caches",
    logprobs: "log-prob rows (S, V)",
    rollouts: "rollouts",
  };
  return (Object.keys(names) as (keyof MemoryParts)[])
    .filter((k) => p[k] > 0)
    .sort((a, b) => p[b] - p[a])
    .map((k) => `${names[k]} ${formatBytes(p[k])}`)
    .join(", ");
}

/** The sizes of a model, for the estimates. */
export function modelDims(cfg: ModelConfig, params: number): ModelDims {
  return {
    arch: cfg.arch,
    params,
    nLayers: cfg.nLayers,
    dModel: cfg.dModel,
    dFF: cfg.dFF,
    nHeads: cfg.nHeads,
    nKvHeads: cfg.nKvHeads,
    headDim: cfg.headDim,
    vocabSize: cfg.vocabSize,
    maxSeqLen: cfg.maxSeqLen,
  };
}

/**
 * The longest transcript a rollout can write after the prompt: relay turns are capped at
 * team.max_turn_tokens plus the closing <eot>, over team.rounds rounds of the whole team (a smaller
 * team gets proportionally more rounds, as in setup.ts).
 */
export function completionCap(cfg: ResolvedConfig, agents: number): number {
  if (cfg.team.protocol !== "relay") return cfg.rollout.max_completion_length;
  const rounds = Math.ceil((cfg.team.rounds * cfg.team.n_agents) / agents);
  return Math.min(cfg.rollout.max_completion_length, rounds * agents * (cfg.team.max_turn_tokens + 1));
}

/**
 * The stage of `sat train` that `cfg` describes, for a team of `agents` models whose longest
 * prompt has `promptTokens` tokens (at most rollout.max_prompt_length: a longer one is refused).
 */
export function stageShapeOf(cfg: ResolvedConfig, agents: number, promptTokens?: number): StageShape {
  return {
    agents,
    protocol: cfg.team.protocol,
    prompts: cfg.rollout.prompts_per_step,
    group: cfg.rollout.n,
    promptTokens: Math.min(promptTokens ?? Infinity, cfg.rollout.max_prompt_length),
    completionTokens: completionCap(cfg, agents),
    miniBatchPrompts: cfg.algo.ppo_mini_batch_size,
    heldOutPrompts: cfg.algo.cert_prompts,
    heldOutSamples: cfg.algo.cert_samples ?? cfg.rollout.n,
    resample: cfg.algo.intermediate === "resample",
    critic: cfg.algo.adv_estimator === "gae",
  };
}

/** The evaluation `cfg` describes (eval.*), for a team of `agents` models. */
export function evalShapeOf(cfg: ResolvedConfig, agents: number, promptTokens?: number): EvalShape {
  return {
    agents,
    protocol: cfg.team.protocol,
    prompts: cfg.eval.n_prompts,
    samples: cfg.eval.n,
    promptTokens: Math.min(promptTokens ?? Infinity, cfg.rollout.max_prompt_length),
    completionTokens: completionCap(cfg, agents),
    batchPrompts: 32,
  };
}

/** A setting that needs more memory than there is; exit code 2 (change the config). */
export class MemoryError extends Error {
  readonly exitCode = 2;
  override name = "MemoryError";
}

/**
 * Refuses a stage that does not fit `budget`, in one line: the estimate by part, which limit it
 * exceeds, and the largest rollout.prompts_per_step that fits with the given rollout.n (or, when
 * none does, the largest rollout.n with one prompt).
 */
export function checkStageMemory(m: ModelDims, s: StageShape, budget: MemoryBudget): MemoryEstimate {
  const est = estimateStage(m, s);
  const over = exceeded(est, budget);
  if (over === null) return est;
  const fitsPrompts = (p: number) =>
    exceeded(
      estimateStage(m, { ...s, prompts: p, heldOutPrompts: Math.min(s.heldOutPrompts, p) }),
      budget,
    ) === null;
  const p = largestFitting(s.prompts, fitsPrompts);
  let advice: string;
  if (p > 0) {
    advice = `the largest rollout.prompts_per_step that fits with rollout.n=${s.group} is ${p}`;
    if (s.miniBatchPrompts > p) advice += ` (with algo.ppo_mini_batch_size ≤ ${p})`;
  } else {
    const g = largestFitting(
      s.group,
      (n) =>
        exceeded(
          estimateStage(m, { ...s, prompts: 1, group: n, heldOutPrompts: Math.min(s.heldOutPrompts, 1) }),
          budget,
        ) === null,
    );
    advice =
      g > 0
        ? `even rollout.prompts_per_step=1 does not fit with rollout.n=${s.group}; the largest rollout.n that fits with one prompt is ${g}`
        : "no rollout fits: lower rollout.max_completion_length or use a smaller model";
  }
  throw new MemoryError(
    `rollout.prompts_per_step=${s.prompts} × rollout.n=${s.group}: a stage needs about ${formatBytes(est.total)} ` +
      `(${formatParts(est.parts)}) but ${over}; ${advice}`,
  );
}

/** Refuses an evaluation that does not fit `budget`, with the largest eval.n_prompts that does. */
export function checkEvalMemory(m: ModelDims, e: EvalShape, budget: MemoryBudget): MemoryEstimate {
  const est = estimateEval(m, e);
  const over = exceeded(est, budget);
  if (over === null) return est;
  const p = largestFitting(
    e.prompts,
    (n) => exceeded(estimateEval(m, { ...e, prompts: n }), budget) === null,
  );
  const advice =
    p > 0
      ? `the largest eval.n_prompts that fits with eval.n=${e.samples} is ${p}`
      : `lower eval.n (${e.samples}) or rollout.max_completion_length`;
  throw new MemoryError(
    `eval.n_prompts=${e.prompts} × eval.n=${e.samples}: an evaluation needs about ${formatBytes(est.total)} ` +
      `(${formatParts(est.parts)}) but ${over}; ${advice}`,
  );
}
