/**
 * Pointwise activations: GELU (tanh approximation, HF "gelu_new" / torch gelu(approximate="tanh"))
 * and SwiGLU's gate silu(gate)·up (Llama MLP). Backward passes accumulate.
 */
import type { Buf } from "../kernels/types.js";
import { exp } from "./exp.js";

const GELU_K = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

// With u = √(2/π)·(x + 0.044715·x³): 0.5·(1 + tanh u) = σ(2u) = 1/(1 + e^(−2u)), so GELU needs one
// exp and no tanh (Math.tanh is the slowest call in V8's Math). σ saturates cleanly: e^(−2u) is 0
// or Infinity at large |x|, giving x or −0 (and no 1 + tanh cancellation for negative x).

/** out = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) = x·σ(2u). */
export function geluForward(out: Buf /* (n) */, inp: Buf /* (n) */, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = inp[i];
    out[i] = x / (1 + exp(-2 * GELU_K * x * (1 + GELU_A * x * x)));
  }
}

/** With s = σ(2u):  dinp += dout·s·(1 + 2·x·(1 − s)·du/dx),  du/dx = √(2/π)·(1 + 3·0.044715·x²). */
export function geluBackward(
  dinp: Buf /* (n) += */,
  inp: Buf /* (n) */,
  dout: Buf /* (n) */,
  n: number,
): void {
  for (let i = 0; i < n; i++) {
    const x = inp[i];
    const x2 = x * x;
    const s = 1 / (1 + exp(-2 * GELU_K * x * (1 + GELU_A * x2)));
    dinp[i] += dout[i] * s * (1 + 2 * GELU_K * x * (1 - s) * (1 + 3 * GELU_A * x2));
  }
}

/**
 * geluBackward using the saved forward output: s = σ(2u) = out / x, so no exp is needed (~3× faster;
 * s = 1/2 at x = 0). In float32 the division carries out's rounding into s, a relative error of a
 * few 1e-7 in the gradient where s is near 1; where out has underflowed (x < −10) s is 0.
 */
export function geluBackwardFromOutput(
  dinp: Buf, // (n) +=
  inp: Buf, // (n) forward input x
  out: Buf, // (n) forward output gelu(x)
  dout: Buf, // (n)
  n: number,
): void {
  for (let i = 0; i < n; i++) {
    const x = inp[i];
    const x2 = x * x;
    const s = x === 0 ? 0.5 : out[i] / x;
    dinp[i] += dout[i] * s * (1 + 2 * GELU_K * x * (1 - s) * (1 + 3 * GELU_A * x2));
  }
}

/** out = silu(gate)·up = gate·σ(gate)·up. σ via 1/(1+e^(−g)) saturates cleanly to 0 or 1. */
export function swigluForward(out: Buf /* (n) */, gate: Buf /* (n) */, up: Buf /* (n) */, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    out[i] = (g / (1 + exp(-g))) * up[i];
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
    const s = 1 / (1 + exp(-g));
    const d = dout[i];
    dgate[i] += d * up[i] * s * (1 + g * (1 - s));
    dup[i] += d * g * s;
  }
}
