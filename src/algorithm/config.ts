/**
 * Configuration of one SAT stage (Algorithm 1, sat-method §3) and of the baselines that share its
 * code path. Defaults, ranges and help live in one place, the config schema (src/config/schema.ts);
 * STAGE_KEYS ties each StageConfig field to its key there, and every function below goes through it:
 * `stageConfigFrom` (a validated config → StageConfig), `defaultStageConfig` (the schema's
 * defaults) and `validateStageConfig` (the schema's leaf checks and the shared cross-field rules, for
 * library callers who build a StageConfig by hand).
 */
import { parsedDefaults, SECTIONS } from "../config/schema.js";
import { stageRuleProblems } from "../config/rules.js";
import type { RatioLevel } from "../contracts/learner.js";

export type AlgoName = "sat" | "joint" | "happo" | "single" | "independent-vote";
export type AdvEstimator = "group" | "gae";
export type ScaleRewards = "group" | "batch" | "none";
export type Intermediate = "reweight" | "resample";
export type OrderMode = "static" | "random" | "greedy";
export type KlCoefRule = "adaptive" | "grow";
/** checked: β penalty + exact check + backtracking; penalty: β only; none: neither. */
export type TrustRegion = "checked" | "penalty" | "none";

export interface StageConfig {
  algo: AlgoName;
  promptsPerStage: number;
  clipLow: number;
  clipHigh: number;
  /** δ_i, one per agent (team.kl_radius overrides algo.kl_radius). */
  klRadius: number[];
  klQuantile: number;
  klCoefGrowth: number;
  klCoefRule: KlCoefRule;
  klCoefMin: number;
  klCoefMax: number;
  trustRegion: TrustRegion;
  ratio: RatioLevel;
  advClip: number;
  maxBacktracks: number;
  backtrackRatio: number;
  epochs: number;
  /** Minibatch size in prompt groups (a group is never split). */
  miniBatchGroups: number;
  advEstimator: AdvEstimator;
  scaleRewards: ScaleRewards;
  gamma: number;
  lam: number;
  intermediate: Intermediate;
  order: OrderMode;
  dkwEta: number;
  certGamma: number;
  certConfidence: number;
}

/** StageConfig field → config key. klRadius and the null defaults are resolved in stageConfigFrom. */
export const STAGE_KEYS = {
  algo: "algo.name",
  promptsPerStage: "rollout.prompts_per_step",
  clipLow: "algo.clip_ratio_low",
  clipHigh: "algo.clip_ratio_high",
  klRadius: "algo.kl_radius",
  klQuantile: "algo.kl_quantile",
  klCoefGrowth: "algo.kl_coef_growth",
  klCoefRule: "algo.kl_coef_rule",
  klCoefMin: "algo.kl_coef_min",
  klCoefMax: "algo.kl_coef_max",
  trustRegion: "algo.trust_region",
  ratio: "algo.ratio_level",
  advClip: "algo.adv_clip",
  maxBacktracks: "algo.max_backtracks",
  backtrackRatio: "algo.backtrack_ratio",
  epochs: "algo.ppo_epochs",
  miniBatchGroups: "algo.ppo_mini_batch_size",
  advEstimator: "algo.adv_estimator",
  scaleRewards: "algo.scale_rewards",
  gamma: "algo.gamma",
  lam: "algo.lam",
  intermediate: "algo.intermediate",
  order: "algo.order",
  dkwEta: "algo.dkw_eta",
  certGamma: "algo.cert_gamma",
  certConfidence: "algo.cert_confidence",
} as const satisfies Record<keyof StageConfig, string>;

/** The trust region an algorithm uses when algo.trust_region is null: SAT checks it, the baselines do not. */
export function defaultTrustRegion(algo: AlgoName): TrustRegion {
  return algo === "sat" ? "checked" : "none";
}

type ConfigView = { [section: string]: { readonly [key: string]: unknown } };

const valueAt = (cfg: ConfigView, path: string): unknown => {
  const [section, key] = path.split(".");
  return cfg[section]?.[key];
};

/** The StageConfig of a (parsed or resolved) config for a team of `nAgents`. */
export function stageConfigFrom(cfg: ConfigView, nAgents: number): StageConfig {
  const out: Record<string, unknown> = {};
  for (const [field, path] of Object.entries(STAGE_KEYS)) out[field] = valueAt(cfg, path);
  const s = out as unknown as StageConfig;
  s.clipHigh = (out.clipHigh as number | null) ?? s.clipLow;
  s.trustRegion = (out.trustRegion as TrustRegion | null) ?? defaultTrustRegion(s.algo);
  const perAgent = (cfg.team?.kl_radius ?? []) as ReadonlyArray<number | null>;
  const shared = valueAt(cfg, STAGE_KEYS.klRadius) as number;
  s.klRadius = Array.from({ length: nAgents }, (_, i) => perAgent[i] ?? shared);
  return s;
}

export function defaultStageConfig(nAgents: number, overrides: Partial<StageConfig> = {}): StageConfig {
  const base = stageConfigFrom(parsedDefaults() as unknown as ConfigView, nAgents);
  const merged = { ...base, ...overrides };
  // The trust region follows the algorithm unless it was given.
  if (overrides.algo && !overrides.trustRegion) merged.trustRegion = defaultTrustRegion(overrides.algo);
  return merged;
}

/** Throws one clear line for the first problem: each key checked by its schema leaf, then the shared rules. */
export function validateStageConfig(cfg: StageConfig, nAgents: number): void {
  const bad = (key: string, msg: string): never => {
    throw new Error(`stage config: ${key}: ${msg}`);
  };
  if (!(Number.isInteger(nAgents) && nAgents >= 1)) bad("team.n_agents", `must be ≥ 1, got ${nAgents}`);
  if (!Array.isArray(cfg.klRadius) || cfg.klRadius.length !== nAgents)
    bad("algo.kl_radius", `needs one radius per agent (${nAgents}), got ${cfg.klRadius?.length}`);
  const view: Record<string, Record<string, unknown>> = {};
  for (const [field, path] of Object.entries(STAGE_KEYS)) {
    const values = field === "klRadius" ? cfg.klRadius : [cfg[field as keyof StageConfig]];
    const [section, key] = path.split(".");
    const leaf = (SECTIONS as unknown as Record<string, { shape: Record<string, import("zod").ZodType> }>)[
      section
    ].shape[key];
    values.forEach((v, i) => {
      const r = leaf.safeParse(v);
      if (!r.success || v === undefined || v === null)
        bad(
          field === "klRadius" ? `${path}[${i}]` : path,
          `${r.success ? "is missing" : lowerFirst(r.error.issues[0].message)}, got ${JSON.stringify(v)}`,
        );
    });
    (view[section] ??= {})[key] = values[0];
  }
  const problems = stageRuleProblems(view as never, nAgents);
  if (problems.length > 0) throw new Error(`stage config: ${problems[0].message}`);
}

const lowerFirst = (s: string) => s.charAt(0).toLowerCase() + s.slice(1);
