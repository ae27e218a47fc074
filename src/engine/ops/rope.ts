/**
 * Rotary position embedding, Hugging Face Llama convention: rotate_half pairs dim i with
 * i + hd/2 (not adjacent pairs as in the RoFormer paper), inv_freq_i = theta^(-2i/hd).
 *   y[i]      = x[i]·cos(p·f_i) − x[i+hd/2]·sin(p·f_i)
 *   y[i+hd/2] = x[i+hd/2]·cos(p·f_i) + x[i]·sin(p·f_i)
 * The rotation is orthogonal, so the backward pass is the inverse rotation (sin → −sin) applied to
 * the gradient. Tables are float64 (HF computes them in float32; the difference is ~1e-7 relative).
 * Llama-3 frequency scaling (HF rope_type "llama3") rescales the frequencies whose wavelength
 * exceeds the original context: f/factor above originalMaxPositions/lowFreqFactor, f unchanged
 * below originalMaxPositions/highFreqFactor, a linear blend in between.
 */
import type { Buf } from "../kernels/types.js";

export interface Llama3RopeScaling {
  type: "llama3";
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositions: number;
}

/** inv_freq_i = theta^(-2i/hd), i < hd/2, with the optional Llama-3 rescaling. */
export function ropeFrequencies(
  headDim: number,
  theta: number,
  scaling?: Llama3RopeScaling | null,
): Float64Array {
  const half = headDim / 2;
  const f = new Float64Array(half);
  for (let i = 0; i < half; i++) f[i] = Math.pow(theta, (-2 * i) / headDim);
  if (!scaling) return f;
  const { factor, lowFreqFactor: lo, highFreqFactor: hi, originalMaxPositions: ctx } = scaling;
  for (let i = 0; i < half; i++) {
    const wavelen = (2 * Math.PI) / f[i];
    if (wavelen > ctx / lo) f[i] /= factor;
    else if (wavelen >= ctx / hi) {
      const smooth = (ctx / wavelen - lo) / (hi - lo);
      f[i] = (1 - smooth) * (f[i] / factor) + smooth * f[i];
    }
  }
  return f;
}

export function ropeTables(
  headDim: number,
  maxPos: number,
  theta: number,
  scaling?: Llama3RopeScaling | null,
): { cos: Float64Array /* (maxPos, hd/2) */; sin: Float64Array /* (maxPos, hd/2) */ } {
  if (headDim % 2 !== 0) throw new Error(`ropeTables: headDim must be even, got ${headDim}`);
  const half = headDim / 2;
  const freq = ropeFrequencies(headDim, theta, scaling);
  const cos = new Float64Array(maxPos * half);
  const sin = new Float64Array(maxPos * half);
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * freq[i];
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/** Rotates every head of row n by position pos[n], in place; `inverse` rotates by −angle (backward). */
export function ropeApply(
  x: Buf, // (N, H, hd) in place
  pos: Int32Array, // (N)
  cos: Float64Array, // (maxPos, hd/2)
  sin: Float64Array, // (maxPos, hd/2)
  N: number,
  H: number,
  hd: number,
  inverse: boolean,
): void {
  const half = hd >> 1;
  const sign = inverse ? -1 : 1;
  for (let n = 0; n < N; n++) {
    const t = pos[n] * half;
    for (let h = 0; h < H; h++) {
      const o = (n * H + h) * hd;
      for (let i = 0; i < half; i++) {
        const c = cos[t + i];
        const s = sign * sin[t + i];
        const a = x[o + i];
        const b = x[o + i + half];
        x[o + i] = a * c - b * s;
        x[o + i + half] = b * c + a * s;
      }
    }
  }
}
