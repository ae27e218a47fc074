/**
 * A transformer agent behind the algorithm's TrainablePolicy interface. The state before token t of
 * a trajectory is its prefix tokens[0..t); its policy is the sampling distribution
 * softmax(logits / temperature), the same one rollouts sample from, so behaviour and trainer
 * log-probs agree. Scoring runs one teacher-forced forward over the trajectories involved (right-
 * padded), gathers the requested rows, and backward scatters dlogp back into dlogits.
 * Top-p truncation is not part of the trained policy: training rollouts use top_p = 1.
 */
import type { Buf } from "../engine/kernels/types.js";
import { AdamW, type AdamWState } from "../engine/adamw.js";
import { StepScaler } from "../engine/step-scale.js";
import { logSoftmaxForward, logSoftmaxBackward } from "../engine/ops/softmax.js";
import type { Transformer } from "../model/transformer.js";
import type { StateRef, TrainablePolicy, Trajectory } from "../contracts/policy.js";

export interface LmOptimOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  maxGradNorm: number; // 0 = off
}

interface Scored {
  rowOf: Int32Array; // (S) row in the (B·T, V) logits for each state
  B: number;
  T: number;
  logp: Float64Array; // (S, V)
}

/** AdamW over a model's flat parameters with these settings (shared by agents and the critic). */
export function adamWFor(model: Transformer, optim: LmOptimOptions, decayMask?: Uint8Array): AdamW {
  return new AdamW(
    model.params,
    model.grads,
    {
      lr: optim.lr,
      beta1: optim.beta1,
      beta2: optim.beta2,
      eps: optim.eps,
      weightDecay: optim.weightDecay,
      decayMask,
    },
    model.ops,
  );
}

export class LmPolicy implements TrainablePolicy {
  readonly model: Transformer;
  readonly optimizer: AdamW;
  temperature: number;
  private readonly maxGradNorm: number;
  private last: Scored | null = null;
  private ids = new Int32Array(0);
  private dlogits: Buf = new Float32Array(0);
  private rowLogits = new Float64Array(0);
  lastGradNorm = 0;
  private readonly stepScaler = new StepScaler();

  constructor(model: Transformer, temperature: number, optim: LmOptimOptions, decayMask?: Uint8Array) {
    if (!(temperature > 0)) throw new Error(`training needs a temperature > 0, got ${temperature}`);
    this.model = model;
    this.temperature = temperature;
    this.maxGradNorm = optim.maxGradNorm;
    this.optimizer = adamWFor(model, optim, decayMask);
  }

  get vocabSize(): number {
    return this.model.cfg.vocabSize;
  }

  logProbs(trajs: readonly Trajectory[], states: readonly StateRef[]): Float64Array {
    const V = this.vocabSize;
    const S = states.length;
    // Compact the trajectories involved into a right-padded batch.
    const slot = new Map<number, number>();
    let T = 1;
    for (const s of states) {
      if (s.t < 1 || s.t >= trajs[s.traj].tokens.length) {
        throw new Error(`state (trajectory ${s.traj}, t=${s.t}) has no prefix to score`);
      }
      if (!slot.has(s.traj)) slot.set(s.traj, slot.size);
      T = Math.max(T, s.t);
    }
    const B = slot.size;
    if (this.ids.length < B * T) this.ids = new Int32Array(B * T);
    const ids = this.ids.subarray(0, B * T);
    ids.fill(0);
    for (const [traj, b] of slot) {
      const toks = trajs[traj].tokens;
      ids.set(toks.subarray(0, Math.min(T, toks.length)), b * T);
    }
    const logits = this.model.forward(ids, B, T);
    const rowOf = new Int32Array(S);
    const logp = new Float64Array(S * V);
    if (this.rowLogits.length < V) this.rowLogits = new Float64Array(V);
    const row = this.rowLogits.subarray(0, V);
    const out = new Float64Array(V);
    const invT = 1 / this.temperature;
    for (let k = 0; k < S; k++) {
      const r = slot.get(states[k].traj)! * T + states[k].t - 1;
      rowOf[k] = r;
      for (let v = 0; v < V; v++) row[v] = logits[r * V + v];
      logSoftmaxForward(out, row, 1, V, invT);
      logp.set(out, k * V);
    }
    this.last = { rowOf, B, T, logp };
    return logp;
  }

  backward(dlogp: Float64Array | Float32Array): void {
    const last = this.last;
    if (!last) throw new Error("backward called before logProbs");
    const V = this.vocabSize;
    const N = last.B * last.T;
    if (this.dlogits.length < N * V) this.dlogits = this.model.engine.alloc(N * V);
    const dl = this.dlogits.subarray(0, N * V);
    dl.fill(0);
    const S = last.rowOf.length;
    const invT = 1 / this.temperature;
    for (let k = 0; k < S; k++) {
      const r = last.rowOf[k];
      logSoftmaxBackward(
        dl.subarray(r * V, (r + 1) * V),
        dlogp.subarray(k * V, (k + 1) * V),
        last.logp.subarray(k * V, (k + 1) * V),
        1,
        V,
        invT,
      );
    }
    this.model.backward(dl);
  }

  zeroGrad(): void {
    this.model.zeroGrad();
  }

  optimizerStep(): void {
    this.lastGradNorm = this.optimizer.clipGradNorm(this.maxGradNorm);
    if (Number.isFinite(this.lastGradNorm)) this.optimizer.step();
  }

  beginUpdate(): void {
    this.stepScaler.begin(this.model.params);
  }

  setStepScale(scale: number): void {
    this.stepScaler.apply(this.model.params, scale);
  }

  endUpdate(keptFraction: number): void {
    this.optimizer.scaleFirstMoment(keptFraction);
    this.stepScaler.finish();
  }

  getParams(): Buf {
    return this.model.params;
  }

  snapshot(): { params: Buf; adam: AdamWState } {
    return { params: this.model.params.slice(), adam: this.optimizer.snapshot() };
  }

  restore(s: unknown): void {
    const snap = s as { params: Buf; adam: AdamWState };
    this.model.params.set(snap.params);
    this.optimizer.restore(snap.adam);
  }
}
