/**
 * A tabular softmax agent for the exact test bed: one row of logits per state, π(·|s) = softmax.
 * Implements TrainablePolicy with its own optimizer (Adam/AdamW or SGD), so snapshot/restore covers
 * parameters and optimizer state exactly as a language-model agent's would. Trajectories must carry
 * `states` (the tabular state of every token).
 */
import type { StateRef, TrainablePolicy, Trajectory } from "../contracts/policy.js";
import { StepScaler } from "../engine/step-scale.js";

export interface TabularOptimizerConfig {
  kind: "adam" | "sgd";
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay (AdamW); 0 by default. */
  weightDecay?: number;
}

interface TabularSnapshot {
  logits: Float64Array;
  m: Float64Array;
  v: Float64Array;
  step: number;
}

export class TabularPolicy implements TrainablePolicy {
  private readonly step0 = new StepScaler();
  readonly vocabSize: number;
  /** (S, A) logits. */
  readonly logits: Float64Array;
  private readonly grad: Float64Array;
  private m: Float64Array;
  private v: Float64Array;
  private step = 0;
  private lastStates: Int32Array | null = null;
  private lastRows: Float64Array | null = null;

  constructor(
    readonly numStates: number,
    numActions: number,
    readonly opt: TabularOptimizerConfig,
    logits?: ArrayLike<number>,
  ) {
    this.vocabSize = numActions;
    this.logits = new Float64Array(numStates * numActions);
    if (logits) {
      if (logits.length !== this.logits.length)
        throw new Error(
          `TabularPolicy: logits has ${logits.length} entries, expected ${numStates}×${numActions}`,
        );
      this.logits.set(logits);
    }
    this.grad = new Float64Array(this.logits.length);
    this.m = new Float64Array(this.logits.length);
    this.v = new Float64Array(this.logits.length);
  }

  /** (A) log π(·|s). */
  logProbRow(s: number): Float64Array {
    const A = this.vocabSize;
    const out = new Float64Array(A);
    let max = -Infinity;
    for (let a = 0; a < A; a++) max = Math.max(max, this.logits[s * A + a]);
    let z = 0;
    for (let a = 0; a < A; a++) z += Math.exp(this.logits[s * A + a] - max);
    const lz = max + Math.log(z);
    for (let a = 0; a < A; a++) out[a] = this.logits[s * A + a] - lz;
    return out;
  }

  /** (S, A) probability table. */
  probTable(): Float64Array {
    const A = this.vocabSize;
    const out = new Float64Array(this.logits.length);
    for (let s = 0; s < this.numStates; s++) {
      const row = this.logProbRow(s);
      for (let a = 0; a < A; a++) out[s * A + a] = Math.exp(row[a]);
    }
    return out;
  }

  logProbs(trajs: readonly Trajectory[], states: readonly StateRef[]): Float64Array {
    const A = this.vocabSize;
    const ids = new Int32Array(states.length);
    const rows = new Float64Array(states.length * A);
    states.forEach((r, k) => {
      const st = trajs[r.traj].states;
      if (!st) throw new Error(`TabularPolicy: trajectory ${r.traj} has no states`);
      const s = st[r.t];
      if (!(s >= 0 && s < this.numStates))
        throw new Error(`TabularPolicy: state ${s} at trajectory ${r.traj}, t=${r.t} out of range`);
      ids[k] = s;
      rows.set(this.logProbRow(s), k * A);
    });
    this.lastStates = ids;
    this.lastRows = rows;
    return rows;
  }

  backward(dlogp: Float64Array | Float32Array): void {
    const ids = this.lastStates;
    const rows = this.lastRows;
    if (!ids || !rows) throw new Error("TabularPolicy: backward called before logProbs");
    if (dlogp.length !== rows.length)
      throw new Error(`TabularPolicy: dlogp has ${dlogp.length} entries, expected ${rows.length}`);
    const A = this.vocabSize;
    for (let k = 0; k < ids.length; k++) {
      // log-softmax backward: dz = dl − softmax·Σ dl.
      let sum = 0;
      for (let a = 0; a < A; a++) sum += dlogp[k * A + a];
      for (let a = 0; a < A; a++)
        this.grad[ids[k] * A + a] += dlogp[k * A + a] - Math.exp(rows[k * A + a]) * sum;
    }
  }

  zeroGrad(): void {
    this.grad.fill(0);
  }

  gradient(): Float64Array {
    return Float64Array.from(this.grad);
  }

  optimizerStep(): void {
    const { lr } = this.opt;
    const p = this.logits;
    const g = this.grad;
    if (this.opt.kind === "sgd") {
      for (let i = 0; i < p.length; i++) p[i] -= lr * g[i];
      this.step++;
      return;
    }
    const b1 = this.opt.beta1 ?? 0.9;
    const b2 = this.opt.beta2 ?? 0.999;
    const eps = this.opt.eps ?? 1e-8;
    const wd = this.opt.weightDecay ?? 0;
    this.step++;
    const c1 = 1 - b1 ** this.step;
    const c2 = 1 - b2 ** this.step;
    for (let i = 0; i < p.length; i++) {
      this.m[i] = b1 * this.m[i] + (1 - b1) * g[i];
      this.v[i] = b2 * this.v[i] + (1 - b2) * g[i] * g[i];
      p[i] -= lr * (this.m[i] / c1 / (Math.sqrt(this.v[i] / c2) + eps) + wd * p[i]);
    }
  }

  beginUpdate(): void {
    this.step0.begin(this.logits);
  }

  setStepScale(scale: number): void {
    this.step0.apply(this.logits, scale);
  }

  endUpdate(keptFraction: number): void {
    for (let i = 0; i < this.m.length; i++) this.m[i] *= keptFraction;
    this.step0.finish();
  }

  getParams(): Float64Array {
    return this.logits;
  }

  snapshot(): TabularSnapshot {
    return {
      logits: Float64Array.from(this.logits),
      m: Float64Array.from(this.m),
      v: Float64Array.from(this.v),
      step: this.step,
    };
  }

  restore(s: unknown): void {
    const snap = s as TabularSnapshot;
    this.logits.set(snap.logits);
    this.m = Float64Array.from(snap.m);
    this.v = Float64Array.from(snap.v);
    this.step = snap.step;
  }

  /** Copy of the optimizer state (for tests of bit-exact restore). */
  optimizerState(): { m: Float64Array; v: Float64Array; step: number } {
    return { m: Float64Array.from(this.m), v: Float64Array.from(this.v), step: this.step };
  }
}
