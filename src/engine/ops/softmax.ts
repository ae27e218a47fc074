/**
 * Log-softmax over the vocabulary and the losses built on it: cross-entropy (pretraining / SFT)
 * and the log-probability of chosen tokens under a temperature (policy-gradient ratios).
 * Temperature enters as invTemp > 0: the distribution is softmax(logits · invTemp). Rows are
 * max-shifted, so ±1e4 logits are exact and −Infinity logits give probability 0 (log-prob −∞),
 * not NaN. A row whose logits are all −Infinity has no distribution and yields NaN.
 */
import type { Buf } from "../kernels/types.js";

/** out[n,:] = z − max(z) − log Σ exp(z − max(z)), z = logits[n,:]·invTemp. */
export function logSoftmaxForward(
  out: Buf, // (N, V)
  logits: Buf, // (N, V)
  N: number,
  V: number,
  invTemp: number,
): void {
  for (let n = 0; n < N; n++) {
    const o = n * V;
    let max = -Infinity;
    for (let i = 0; i < V; i++) {
      const z = logits[o + i] * invTemp;
      if (z > max) max = z;
    }
    let sum = 0;
    for (let i = 0; i < V; i++) sum += Math.exp(logits[o + i] * invTemp - max);
    // (z − max) first: exact for the top logit, so large logits lose no precision to the shift.
    const logSum = Math.log(sum);
    for (let i = 0; i < V; i++) out[o + i] = logits[o + i] * invTemp - max - logSum;
  }
}

/** dlogits += invTemp·(dlogp − p·Σ dlogp), p = exp(logp). */
export function logSoftmaxBackward(
  dlogits: Buf, // (N, V) +=
  dlogp: Buf, // (N, V)
  logp: Buf, // (N, V)
  N: number,
  V: number,
  invTemp: number,
): void {
  for (let n = 0; n < N; n++) {
    const o = n * V;
    let s = 0;
    for (let i = 0; i < V; i++) s += dlogp[o + i];
    for (let i = 0; i < V; i++) dlogits[o + i] += invTemp * (dlogp[o + i] - Math.exp(logp[o + i]) * s);
  }
}

/** losses[n] = −logp[n, targets[n]] (natural log); rows with targets[n] < 0 are ignored (loss 0). */
export function crossEntropyForward(
  losses: Buf, // (N)
  logp: Buf, // (N, V) out: log-softmax of logits
  logits: Buf, // (N, V)
  targets: Int32Array, // (N)
  N: number,
  V: number,
): void {
  logSoftmaxForward(logp, logits, N, V, 1);
  for (let n = 0; n < N; n++) losses[n] = targets[n] < 0 ? 0 : -logp[n * V + targets[n]];
}

/** dlogits += dlosses[n]·(p − onehot(target)); ignored rows get nothing. */
export function crossEntropyBackward(
  dlogits: Buf, // (N, V) +=
  dlosses: Buf, // (N)
  logp: Buf, // (N, V)
  targets: Int32Array, // (N)
  N: number,
  V: number,
): void {
  for (let n = 0; n < N; n++) {
    const t = targets[n];
    if (t < 0) continue;
    const o = n * V;
    const g = dlosses[n];
    for (let i = 0; i < V; i++) dlogits[o + i] += g * Math.exp(logp[o + i]);
    dlogits[o + t] -= g;
  }
}

/** out[n] = log softmax(logits[n,:]·invTemp)[targets[n]]; rows with targets[n] < 0 give 0. */
export function tokenLogProbForward(
  out: Buf, // (N)
  logp: Buf, // (N, V) out: tempered log-softmax
  logits: Buf, // (N, V)
  targets: Int32Array, // (N)
  N: number,
  V: number,
  invTemp: number,
): void {
  logSoftmaxForward(logp, logits, N, V, invTemp);
  for (let n = 0; n < N; n++) out[n] = targets[n] < 0 ? 0 : logp[n * V + targets[n]];
}

/** dlogits += dout[n]·invTemp·(onehot(target) − p); ignored rows get nothing. */
export function tokenLogProbBackward(
  dlogits: Buf, // (N, V) +=
  dout: Buf, // (N)
  logp: Buf, // (N, V)
  targets: Int32Array, // (N)
  N: number,
  V: number,
  invTemp: number,
): void {
  for (let n = 0; n < N; n++) {
    const t = targets[n];
    if (t < 0) continue;
    const o = n * V;
    const g = dout[n] * invTemp;
    for (let i = 0; i < V; i++) dlogits[o + i] -= g * Math.exp(logp[o + i]);
    dlogits[o + t] += g;
  }
}

/**
 * Cross-entropy forward and backward in one pass over the logits, without a log-prob buffer:
 * losses[n] = −log softmax(z)[t] and dlogits[n,:] = dscale·(softmax(z) − onehot(t)) (overwritten,
 * not accumulated), t = targets[n]; rows with t < 0 get loss 0 and a zero gradient. `dscale` is the
 * gradient of the total loss w.r.t. each row's loss (1/N for a mean). Same maths as
 * crossEntropyForward + crossEntropyBackward.
 */
export function softmaxCrossEntropy(
  losses: Buf, // (N)
  dlogits: Buf, // (N, V) overwritten
  logits: Buf, // (N, V)
  targets: Int32Array, // (N)
  N: number,
  V: number,
  dscale: number,
): void {
  for (let n = 0; n < N; n++) {
    const o = n * V;
    const t = targets[n];
    if (t < 0) {
      losses[n] = 0;
      dlogits.fill(0, o, o + V);
      continue;
    }
    let max = -Infinity;
    for (let i = 0; i < V; i++) if (logits[o + i] > max) max = logits[o + i];
    let sum = 0;
    for (let i = 0; i < V; i++) sum += Math.exp(logits[o + i] - max);
    const logSum = Math.log(sum);
    losses[n] = -(logits[o + t] - max - logSum);
    for (let i = 0; i < V; i++) dlogits[o + i] = dscale * Math.exp(logits[o + i] - max - logSum);
    dlogits[o + t] -= dscale;
  }
}

/**
 * One draw from softmax(logits[off..off+V) · invTemp) given a uniform u ∈ [0, 1), walking the
 * unnormalised weights as Rng.categorical walks probabilities; returns the token and writes its
 * log-prob to logp[0]. The fallback of the native sampler (Ops.sampleRow).
 */
export function sampleRowJs(
  logits: Buf,
  off: number,
  V: number,
  invTemp: number,
  u: number,
  logp: Float64Array,
): number {
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[off + i] > max) max = logits[off + i];
  let total = 0;
  for (let i = 0; i < V; i++) total += Math.exp((logits[off + i] - max) * invTemp);
  let r = u * total;
  let t = -1;
  for (let i = 0; i < V && t < 0; i++) {
    r -= Math.exp((logits[off + i] - max) * invTemp);
    if (r < 0) t = i;
  }
  if (t < 0) for (t = V - 1; t > 0 && logits[off + t] === -Infinity; t--);
  logp[0] = (logits[off + t] - max) * invTemp - Math.log(total);
  return t;
}
