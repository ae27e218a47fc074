/**
 * A learned state-value function for the `gae` advantage estimator (sat-method §3b): a transformer
 * with a value head, separate from the agents and with its own AdamW. The state before token t of a
 * trajectory is the prefix tokens[0..t), so its value is the value head's output at position t−1;
 * the state after the last token (t = L, asked for truncated episodes) is position L−1.
 *
 * Fitting regresses V(s_t) on the observed return-to-go with a plain weighted MSE and a few epochs of
 * minibatch AdamW. Choices:
 * - No value-loss coefficient: the critic shares no parameters with the agents, and Adam's step does
 *   not depend on the loss scale, so a coefficient would only rename the learning rate.
 * - No PPO-style value clipping (clip V around its old prediction): that guards a value loss against
 *   moving a shared trunk too far; here targets are fixed returns in the verifier's range and the only
 *   guard kept is the gradient-norm clip of the optimizer options.
 * - Targets (returnTargets): Σ_{k≥t} γ^{k−t} r_k, i.e. γ^(L−1−t)·R for an outcome reward on the last
 *   token, over every state before a generated token. For truncated episodes the state after the last
 *   token is fitted too, with target 0: the outcome reward already sits on the last token and nothing
 *   follows it, so the GAE bootstrap γ·V(s_L) must not add a second copy of the return.
 */
import { join } from "node:path";
import type { Buf } from "../engine/kernels/types.js";
import { AdamW, type AdamWState } from "../engine/adamw.js";
import type { Rng } from "../engine/rng.js";
import { Transformer } from "../model/transformer.js";
import { loadOptimizer, loadWeightsInto, saveModel, saveOptimizer } from "../model/checkpoint.js";
import type { Tokenizer } from "../model/tokenizer.js";
import type { StateRef, Trajectory, ValuePolicy } from "../contracts/policy.js";
import { adamWFor, type LmOptimOptions } from "./lm-policy.js";
import { decayMask } from "../model/layout.js";

/** Regression data: target value and weight per state. */
export interface ValueTargets {
  refs: StateRef[];
  /** (S) target V(s) per state. */
  targets: Float64Array;
  /** (S) loss weight per state (the trajectory's probability in an exact enumeration, else 1). */
  weights: Float64Array;
}

export interface CriticFitOptions {
  epochs: number;
  /** Trajectories per minibatch (all target states of a trajectory share its forward pass). */
  miniBatchSize: number;
  /** Shuffles the minibatches. */
  rng: Rng;
}

export const DEFAULT_CRITIC_EPOCHS = 4;
export const DEFAULT_CRITIC_MINIBATCH = 32;

export interface CriticFitResult {
  /** Weighted MSE over the targets before and after fitting. */
  lossBefore: number;
  lossAfter: number;
  numStates: number;
  steps: number;
  /** Gradient norm (before clipping) of the last step. */
  gradNorm: number;
}

export interface CriticSnapshot {
  params: Buf;
  adam: AdamWState;
}

/** Trajectories per forward pass when scoring (bounds activation memory for large stages). */
const SCORE_CHUNK = 64;

/**
 * Return-to-go targets at every state before a generated token (owner ≥ 0, and every later token)
 * and, for truncated episodes, target 0 at the state after the last token (see the file header).
 */
export function returnTargets(trajs: readonly Trajectory[], gamma: number): ValueTargets {
  if (!(gamma >= 0 && gamma <= 1)) throw new Error(`returnTargets: gamma must be in [0, 1], got ${gamma}`);
  const refs: StateRef[] = [];
  const targets: number[] = [];
  const weights: number[] = [];
  trajs.forEach((tr, i) => {
    const L = tr.tokens.length;
    let first = 0;
    while (first < L && tr.owner[first] < 0) first++;
    if (first === L) return; // no agent acted: nothing to fit
    const w = tr.weight ?? 1;
    const from = refs.length;
    let g = 0; // return-to-go from the state before token t
    for (let t = L - 1; t >= first; t--) {
      const r = tr.stepRewards ? tr.stepRewards[t] : t === L - 1 ? tr.reward : 0;
      g = r + gamma * g;
      refs.push({ traj: i, t });
      targets.push(g);
      weights.push(w);
    }
    // Pushed backwards; put the trajectory's states in increasing t.
    reverseFrom(refs, from);
    reverseFrom(targets, from);
    if (tr.truncated) {
      refs.push({ traj: i, t: L });
      targets.push(0);
      weights.push(w);
    }
  });
  return { refs, targets: Float64Array.from(targets), weights: Float64Array.from(weights) };
}

function reverseFrom<T>(a: T[], from: number): void {
  for (let i = from, j = a.length - 1; i < j; i++, j--) [a[i], a[j]] = [a[j], a[i]];
}

/** A right-padded batch of the trajectories `trajIdx`, long enough for positions < T. */
interface PackedBatch {
  ids: Int32Array; // (B, T)
  B: number;
  T: number;
}

export class LmCritic implements ValuePolicy {
  readonly model: Transformer;
  readonly optimizer: AdamW;
  private readonly maxGradNorm: number;
  private ids = new Int32Array(0);
  private dvalues: Buf = new Float32Array(0);

  constructor(model: Transformer, optim: LmOptimOptions, decayMask?: Uint8Array) {
    if (!model.cfg.valueHead)
      throw new Error("LmCritic needs a model with a value head (config valueHead: true)");
    this.model = model;
    this.maxGradNorm = optim.maxGradNorm;
    this.optimizer = adamWFor(model, optim, decayMask);
  }

  /**
   * A critic with the agent's architecture plus a value head: every tensor of `agent` is copied
   * (pretrained features read the task from the first stage on), the value head is fresh from `rng`
   * (GPT-2 init: weight N(0, 0.02), bias 0, so initial values are near 0).
   */
  static fromAgent(agent: Transformer, optim: LmOptimOptions, rng: Rng): LmCritic {
    const model = new Transformer({ ...agent.cfg, valueHead: true }, agent.engine, rng);
    for (const t of agent.layout.tensors) {
      if (t.name.startsWith("v_head.")) continue; // an agent's own value head is not the critic's
      model.w(t.name).set(agent.w(t.name));
    }
    return new LmCritic(model, optim, decayMask(model.layout));
  }

  /** Copies trajectories into a right-padded (B, T) id batch. */
  private pack(trajs: readonly Trajectory[], trajIdx: number[], T: number): PackedBatch {
    const B = trajIdx.length;
    if (this.ids.length < B * T) this.ids = new Int32Array(B * T);
    const ids = this.ids.subarray(0, B * T);
    ids.fill(0);
    trajIdx.forEach((i, b) => {
      const toks = trajs[i].tokens;
      ids.set(toks.subarray(0, Math.min(T, toks.length)), b * T);
    });
    return { ids, B, T };
  }

  /** Position of the representation of state t (the last token of the prefix tokens[0..t)). */
  private static positionOf(trajs: readonly Trajectory[], s: StateRef): number {
    const L = trajs[s.traj]?.tokens.length;
    if (L === undefined)
      throw new Error(`critic: state refers to trajectory ${s.traj}, the batch has ${trajs.length}`);
    if (!(Number.isInteger(s.t) && s.t >= 0 && s.t <= L)) {
      throw new Error(`critic: state (trajectory ${s.traj}, t=${s.t}) is outside 0..${L}`);
    }
    return s.t - 1;
  }

  /**
   * (S) V(s) for the states. The empty prefix (t = 0, before the <bos> token) has no representation
   * and gets 0; no agent acts there, so no advantage depends on it.
   */
  values(trajs: readonly Trajectory[], states: readonly StateRef[]): Float64Array {
    const out = new Float64Array(states.length);
    const byTraj = new Map<number, number[]>(); // trajectory → indices into states
    states.forEach((s, k) => {
      const pos = LmCritic.positionOf(trajs, s);
      if (pos < 0) return;
      let list = byTraj.get(s.traj);
      if (!list) byTraj.set(s.traj, (list = []));
      list.push(k);
    });
    const order = [...byTraj.keys()];
    for (let c = 0; c < order.length; c += SCORE_CHUNK) {
      const chunk = order.slice(c, c + SCORE_CHUNK);
      let T = 1;
      for (const i of chunk) for (const k of byTraj.get(i)!) T = Math.max(T, states[k].t);
      const { ids, B } = this.pack(trajs, chunk, T);
      this.model.forwardHidden(ids, B, T);
      const v = this.model.values();
      chunk.forEach((i, b) => {
        for (const k of byTraj.get(i)!) out[k] = v[b * T + states[k].t - 1];
      });
    }
    return out;
  }

  /** Weighted MSE of the critic over the targets. */
  loss(trajs: readonly Trajectory[], data: ValueTargets): number {
    const v = this.values(trajs, data.refs);
    let sw = 0;
    let se = 0;
    for (let k = 0; k < v.length; k++) {
      sw += data.weights[k];
      se += data.weights[k] * (v[k] - data.targets[k]) ** 2;
    }
    return sw > 0 ? se / sw : 0;
  }

  /**
   * Minibatch AdamW on the weighted MSE Σ w·(V(s) − y)² / Σ w of each minibatch of trajectories, for
   * `epochs` shuffled passes.
   */
  fit(trajs: readonly Trajectory[], data: ValueTargets, opts: CriticFitOptions): CriticFitResult {
    const S = data.refs.length;
    if (data.targets.length !== S || data.weights.length !== S) {
      throw new Error(
        `critic.fit: ${S} states but ${data.targets.length} targets and ${data.weights.length} weights`,
      );
    }
    if (!(Number.isInteger(opts.epochs) && opts.epochs >= 0))
      throw new Error(`critic.fit: epochs must be an integer ≥ 0, got ${opts.epochs}`);
    if (!(Number.isInteger(opts.miniBatchSize) && opts.miniBatchSize >= 1)) {
      throw new Error(`critic.fit: miniBatchSize must be an integer ≥ 1, got ${opts.miniBatchSize}`);
    }
    const byTraj = new Map<number, number[]>();
    data.refs.forEach((s, k) => {
      if (LmCritic.positionOf(trajs, s) < 0)
        throw new Error(`critic.fit: state (trajectory ${s.traj}, t=0) has no prefix to fit`);
      let list = byTraj.get(s.traj);
      if (!list) byTraj.set(s.traj, (list = []));
      list.push(k);
    });
    const lossBefore = this.loss(trajs, data);
    let steps = 0;
    let gradNorm = 0;
    const trajIds = [...byTraj.keys()];
    for (let e = 0; e < opts.epochs; e++) {
      const order = opts.rng.shuffle([...trajIds]);
      for (let c = 0; c < order.length; c += opts.miniBatchSize) {
        const chunk = order.slice(c, c + opts.miniBatchSize);
        let T = 1;
        let sw = 0;
        for (const i of chunk)
          for (const k of byTraj.get(i)!) {
            T = Math.max(T, data.refs[k].t);
            sw += data.weights[k];
          }
        if (!(sw > 0)) continue;
        const { ids, B } = this.pack(trajs, chunk, T);
        // The logits are not part of the loss: no LM head in either direction.
        this.model.forwardHidden(ids, B, T);
        const v = this.model.values();
        const N = B * T;
        if (this.dvalues.length < N) this.dvalues = this.model.engine.alloc(N);
        const dv = this.dvalues.subarray(0, N);
        dv.fill(0);
        chunk.forEach((i, b) => {
          for (const k of byTraj.get(i)!) {
            const r = b * T + data.refs[k].t - 1;
            dv[r] += (2 * data.weights[k] * (v[r] - data.targets[k])) / sw;
          }
        });
        this.model.zeroGrad();
        this.model.backwardHidden(null, dv);
        gradNorm = this.optimizer.clipGradNorm(this.maxGradNorm);
        if (Number.isFinite(gradNorm)) this.optimizer.step();
        steps++;
      }
    }
    const lossAfter = this.loss(trajs, data);
    return { lossBefore, lossAfter, numStates: S, steps, gradNorm };
  }

  snapshot(): CriticSnapshot {
    return { params: this.model.params.slice(), adam: this.optimizer.snapshot() };
  }

  restore(s: CriticSnapshot): void {
    if (s.params.length !== this.model.params.length) {
      throw new Error(
        `critic.restore: snapshot has ${s.params.length} parameters, the critic has ${this.model.params.length}`,
      );
    }
    this.model.params.set(s.params);
    this.optimizer.restore(s.adam);
  }
}

/** Writes the critic into `dir` (which must exist): model.safetensors, config.json, tokenizer.json, optimizer.safetensors. */
export function saveCritic(dir: string, critic: LmCritic, tok: Tokenizer): void {
  saveModel(dir, critic.model, tok);
  saveOptimizer(dir, critic.optimizer.snapshot());
}

/** Loads weights and optimizer state saved by saveCritic into `critic` (same architecture). */
export function loadCriticInto(dir: string, critic: LmCritic): void {
  // Name-by-name with shape checks; a missing or extra tensor (no value head) is an error.
  loadWeightsInto(critic.model, join(dir, "model.safetensors"));
  critic.optimizer.restore(loadOptimizer(dir, critic.model.params));
}
