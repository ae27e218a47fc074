/**
 * Causal scaled-dot-product attention with grouped-query heads (query head h reads kv head
 * floor(h / (Hq/Hkv)); Hkv = Hq is plain multi-head). Inputs are laid out as the projections
 * produce them, (B, T, H, hd), so no transposes are needed. Forward saves the probabilities
 * (B, Hq, T, T) for the backward pass; entries above the diagonal are written as 0.
 * This is the plain O(T²) algorithm (T ≤ a few hundred here), with float64 accumulators.
 */
import type { Buf } from "../kernels/types.js";

// Float64 scratch shared by the calls below, grown on demand (never inside the loops).
let scratch = new Float64Array(0);
function getScratch(n: number): Float64Array {
  if (scratch.length < n) scratch = new Float64Array(n);
  return scratch;
}

function groupSize(Hq: number, Hkv: number, where: string): number {
  if (Hkv <= 0 || Hq % Hkv !== 0) throw new Error(`${where}: Hq=${Hq} must be a positive multiple of Hkv=${Hkv}`);
  return Hq / Hkv;
}

export function attentionForward(
  out: Buf, // (B, T, Hq, hd)
  att: Buf, // (B, Hq, T, T) saved probabilities
  q: Buf, // (B, T, Hq, hd)
  k: Buf, // (B, T, Hkv, hd)
  v: Buf, // (B, T, Hkv, hd)
  B: number,
  T: number,
  Hq: number,
  Hkv: number,
  hd: number,
): void {
  const group = groupSize(Hq, Hkv, "attentionForward");
  const scale = 1 / Math.sqrt(hd);
  const buf = getScratch(T + hd);
  const row = buf.subarray(0, T); // (T) scores of one query
  const acc = buf.subarray(T, T + hd); // (hd) output accumulator
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < Hq; h++) {
        const kh = (h / group) | 0;
        const qo = ((b * T + t) * Hq + h) * hd;
        const ao = ((b * Hq + h) * T + t) * T;
        let max = -Infinity;
        for (let t2 = 0; t2 <= t; t2++) {
          const ko = ((b * T + t2) * Hkv + kh) * hd;
          let dot = 0;
          for (let d = 0; d < hd; d++) dot += q[qo + d] * k[ko + d];
          dot *= scale;
          row[t2] = dot;
          if (dot > max) max = dot;
        }
        let sum = 0;
        for (let t2 = 0; t2 <= t; t2++) {
          const e = Math.exp(row[t2] - max);
          row[t2] = e;
          sum += e;
        }
        const inv = 1 / sum;
        acc.fill(0);
        for (let t2 = 0; t2 <= t; t2++) {
          const p = row[t2] * inv;
          att[ao + t2] = p;
          const vo = ((b * T + t2) * Hkv + kh) * hd;
          for (let d = 0; d < hd; d++) acc[d] += p * v[vo + d];
        }
        for (let t2 = t + 1; t2 < T; t2++) att[ao + t2] = 0;
        for (let d = 0; d < hd; d++) out[qo + d] = acc[d];
      }
    }
  }
}

/**
 * dv += attᵀ·dout;  datt = dout·vᵀ;  dscore = att ⊙ (datt − Σ att·datt) (softmax backward);
 * dq += scale·dscore·k;  dk += scale·dscoreᵀ·q. dk/dv of one sequence are summed in float64
 * (over queries and over the query heads sharing a kv head) before being added to the buffers.
 */
export function attentionBackward(
  dq: Buf, // (B, T, Hq, hd) +=
  dk: Buf, // (B, T, Hkv, hd) +=
  dv: Buf, // (B, T, Hkv, hd) +=
  dout: Buf, // (B, T, Hq, hd)
  att: Buf, // (B, Hq, T, T)
  q: Buf, // (B, T, Hq, hd)
  k: Buf, // (B, T, Hkv, hd)
  v: Buf, // (B, T, Hkv, hd)
  B: number,
  T: number,
  Hq: number,
  Hkv: number,
  hd: number,
): void {
  const group = groupSize(Hq, Hkv, "attentionBackward");
  const scale = 1 / Math.sqrt(hd);
  const seq = T * Hkv * hd;
  const buf = getScratch(T + hd + 2 * seq);
  const datt = buf.subarray(0, T); // (T)
  const dqAcc = buf.subarray(T, T + hd); // (hd)
  const dkAcc = buf.subarray(T + hd, T + hd + seq); // (T, Hkv, hd)
  const dvAcc = buf.subarray(T + hd + seq, T + hd + 2 * seq); // (T, Hkv, hd)
  for (let b = 0; b < B; b++) {
    dkAcc.fill(0);
    dvAcc.fill(0);
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < Hq; h++) {
        const kh = (h / group) | 0;
        const qo = ((b * T + t) * Hq + h) * hd;
        const ao = ((b * Hq + h) * T + t) * T;
        let s = 0;
        for (let t2 = 0; t2 <= t; t2++) {
          const vo = ((b * T + t2) * Hkv + kh) * hd;
          const lo = (t2 * Hkv + kh) * hd;
          const p = att[ao + t2];
          let dot = 0;
          for (let d = 0; d < hd; d++) {
            const g = dout[qo + d];
            dot += g * v[vo + d];
            dvAcc[lo + d] += p * g;
          }
          datt[t2] = dot;
          s += p * dot;
        }
        dqAcc.fill(0);
        for (let t2 = 0; t2 <= t; t2++) {
          const ds = att[ao + t2] * (datt[t2] - s) * scale;
          if (ds === 0) continue;
          const ko = ((b * T + t2) * Hkv + kh) * hd;
          const lo = (t2 * Hkv + kh) * hd;
          for (let d = 0; d < hd; d++) {
            dqAcc[d] += ds * k[ko + d];
            dkAcc[lo + d] += ds * q[qo + d];
          }
        }
        for (let d = 0; d < hd; d++) dq[qo + d] += dqAcc[d];
      }
    }
    const so = b * seq;
    for (let i = 0; i < seq; i++) {
      dk[so + i] += dkAcc[i];
      dv[so + i] += dvAcc[i];
    }
  }
}

/**
 * One decoding step against a kv cache: sequence b's query attends to cache rows
 * [0, lengths[b]) (the current token's k/v must already be written). Rows with active[b] = 0 are
 * skipped and their `out` is left untouched.
 */
export function attentionDecode(
  out: Buf, // (B, Hq, hd)
  scores: Buf, // (Tmax) scratch
  q: Buf, // (B, Hq, hd)
  kCache: Buf, // (B, Tmax, Hkv, hd)
  vCache: Buf, // (B, Tmax, Hkv, hd)
  lengths: Int32Array, // (B) valid cache rows, including the current token
  active: Uint8Array, // (B) 1 = compute this row
  B: number,
  Tmax: number,
  Hq: number,
  Hkv: number,
  hd: number,
): void {
  const group = groupSize(Hq, Hkv, "attentionDecode");
  const scale = 1 / Math.sqrt(hd);
  const acc = getScratch(hd);
  for (let b = 0; b < B; b++) {
    if (active[b] === 0) continue;
    const L = lengths[b];
    if (L < 1 || L > Tmax) throw new Error(`attentionDecode: lengths[${b}]=${L} outside [1, ${Tmax}]`);
    for (let h = 0; h < Hq; h++) {
      const kh = (h / group) | 0;
      const qo = (b * Hq + h) * hd;
      let max = -Infinity;
      for (let t2 = 0; t2 < L; t2++) {
        const ko = ((b * Tmax + t2) * Hkv + kh) * hd;
        let dot = 0;
        for (let d = 0; d < hd; d++) dot += q[qo + d] * kCache[ko + d];
        dot *= scale;
        scores[t2] = dot;
        if (dot > max) max = dot;
      }
      let sum = 0;
      for (let t2 = 0; t2 < L; t2++) {
        const e = Math.exp(scores[t2] - max);
        scores[t2] = e;
        sum += e;
      }
      const inv = 1 / sum;
      acc.fill(0, 0, hd);
      for (let t2 = 0; t2 < L; t2++) {
        const p = scores[t2] * inv;
        const vo = ((b * Tmax + t2) * Hkv + kh) * hd;
        for (let d = 0; d < hd; d++) acc[d] += p * vCache[vo + d];
      }
      for (let d = 0; d < hd; d++) out[qo + d] = acc[d];
    }
  }
}
