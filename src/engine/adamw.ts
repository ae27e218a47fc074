/**
 * AdamW over one flat parameter buffer, with torch.optim.AdamW semantics (amsgrad off,
 * maximize off): decoupled weight decay p ← p·(1 − lr·wd) applied before the Adam update,
 * bias corrections 1 − β^t, eps added outside the square root:
 *   m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  p ← p − lr/(1−β1^t) · m / (√v/√(1−β2^t) + eps).
 * Reference: Loshchilov & Hutter, "Decoupled Weight Decay Regularization", Algorithm 2.
 * Moments live in arrays of the same type as the parameters; arithmetic is done in float64.
 */
import type { Buf } from "./kernels/types.js";
import type { Ops } from "./ops/table.js";

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

/**
 * One AdamW update of every element (the loop of AdamW.step): decay = 1 − lr·wd (applied where the
 * mask allows, or everywhere without one), stepSize = lr / (1 − β1^t), bc2Sqrt = √(1 − β2^t).
 */
export function adamwUpdate(
  p: Buf,
  g: Buf,
  m: Buf,
  v: Buf,
  mask: Uint8Array | undefined,
  beta1: number,
  beta2: number,
  eps: number,
  decay: number,
  stepSize: number,
  bc2Sqrt: number,
): void {
  for (let i = 0; i < p.length; i++) {
    let pi = p[i];
    if (decay !== 1 && (mask === undefined || mask[i] !== 0)) pi *= decay;
    const gi = g[i];
    m[i] = beta1 * m[i] + (1 - beta1) * gi;
    v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
    // Read back the stored (possibly float32-rounded) moments, as torch does.
    p[i] = pi - (stepSize * m[i]) / (Math.sqrt(v[i]) / bc2Sqrt + eps);
  }
}

/** Σ x² in float64. */
export function sumOfSquares(x: Buf): number {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i] * x[i];
  return ss;
}

/** x ← x·s. */
export function scaleInPlace(x: Buf, s: number): void {
  for (let i = 0; i < x.length; i++) x[i] *= s;
}

/** The kernels AdamW runs on: the TypeScript loops above, or an engine's (Engine.ops). */
export type AdamWKernels = Pick<Ops, "adamwUpdate" | "sumOfSquares" | "scaleInPlace">;
const tsAdamW: AdamWKernels = { adamwUpdate, sumOfSquares, scaleInPlace };

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
  private readonly kernels: AdamWKernels;

  /** `kernels`: an engine's ops (Engine.ops) to run the update there; default the TypeScript loops. */
  constructor(params: Buf, grads: Buf, opts: AdamWOptions, kernels: AdamWKernels = tsAdamW) {
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
    this.kernels = kernels;
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
    this.t += 1;
    const bc1 = 1 - Math.pow(beta1, this.t);
    const bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, this.t));
    const decay = weightDecay === 0 ? 1 : 1 - lr * weightDecay;
    const p = this.params;
    this.kernels.adamwUpdate(
      p,
      this.grads,
      this.m,
      this.v,
      decayMask,
      beta1,
      beta2,
      eps,
      decay,
      lr / bc1,
      bc2Sqrt,
    );
  }

  /**
   * Global L2 norm of the grads (float64 sum); when maxNorm > 0 and the norm exceeds it, scales the
   * grads by maxNorm / (norm + 1e-6), as torch.nn.utils.clip_grad_norm_. maxNorm 0 = measure only.
   * A non-finite norm leaves the grads unchanged; the caller should skip the step.
   */
  clipGradNorm(maxNorm: number): number {
    const g = this.grads;
    const norm = Math.sqrt(this.kernels.sumOfSquares(g));
    if (maxNorm > 0 && Number.isFinite(norm)) {
      const coef = maxNorm / (norm + 1e-6);
      if (coef < 1) this.kernels.scaleInPlace(g, coef);
    }
    return norm;
  }

  /** m ← factor·m (0 clears the momentum); v and the step count are left as they are. */
  scaleFirstMoment(factor: number): void {
    if (factor === 0) this.m.fill(0);
    else this.kernels.scaleInPlace(this.m, factor);
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
