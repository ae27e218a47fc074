/**
 * A transformer agent behind the algorithm's TrainablePolicy interface. The state before token t of
 * a trajectory is its prefix tokens[0..t); its policy is the sampling distribution
 * softmax(logits / temperature), the same one rollouts sample from, so behaviour and trainer
 * log-probs agree. Scoring runs one teacher-forced forward over the trajectories involved (right-
 * padded) up to the final hidden states, then projects only the requested states through the LM
 * head, a chunk of rows at a time, so no (B·T, V) logits or gradients ever exist: with a 150k
 * vocabulary those would be gigabytes. Backward runs the head backward chunk by chunk into the
 * hidden-state gradient, then the rest of the model.
 * Rows are float32 on a float32 engine (the logits are float32 already; float64 would double the
 * (S, V) output for no accuracy) and float64 on the float64 engine used by gradient checks.
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
  rowOf: Int32Array; // (S) row in the (B·T, C) hidden states for each state
  B: number;
  T: number;
  logp: Buf; // (S, V)
}

/** Rows of (·, V) logits per LM-head chunk: about 32 MB of float32 logits at a time. */
export function headChunkRows(V: number): number {
  return Math.max(1, Math.floor((32 << 20) / (4 * V)));
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
  // Chunk buffers of the LM head, from the engine's allocator (kept between calls).
  private hChunk: Buf = new Float32Array(0); // (chunk, C)
  private dhChunk: Buf = new Float32Array(0); // (chunk, C)
  private logitChunk: Buf = new Float32Array(0); // (chunk, V), also the dlogits chunk
  private dhidden: Buf = new Float32Array(0); // (B·T, C)
  lastGradNorm = 0;
  private readonly stepScaler = new StepScaler();
  /** States projected through the LM head at once (memory only; see headChunkRows). */
  headChunk: number;

  constructor(model: Transformer, temperature: number, optim: LmOptimOptions, decayMask?: Uint8Array) {
    if (!(temperature > 0)) throw new Error(`training needs a temperature > 0, got ${temperature}`);
    this.model = model;
    this.temperature = temperature;
    this.maxGradNorm = optim.maxGradNorm;
    this.optimizer = adamWFor(model, optim, decayMask);
    this.headChunk = headChunkRows(model.cfg.vocabSize);
  }

  get vocabSize(): number {
    return this.model.cfg.vocabSize;
  }

  logProbs(trajs: readonly Trajectory[], states: readonly StateRef[]): Buf {
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
    const hidden = this.model.forwardHidden(ids, B, T);
    const rowOf = new Int32Array(S);
    for (let k = 0; k < S; k++) rowOf[k] = slot.get(states[k].traj)! * T + states[k].t - 1;
    const logp = this.model.engine.float64 ? new Float64Array(S * V) : new Float32Array(S * V);
    const invT = 1 / this.temperature;
    this.forEachChunk(hidden, rowOf, (k0, n, h, logits) => {
      this.model.lmHead(logits, h, n);
      logSoftmaxForward(logp.subarray(k0 * V, (k0 + n) * V), logits, n, V, invT);
    });
    this.last = { rowOf, B, T, logp };
    return logp;
  }

  /**
   * Calls fn for consecutive chunks of states: k0, n rows, their hidden states gathered into h
   * (n, C) and a logits buffer (n, V) to use. Buffers are kept between calls.
   */
  private forEachChunk(
    hidden: Buf,
    rowOf: Int32Array,
    fn: (k0: number, n: number, h: Buf, logits: Buf) => void,
  ): void {
    const C = this.model.cfg.dModel;
    const V = this.vocabSize;
    const chunk = Math.max(1, Math.min(rowOf.length, this.headChunk));
    if (this.hChunk.length < chunk * C) this.hChunk = this.model.engine.alloc(chunk * C);
    if (this.logitChunk.length < chunk * V) this.logitChunk = this.model.engine.alloc(chunk * V);
    for (let k0 = 0; k0 < rowOf.length; k0 += chunk) {
      const n = Math.min(chunk, rowOf.length - k0);
      const h = this.hChunk.subarray(0, n * C);
      for (let i = 0; i < n; i++) h.set(hidden.subarray(rowOf[k0 + i] * C, (rowOf[k0 + i] + 1) * C), i * C);
      fn(k0, n, h, this.logitChunk.subarray(0, n * V));
    }
  }

  backward(dlogp: Float64Array | Float32Array): void {
    const last = this.last;
    if (!last) throw new Error("backward called before logProbs");
    const V = this.vocabSize;
    const C = this.model.cfg.dModel;
    const N = last.B * last.T;
    if (dlogp.length !== last.logp.length)
      throw new Error(
        `backward: dlogp has ${dlogp.length} entries, the last logProbs returned ${last.logp.length}`,
      );
    if (this.dhidden.length < N * C) this.dhidden = this.model.engine.alloc(N * C);
    const dhidden = this.dhidden.subarray(0, N * C);
    dhidden.fill(0);
    if (this.dhChunk.length < this.hChunk.length) this.dhChunk = this.model.engine.alloc(this.hChunk.length);
    const invT = 1 / this.temperature;
    // The hidden states of the last forward are still in the model's activations.
    const hidden = this.model.hiddenStates();
    this.forEachChunk(hidden, last.rowOf, (k0, n, h, dlogits) => {
      dlogits.fill(0);
      const rows = [k0 * V, (k0 + n) * V] as const;
      logSoftmaxBackward(dlogits, dlogp.subarray(...rows), last.logp.subarray(...rows), n, V, invT);
      const dh = this.dhChunk.subarray(0, n * C);
      dh.fill(0);
      this.model.lmHeadBackward(dh, dlogits, h, n);
      for (let i = 0; i < n; i++) {
        const o = last.rowOf[k0 + i] * C;
        for (let c = 0; c < C; c++) dhidden[o + c] += dh[i * C + c];
      }
    });
    this.model.backwardHidden(dhidden);
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
