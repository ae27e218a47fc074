/**
 * One agent's block update as the SAT algorithm drives it (sat-method §3c–e), at the granularity a
 * remote backend can serve: the algorithm hands over the batch, advantages and weights once, then
 * asks for optimizer steps on minibatches, exact per-state measurements, and step scales; tensors
 * (log-prob rows, gradients, optimizer state) stay with the learner. An in-process policy gets this
 * interface from algorithm/row-learner.ts; the PyTorch backend implements it in its worker.
 *
 * The surrogate a learner maximises, over the trajectories τ of a minibatch M where the agent acted
 * (T_a(τ) its states, p prior, w intermediate weight, Ã advantage, ρ = π_θ/π_cur per state):
 *   sequence: Σ_M p·w·min(R·Ã, clip(R, 1−ε_lo, 1+ε_hi)·Ã) / Σ_M p,   R = Π_{t∈T_a(τ)} ρ_t
 *   token:    Σ_M Σ_{T_a(τ)} p·w·min(ρ_t·Ã, clip(ρ_t)·Ã) / Σ_M p·|T_a(τ)|
 * minus β · Σ_M Σ_{T_a(τ)} p·KL(π_θ(·|s) ‖ π_cur(·|s)) / Σ_M p·|T_a(τ)|, the KL exact over the vocabulary.
 * On a tie of the two clip branches the unclipped one carries the gradient (PPO convention).
 */
import type { StateRef, Trajectory } from "./policy.js";

export type RatioLevel = "sequence" | "token";

export interface UpdateSpec {
  /** The batch (learners read tokens only). */
  trajs: readonly Trajectory[];
  /** (S) the agent's states, ordered by trajectory then position. */
  states: readonly StateRef[];
  /** (N+1) states of trajectory i are states[offsets[i] .. offsets[i+1]). */
  offsets: Int32Array;
  /** (N) advantage, intermediate weight and prior weight of each trajectory. */
  adv: Float64Array;
  w: Float64Array;
  prior: Float64Array;
  clipLow: number;
  clipHigh: number;
  /** KL penalty coefficient β (0 = none). */
  beta: number;
  ratio: RatioLevel;
}

/** Per-state measurements at the learner's current parameters (S entries each). */
export interface Measurement {
  /** log π_θ of the chosen token. */
  chosen: Float64Array;
  /** Exact KL(π_θ ‖ π_cur). */
  kl: Float64Array;
  /** Total variation ½Σ|π_θ − π_cur|. */
  tv: Float64Array;
}

export type MaybePromise<T> = T | Promise<T>;

export interface AgentLearner {
  readonly vocabSize: number;
  /**
   * Starts an update: the current parameters become θ_cur and π_cur at every state of `spec` the KL
   * reference. Returns, per state, the chosen-token log-prob and the entropy of π_cur.
   */
  beginUpdate(spec: UpdateSpec): MaybePromise<{ chosen: Float64Array; entropy: Float64Array }>;
  /** One optimizer step on the surrogate over the trajectories `minibatch` (indices into spec.trajs). */
  step(minibatch: readonly number[]): MaybePromise<void>;
  /** Measurements at the current parameters over every state of the update. */
  measure(): MaybePromise<Measurement>;
  /** Parameters ← θ_cur + scale·(θ_end − θ_cur), θ_end = where the steps ended; 1 and 0 are bit-exact. */
  setStepScale(scale: number): MaybePromise<void>;
  /**
   * Ends the update keeping the current parameters; first moments × keptFraction (1 keeps, 0
   * clears); second moments and step count stay (never rewound).
   */
  endUpdate(keptFraction: number): MaybePromise<void>;
  /** Parameters and optimizer state, restorable bit for bit (an opaque handle for remote learners). */
  snapshot(): MaybePromise<unknown>;
  restore(snapshot: unknown): MaybePromise<void>;
}
