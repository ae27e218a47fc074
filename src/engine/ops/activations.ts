/**
 * Pointwise activations: GELU (tanh approximation, HF "gelu_new" / torch gelu(approximate="tanh"))
 * and SwiGLU's gate silu(gate)·up (Llama MLP). Backward passes accumulate.
 */
import type { Buf } from "../kernels/types.js";

const GELU_K = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

/** out = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function geluForward(out: Buf /* (n) */, inp: Buf /* (n) */, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = inp[i];
    out[i] = 0.5 * x * (1 + Math.tanh(GELU_K * (x + GELU_A * x * x * x)));
  }
}

export function geluBackward(
  dinp: Buf /* (n) += */,
  inp: Buf /* (n) */,
  dout: Buf /* (n) */,
  n: number,
): void {
  for (let i = 0; i < n; i++) {
    const x = inp[i];
    const th = Math.tanh(GELU_K * (x + GELU_A * x * x * x));
    const du = GELU_K * (1 + 3 * GELU_A * x * x);
    dinp[i] += dout[i] * (0.5 * (1 + th) + 0.5 * x * (1 - th * th) * du);
  }
}

/** out = silu(gate)·up = gate·σ(gate)·up. σ via 1/(1+e^(−g)) saturates cleanly to 0 or 1. */
export function swigluForward(out: Buf /* (n) */, gate: Buf /* (n) */, up: Buf /* (n) */, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    out[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
}

/** dgate += dout·up·σ(g)·(1 + g·(1−σ(g))),  dup += dout·silu(g). */
export function swigluBackward(
  dgate: Buf, // (n) +=
  dup: Buf, // (n) +=
  dout: Buf, // (n)
  gate: Buf, // (n)
  up: Buf, // (n)
  n: number,
): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    const s = 1 / (1 + Math.exp(-g));
    const d = dout[i];
    dgate[i] += d * up[i] * s * (1 + g * (1 - s));
    dup[i] += d * g * s;
  }
}
