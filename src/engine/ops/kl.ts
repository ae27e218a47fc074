/**
 * Exact KL divergence KL(p ‖ q) = Σ_v p (log p − log q) over the whole vocabulary, and entropy,
 * from log-probabilities (outputs of logSoftmaxForward). q is a fixed reference (no gradient).
 *
 * Each term is computed as p·(log p − log q) − p + q, which adds Σq − Σp = 0 to the sum but
 * makes every term ≥ 0 (x·log(x/y) − x + y ≥ 0), so rounding cannot produce a negative KL and
 * KL(p ‖ p) is exactly 0. Terms with p = 0 contribute q (their p·log p part is 0 by convention).
 * The gradient w.r.t. log p of that form is p·(log p − log q); it differs from the gradient of
 * the plain form by p, which log-softmax's backward removes (it is orthogonal to it), so the
 * logits gradient is the same.
 */
import type { Buf } from "../kernels/types.js";

export function klForward(
  kl: Buf, // (N)
  logpP: Buf, // (N, V)
  logpQ: Buf, // (N, V)
  N: number,
  V: number,
): void {
  for (let n = 0; n < N; n++) {
    const o = n * V;
    let s = 0;
    for (let i = 0; i < V; i++) {
      const lp = logpP[o + i];
      const q = Math.exp(logpQ[o + i]);
      if (lp === -Infinity) {
        s += q;
        continue;
      }
      const p = Math.exp(lp);
      s += p * (lp - logpQ[o + i]) - p + q;
    }
    kl[n] = s < 0 ? 0 : s; // NaN passes through
  }
}

/** dlogpP += dkl[n]·p·(log p − log q); chain through logSoftmaxBackward to reach the logits. */
export function klBackward(
  dlogpP: Buf, // (N, V) +=
  dkl: Buf, // (N)
  logpP: Buf, // (N, V)
  logpQ: Buf, // (N, V)
  N: number,
  V: number,
): void {
  for (let n = 0; n < N; n++) {
    const o = n * V;
    const g = dkl[n];
    for (let i = 0; i < V; i++) {
      const lp = logpP[o + i];
      if (lp === -Infinity) continue;
      dlogpP[o + i] += g * Math.exp(lp) * (lp - logpQ[o + i]);
    }
  }
}

/** ent[n] = −Σ_v p log p (nats); p = 0 terms contribute 0. */
export function entropyForward(
  ent: Buf, // (N)
  logp: Buf, // (N, V)
  N: number,
  V: number,
): void {
  for (let n = 0; n < N; n++) {
    const o = n * V;
    let s = 0;
    for (let i = 0; i < V; i++) {
      const lp = logp[o + i];
      if (lp !== -Infinity) s -= Math.exp(lp) * lp;
    }
    ent[n] = s;
  }
}

/** dlogp += dent[n]·(−p·(log p + 1)); chain through logSoftmaxBackward to reach the logits. */
export function entropyBackward(
  dlogp: Buf, // (N, V) +=
  dent: Buf, // (N)
  logp: Buf, // (N, V)
  N: number,
  V: number,
): void {
  for (let n = 0; n < N; n++) {
    const o = n * V;
    const g = dent[n];
    for (let i = 0; i < V; i++) {
      const lp = logp[o + i];
      if (lp !== -Infinity) dlogp[o + i] -= g * Math.exp(lp) * (lp + 1);
    }
  }
}
