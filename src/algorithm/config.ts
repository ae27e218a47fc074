/**
 * Configuration of one SAT stage (Algorithm 1, sat-method.md §3) and of the baselines that share
 * its code path. Each field names the config key (conventions.md §1) the CLI maps onto it.
 * validateStageConfig is the single place where combinations are checked.
 */

export type AlgoName = "sat" | "joint" | "happo" | "single";
export type AdvEstimator = "group" | "gae";
export type ScaleRewards = "group" | "batch" | "none";
export type Intermediate = "reweight" | "resample";
export type OrderMode = "static" | "random" | "greedy";
export type KlCoefRule = "adaptive" | "grow";

export interface StageConfig {
  /** algo.name: sat | joint (all agents at once, clip only) | happo (ratio product, clip only) | single (GRPO, n = 1). */
  algo: AlgoName;
  /** rollout.prompts_per_step: prompts collected per stage (and per resample). */
  promptsPerStage: number;
  /** algo.clip_ratio_low / algo.clip_ratio_high: ratio clipped to [1−low, 1+high]. */
  clipLow: number;
  clipHigh: number;
  /** algo.kl_radius (team.* per-agent override): δ_i, one per agent. */
  klRadius: number[];
  /** algo.kl_quantile: 1−α, the quantile of per-state KL that must stay ≤ δ_i. */
  klQuantile: number;
  /** algo.kl_coef_growth: the factor by which β moves between stages. */
  klCoefGrowth: number;
  /** algo.kl_coef_rule: adaptive (PPO's adaptive KL on the full step's quantile) or grow (×growth after a violation, never lowered). */
  klCoefRule: KlCoefRule;
  /** algo.kl_coef_min / algo.kl_coef_max: β stays within these bounds. */
  klCoefMin: number;
  klCoefMax: number;
  /** algo.adv_clip: A_clip. */
  advClip: number;
  /** algo.max_backtracks: candidates θ_cur + ξ^j·Δ tried for j = 1..maxBacktracks after the full step. */
  maxBacktracks: number;
  /** algo.backtrack_ratio: ξ. */
  backtrackRatio: number;
  /** algo.ppo_epochs: E. */
  epochs: number;
  /** algo.ppo_mini_batch_size: minibatch size in prompt groups (a group is never split). */
  miniBatchGroups: number;
  /** algo.adv_estimator. */
  advEstimator: AdvEstimator;
  /** algo.scale_rewards: divide by the group std (group), the batch std (batch) or not at all (none). */
  scaleRewards: ScaleRewards;
  /** algo.gamma / algo.lam: GAE discount and trace parameter. */
  gamma: number;
  lam: number;
  /** algo.intermediate: reweight the stage batch by w(τ), or resample under π̂^{i−1}. */
  intermediate: Intermediate;
  /** algo.order. */
  order: OrderMode;
  /** algo.dkw_eta: η of the DKW slack. */
  dkwEta: number;
  /** algo.cert_gamma: γ < 1 used by the certificate (sat-method §4). */
  certGamma: number;
  /** algo.cert_confidence: δ_conf of the finite-sample term. */
  certConfidence: number;
}

export function defaultStageConfig(nAgents: number, overrides: Partial<StageConfig> = {}): StageConfig {
  return {
    algo: "sat",
    promptsPerStage: 8,
    clipLow: 0.2,
    clipHigh: 0.2,
    klRadius: new Array(nAgents).fill(0.01),
    klQuantile: 0.99,
    klCoefGrowth: 1.5,
    klCoefRule: "adaptive",
    klCoefMin: 1e-4,
    klCoefMax: 1e3,
    advClip: 5,
    maxBacktracks: 10,
    backtrackRatio: 0.8,
    epochs: 2,
    miniBatchGroups: 4,
    advEstimator: "group",
    scaleRewards: "group",
    gamma: 1,
    lam: 0.95,
    intermediate: "reweight",
    order: "random",
    dkwEta: 0.05,
    certGamma: 0.99,
    certConfidence: 0.05,
    ...overrides,
  };
}

const ALGOS: readonly AlgoName[] = ["sat", "joint", "happo", "single"];

/** Throws one clear line per problem (the first found). */
export function validateStageConfig(cfg: StageConfig, nAgents: number): void {
  const bad = (key: string, msg: string): never => {
    throw new Error(`stage config: ${key} ${msg}`);
  };
  if (!ALGOS.includes(cfg.algo))
    bad("algo.name", `must be one of ${ALGOS.join(" | ")}, got ${String(cfg.algo)}`);
  if (!(nAgents >= 1)) bad("team.n_agents", `must be ≥ 1, got ${nAgents}`);
  if (cfg.algo === "single" && nAgents !== 1)
    bad("algo.name", `= single needs a team of one agent, got ${nAgents}`);
  if (!Number.isInteger(cfg.promptsPerStage) || cfg.promptsPerStage < 1)
    bad("rollout.prompts_per_step", `must be a positive integer, got ${cfg.promptsPerStage}`);
  if (!(cfg.clipLow > 0 && cfg.clipLow <= 1))
    bad("algo.clip_ratio_low", `must be in (0, 1], got ${cfg.clipLow}`);
  if (!(cfg.clipHigh > 0)) bad("algo.clip_ratio_high", `must be > 0, got ${cfg.clipHigh}`);
  if (cfg.klRadius.length !== nAgents)
    bad("algo.kl_radius", `needs one radius per agent (${nAgents}), got ${cfg.klRadius.length}`);
  cfg.klRadius.forEach((d, i) => {
    if (!(d > 0)) bad(`algo.kl_radius[${i}]`, `must be > 0, got ${d}`);
  });
  if (!(cfg.klQuantile > 0 && cfg.klQuantile <= 1))
    bad("algo.kl_quantile", `must be in (0, 1], got ${cfg.klQuantile}`);
  if (!(cfg.klCoefGrowth >= 1)) bad("algo.kl_coef_growth", `must be ≥ 1, got ${cfg.klCoefGrowth}`);
  if (!(cfg.advClip > 0)) bad("algo.adv_clip", `must be > 0, got ${cfg.advClip}`);
  if (!Number.isInteger(cfg.maxBacktracks) || cfg.maxBacktracks < 0)
    bad("algo.max_backtracks", `must be an integer ≥ 0, got ${cfg.maxBacktracks}`);
  if (!(cfg.backtrackRatio > 0 && cfg.backtrackRatio < 1))
    bad("algo.backtrack_ratio", `must be in (0, 1), got ${cfg.backtrackRatio}`);
  if (!Number.isInteger(cfg.epochs) || cfg.epochs < 1)
    bad("algo.ppo_epochs", `must be a positive integer, got ${cfg.epochs}`);
  if (!Number.isInteger(cfg.miniBatchGroups) || cfg.miniBatchGroups < 1)
    bad("algo.ppo_mini_batch_size", `must be a positive integer (prompt groups), got ${cfg.miniBatchGroups}`);
  const stepsPerAgent = cfg.epochs * Math.ceil(cfg.promptsPerStage / cfg.miniBatchGroups);
  if (cfg.algo === "sat" && stepsPerAgent < 2)
    bad(
      "algo.ppo_epochs",
      `× minibatches must be ≥ 2 for sat (the KL penalty has no effect on a single step from θ_cur); ` +
        `got ${cfg.epochs} epoch(s) × ${Math.ceil(cfg.promptsPerStage / cfg.miniBatchGroups)} minibatch(es): ` +
        `raise algo.ppo_epochs or lower algo.ppo_mini_batch_size`,
    );
  if (cfg.advEstimator !== "group" && cfg.advEstimator !== "gae")
    bad("algo.adv_estimator", `must be group | gae, got ${String(cfg.advEstimator)}`);
  if (!["group", "batch", "none"].includes(cfg.scaleRewards))
    bad("algo.scale_rewards", `must be group | batch | none, got ${String(cfg.scaleRewards)}`);
  if (!(cfg.gamma > 0 && cfg.gamma <= 1)) bad("algo.gamma", `must be in (0, 1], got ${cfg.gamma}`);
  if (!(cfg.lam >= 0 && cfg.lam <= 1)) bad("algo.lam", `must be in [0, 1], got ${cfg.lam}`);
  if (cfg.intermediate !== "reweight" && cfg.intermediate !== "resample")
    bad("algo.intermediate", `must be reweight | resample, got ${String(cfg.intermediate)}`);
  if (!["static", "random", "greedy"].includes(cfg.order))
    bad("algo.order", `must be static | random | greedy, got ${String(cfg.order)}`);
  if ((cfg.algo === "joint" || cfg.algo === "single") && cfg.order === "greedy")
    bad(
      "algo.order",
      `= greedy has no meaning for algo.name=${cfg.algo} (all agents update from the same batch)`,
    );
  if ((cfg.algo === "joint" || cfg.algo === "single") && cfg.intermediate === "resample")
    bad("algo.intermediate", `= resample has no meaning for algo.name=${cfg.algo} (no intermediate policy)`);
  if (!(cfg.dkwEta > 0 && cfg.dkwEta < 1)) bad("algo.dkw_eta", `must be in (0, 1), got ${cfg.dkwEta}`);
  if (!(cfg.certGamma > 0 && cfg.certGamma < 1))
    bad("algo.cert_gamma", `must be in (0, 1), got ${cfg.certGamma}`);
  if (!(cfg.certConfidence > 0 && cfg.certConfidence < 1))
    bad("algo.cert_confidence", `must be in (0, 1), got ${cfg.certConfidence}`);
}
