/**
 * AdamW over one flat parameter buffer, with torch.optim.AdamW semantics (amsgrad off,
 * maximize off): decoupled weight decay p ← p·(1 − lr·wd) applied before the Adam update,
 * bias corrections 1 − β^t, eps added outside the square root:
 *   m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  p ← p − lr/(1−β1^t) · m / (√v/√(1−β2^t) + eps).
 * Reference: Loshchilov & Hutter, "Decoupled Weight Decay Regularization", Algorithm 2.
 * Moments live in arrays of the same type as the parameters; arithmetic is done in float64.
 */
import type { Buf } from "./kernels/types.js";

export interface AdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Per element, 1 = apply weight decay (e.g. matrices), 0 = do not (biases, norms). Default: all decayed. */
  decayMask?: Uint8Array;
}

/** Everything needed to resume bit-exactly: the step count and copies of both moments. */
export interface AdamWState {
  step: number;
  m: Buf;
  v: Buf;
}

function like(a: Buf): Buf {
  return a instanceof Float32Array ? new Float32Array(a.length) : new Float64Array(a.length);
}

export class AdamW {
  readonly params: Buf;
  readonly grads: Buf;
  readonly opts: Readonly<AdamWOptions>;
  /** First moment (same length and type as params). */
  readonly m: Buf;
  /** Second moment (same length and type as params). */
  readonly v: Buf;
  private t = 0;

  constructor(params: Buf, grads: Buf, opts: AdamWOptions) {
    if (grads.length !== params.length) {
      throw new Error(`AdamW: grads length ${grads.length} != params length ${params.length}`);
    }
    if (opts.decayMask && opts.decayMask.length !== params.length) {
      throw new Error(`AdamW: decayMask length ${opts.decayMask.length} != params length ${params.length}`);
    }
    if (!(opts.lr >= 0)) throw new Error(`AdamW: lr must be >= 0, got ${opts.lr}`);
    if (!(opts.beta1 >= 0 && opts.beta1 < 1))
      throw new Error(`AdamW: beta1 must be in [0, 1), got ${opts.beta1}`);
    if (!(opts.beta2 >= 0 && opts.beta2 < 1))
      throw new Error(`AdamW: beta2 must be in [0, 1), got ${opts.beta2}`);
    if (!(opts.eps > 0)) throw new Error(`AdamW: eps must be > 0, got ${opts.eps}`);
    if (!(opts.weightDecay >= 0)) throw new Error(`AdamW: weightDecay must be >= 0, got ${opts.weightDecay}`);
    this.params = params;
    this.grads = grads;
    this.opts = { ...opts };
    this.m = like(params);
    this.v = like(params);
  }

  /** Number of steps taken so far (torch's state["step"]). */
  get stepCount(): number {
    return this.t;
  }

  /** Live view of the optimizer state (not a copy; use snapshot() for one). */
  get state(): AdamWState {
    return { step: this.t, m: this.m, v: this.v };
  }

  /** One update from the current grads; `lr` overrides opts.lr for this step (schedules). */
  step(lr: number = this.opts.lr): void {
    const { beta1, beta2, eps, weightDecay, decayMask } = this.opts;
    const p = this.params;
    const g = this.grads;
    const m = this.m;
    const v = this.v;
    this.t += 1;
    const bc1 = 1 - Math.pow(beta1, this.t);
    const bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, this.t));
    const stepSize = lr / bc1;
    const decay = 1 - lr * weightDecay;
    for (let i = 0; i < p.length; i++) {
      let pi = p[i];
      if (weightDecay !== 0 && (decayMask === undefined || decayMask[i] !== 0)) pi *= decay;
      const gi = g[i];
      const mi = beta1 * m[i] + (1 - beta1) * gi;
      const vi = beta2 * v[i] + (1 - beta2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      // Read back the stored (possibly float32-rounded) moments, as torch does.
      p[i] = pi - (stepSize * m[i]) / (Math.sqrt(v[i]) / bc2Sqrt + eps);
    }
  }

  /**
   * Global L2 norm of the grads (float64 sum); when maxNorm > 0 and the norm exceeds it, scales the
   * grads by maxNorm / (norm + 1e-6), as torch.nn.utils.clip_grad_norm_. maxNorm 0 = measure only.
   * A non-finite norm leaves the grads unchanged; the caller should skip the step.
   */
  clipGradNorm(maxNorm: number): number {
    const g = this.grads;
    let ss = 0;
    for (let i = 0; i < g.length; i++) ss += g[i] * g[i];
    const norm = Math.sqrt(ss);
    if (maxNorm > 0 && Number.isFinite(norm)) {
      const coef = maxNorm / (norm + 1e-6);
      if (coef < 1) for (let i = 0; i < g.length; i++) g[i] *= coef;
    }
    return norm;
  }

  /** m ← factor·m (0 clears the momentum); v and the step count are left as they are. */
  scaleFirstMoment(factor: number): void {
    const m = this.m;
    if (factor === 0) m.fill(0);
    else for (let i = 0; i < m.length; i++) m[i] *= factor;
  }

  zeroGrad(): void {
    this.grads.fill(0);
  }

  /** A deep copy of the state (moments keep the parameter dtype, so restore is bit-exact). */
  snapshot(): AdamWState {
    return { step: this.t, m: this.m.slice(), v: this.v.slice() };
  }

  restore(s: AdamWState): void {
    if (s.m.length !== this.m.length || s.v.length !== this.v.length) {
      throw new Error(`AdamW.restore: state has ${s.m.length} moments, optimizer has ${this.m.length}`);
    }
    if (!Number.isInteger(s.step) || s.step < 0) throw new Error(`AdamW.restore: invalid step ${s.step}`);
    this.m.set(s.m);
    this.v.set(s.v);
    this.t = s.step;
  }
}
