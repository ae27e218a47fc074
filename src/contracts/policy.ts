/**
 * The interface between the SAT algorithm and the agents it trains. The algorithm never sees a
 * model: it sees trajectories (token ids with an owner per token) and policies that score token
 * positions by teacher forcing, return full log-prob rows over the action vocabulary, take the
 * gradient of a loss with respect to those rows, and step their own optimizer.
 *
 * Implemented by the tabular test bed (src/testbed/tabular-policy.ts) and by language-model
 * agents (one decoder per agent). Dims: S = scored states, V = vocabulary (actions), L = tokens.
 */

/** One team episode. */
export interface Trajectory {
  promptId: number;
  /** Trajectories sharing a groupId were drawn for the same prompt (group advantages, minibatches). */
  groupId: number;
  /** (L) action ids; for an LM: prompt tokens + generated tokens. */
  tokens: Int32Array;
  /** (L) agent that chose tokens[t]; -1 for prompt/environment tokens. */
  owner: Int8Array;
  /** (L) log-prob of tokens[t] under its owner's sampling policy at rollout time (0 where owner = -1). */
  behaviourLogp: Float32Array | Float64Array;
  /** (L) policy version of the owner when the token was sampled. */
  ownerVersion: Int32Array;
  /**
   * Tabular state id per token (test bed only; an LM's state is the prefix tokens[0..t)). May hold
   * L+1 entries: the extra one is the state reached after the last token (bootstrap of truncated
   * episodes in GAE).
   */
  states?: Int32Array;
  /** Episode return (verifier output for outcome rewards). */
  reward: number;
  /** (L) per-token rewards for GAE; when absent the whole reward sits on the last token. */
  stepRewards?: Float32Array | Float64Array;
  answer: string | null;
  truncated: boolean;
  /**
   * Probability mass of this trajectory when the batch is an exact enumeration (test bed exact
   * mode); every mean over trajectories or states is then weighted by it. Absent = 1 (sampled).
   */
  weight?: number;
}

/** A token position: the state before tokens[t] of trajectory trajs[traj]. */
export interface StateRef {
  traj: number;
  t: number;
}

/** Anything that can score token positions: returns log π(·|s) rows. */
export interface ScoringPolicy {
  readonly vocabSize: number;
  /** (S, V) full log-prob rows of the states, row k for states[k]. */
  logProbs(trajs: readonly Trajectory[], states: readonly StateRef[]): Float64Array | Float32Array;
}

export interface TrainablePolicy extends ScoringPolicy {
  /**
   * Accumulate parameter gradients of a loss given dloss/dlogp (S, V) for the rows of the last
   * logProbs call. The loss is *minimised* by optimizerStep; the algorithm passes the gradient of
   * the negated objective, so ascent is carried by the sign of dlogp.
   */
  backward(dlogp: Float64Array | Float32Array): void;
  zeroGrad(): void;
  /** One step of the policy's own optimizer (AdamW or SGD) on the accumulated gradients. */
  optimizerStep(): void;
  /** Starts a block update: the current parameters become θ_cur of the step that follows. */
  beginUpdate(): void;
  /**
   * After the epochs: parameters ← θ_cur + scale·(θ_end − θ_cur), θ_end being the parameters the
   * epochs reached (recorded at the first call). scale 1 gives θ_end and 0 gives θ_cur, bit for bit.
   */
  setStepScale(scale: number): void;
  /**
   * Ends the update with the parameters as they are. The optimizer's first moments are multiplied by
   * `keptFraction` (1 keeps them, 0 clears them: the momentum is valid only as far as the step was
   * taken); second moments and the step count stay, so the curvature estimate is never rewound.
   */
  endUpdate(keptFraction: number): void;
  /** Parameters AND optimizer state; restore() brings both back bit for bit. */
  snapshot(): unknown;
  restore(s: unknown): void;
}

/** A state-value function for the `gae` advantage estimator. */
export interface ValuePolicy {
  /**
   * (S) V(s) for the states before tokens[t]; t may equal L (the state after the last token), which
   * is requested only for truncated episodes. runStage calls it once per agent update, after the
   * agents earlier in the order were promoted, so a value tied to the live team is the value of the
   * intermediate policy.
   */
  values(trajs: readonly Trajectory[], states: readonly StateRef[]): Float64Array | Float32Array;
}

/** A metric record (style.md §10); the CLI groups them by (step, agent) into JSONL rows. */
export interface MetricRecord {
  step: number;
  /** Agent index, or null for team-level rows. */
  agent: number | null;
  key: string;
  /** null stands for NaN/Inf (JSON has neither). */
  value: number | number[] | null;
}

export type MetricsSink = (record: MetricRecord) => void;
