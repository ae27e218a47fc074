/**
 * Causal scaled-dot-product attention with grouped-query heads (query head h reads kv head
 * floor(h / (Hq/Hkv)); Hkv = Hq is plain multi-head). Inputs are laid out as the projections
 * produce them, (B, T, H, hd). Forward saves the probabilities (B, Hq, T, T), zero above the
 * diagonal, for the backward pass. Plain O(T²) algorithm (T ≤ a few hundred here).
 *
 * Longer than the other op files on purpose: this sits on the training hot path, so each
 * (sequence, head) is packed into contiguous float64 panels and the two products (scores = Q·Kᵀ,
 * mix = P·V) run as 4×4 register tiles, which is several times faster in V8 than per-element dot
 * products. All sums are float64; only the final stores round to the buffer type.
 */
import type { Buf } from "../kernels/types.js";
import { exp } from "./exp.js";

// Float64 scratch shared by the calls below, grown on demand (never inside the loops).
let scratch = new Float64Array(0);
function getScratch(n: number): Float64Array {
  if (scratch.length < n) scratch = new Float64Array(n);
  return scratch;
}

/** Query heads per kv head (grouped-query attention); shared with attention-gemm.ts. */
export function groupSize(Hq: number, Hkv: number, where: string): number {
  if (Hkv <= 0 || Hq % Hkv !== 0)
    throw new Error(`${where}: Hq=${Hq} must be a positive multiple of Hkv=${Hkv}`);
  return Hq / Hkv;
}

/** dst (T, hd) packed = src rows at off + t·stride, times mul. */
function pack(
  dst: Float64Array,
  src: Buf,
  off: number,
  stride: number,
  T: number,
  hd: number,
  mul: number,
): void {
  for (let t = 0; t < T; t++) for (let d = 0; d < hd; d++) dst[t * hd + d] = src[off + t * stride + d] * mul;
}

/** dst rows at off + t·stride += src (T, hd) packed. */
function unpackAdd(dst: Buf, src: Float64Array, off: number, stride: number, T: number, hd: number): void {
  for (let t = 0; t < T; t++) for (let d = 0; d < hd; d++) dst[off + t * stride + d] += src[t * hd + d];
}

/** dst (T, T) = srcᵀ. */
function transpose(dst: Float64Array, src: Float64Array, T: number): void {
  for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) dst[j * T + i] = src[i * T + j];
}

/**
 * S[i, j] = A[i,:]·Bm[j,:] for j ≤ i; A, Bm (T, hd), S (T, T). Diagonal tiles also write a few
 * j > i entries, which callers overwrite.
 */
function lowerABt(S: Float64Array, A: Float64Array, Bm: Float64Array, T: number, hd: number): void {
  let i0 = 0;
  for (; i0 + 4 <= T; i0 += 4) {
    // prettier-ignore
    const a0 = i0 * hd, a1 = a0 + hd, a2 = a1 + hd, a3 = a2 + hd;
    // prettier-ignore
    for (let j0 = 0; j0 <= i0; j0 += 4) {
      const b0 = j0 * hd, b1 = b0 + hd, b2 = b1 + hd, b3 = b2 + hd;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      let s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
      for (let d = 0; d < hd; d++) {
        const x0 = A[a0 + d], x1 = A[a1 + d], x2 = A[a2 + d], x3 = A[a3 + d];
        const y0 = Bm[b0 + d], y1 = Bm[b1 + d], y2 = Bm[b2 + d], y3 = Bm[b3 + d];
        s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
        s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
        s20 += x2 * y0; s21 += x2 * y1; s22 += x2 * y2; s23 += x2 * y3;
        s30 += x3 * y0; s31 += x3 * y1; s32 += x3 * y2; s33 += x3 * y3;
      }
      let o = i0 * T + j0;
      S[o] = s00; S[o + 1] = s01; S[o + 2] = s02; S[o + 3] = s03; o += T;
      S[o] = s10; S[o + 1] = s11; S[o + 2] = s12; S[o + 3] = s13; o += T;
      S[o] = s20; S[o + 1] = s21; S[o + 2] = s22; S[o + 3] = s23; o += T;
      S[o] = s30; S[o + 1] = s31; S[o + 2] = s32; S[o + 3] = s33;
    }
  }
  for (; i0 < T; i0++) {
    for (let j = 0; j <= i0; j++) {
      let s = 0;
      for (let d = 0; d < hd; d++) s += A[i0 * hd + d] * Bm[j * hd + d];
      S[i0 * T + j] = s;
    }
  }
}

/**
 * C (T, hd) = P·V (or += when accumulate), where P (T, T) is zero outside its lower (j ≤ i) or
 * upper (j ≥ i) triangle, so only that band of j is visited.
 */
function mixPV(
  C: Float64Array,
  P: Float64Array,
  V: Float64Array,
  T: number,
  hd: number,
  lower: boolean,
  accumulate: boolean,
): void {
  if (!accumulate) C.fill(0, 0, T * hd);
  let i0 = 0;
  for (; i0 + 4 <= T; i0 += 4) {
    const jLo = lower ? 0 : i0;
    const jHi = lower ? i0 + 4 : T;
    // prettier-ignore
    const p0 = i0 * T, p1 = p0 + T, p2 = p1 + T, p3 = p2 + T;
    let d0 = 0;
    // prettier-ignore
    for (; d0 + 4 <= hd; d0 += 4) {
      let c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
      let c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
      for (let j = jLo; j < jHi; j++) {
        const x0 = P[p0 + j], x1 = P[p1 + j], x2 = P[p2 + j], x3 = P[p3 + j];
        const v = j * hd + d0;
        const y0 = V[v], y1 = V[v + 1], y2 = V[v + 2], y3 = V[v + 3];
        c00 += x0 * y0; c01 += x0 * y1; c02 += x0 * y2; c03 += x0 * y3;
        c10 += x1 * y0; c11 += x1 * y1; c12 += x1 * y2; c13 += x1 * y3;
        c20 += x2 * y0; c21 += x2 * y1; c22 += x2 * y2; c23 += x2 * y3;
        c30 += x3 * y0; c31 += x3 * y1; c32 += x3 * y2; c33 += x3 * y3;
      }
      let o = i0 * hd + d0;
      C[o] += c00; C[o + 1] += c01; C[o + 2] += c02; C[o + 3] += c03; o += hd;
      C[o] += c10; C[o + 1] += c11; C[o + 2] += c12; C[o + 3] += c13; o += hd;
      C[o] += c20; C[o + 1] += c21; C[o + 2] += c22; C[o + 3] += c23; o += hd;
      C[o] += c30; C[o + 1] += c31; C[o + 2] += c32; C[o + 3] += c33;
    }
    for (let i = i0; i < i0 + 4; i++) mixRow(C, P, V, T, hd, i, jLo, jHi, d0);
  }
  for (; i0 < T; i0++) mixRow(C, P, V, T, hd, i0, lower ? 0 : i0, lower ? i0 + 1 : T, 0);
}

/** C[i, dFrom:] += Σ_{j in [jLo, jHi)} P[i, j]·V[j, dFrom:] (tile remainders). */
function mixRow(
  C: Float64Array,
  P: Float64Array,
  V: Float64Array,
  T: number,
  hd: number,
  i: number,
  jLo: number,
  jHi: number,
  dFrom: number,
): void {
  for (let d = dFrom; d < hd; d++) {
    let c = 0;
    for (let j = jLo; j < jHi; j++) c += P[i * T + j] * V[j * hd + d];
    C[i * hd + d] += c;
  }
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
  const P = T * hd;
  const buf = getScratch(4 * P + T * T);
  const Qp = buf.subarray(0, P); // (T, hd) query panel, pre-scaled
  const Kp = buf.subarray(P, 2 * P); // (T, hd)
  const Vp = buf.subarray(2 * P, 3 * P); // (T, hd)
  const Op = buf.subarray(3 * P, 4 * P); // (T, hd)
  const S = buf.subarray(4 * P, 4 * P + T * T); // (T, T) scores, then probabilities
  for (let b = 0; b < B; b++) {
    for (let kh = 0; kh < Hkv; kh++) {
      pack(Kp, k, (b * T * Hkv + kh) * hd, Hkv * hd, T, hd, 1);
      pack(Vp, v, (b * T * Hkv + kh) * hd, Hkv * hd, T, hd, 1);
      for (let h = kh * group; h < (kh + 1) * group; h++) {
        const qOff = (b * T * Hq + h) * hd;
        pack(Qp, q, qOff, Hq * hd, T, hd, scale);
        lowerABt(S, Qp, Kp, T, hd);
        const ao = (b * Hq + h) * T * T;
        for (let i = 0; i < T; i++) {
          const r = i * T;
          let max = -Infinity;
          for (let j = 0; j <= i; j++) if (S[r + j] > max) max = S[r + j];
          let sum = 0;
          for (let j = 0; j <= i; j++) {
            const e = Math.exp(S[r + j] - max);
            S[r + j] = e;
            sum += e;
          }
          const inv = 1 / sum;
          for (let j = 0; j <= i; j++) att[ao + r + j] = S[r + j] *= inv;
          for (let j = i + 1; j < T; j++) att[ao + r + j] = S[r + j] = 0;
        }
        mixPV(Op, S, Vp, T, hd, true, false);
        for (let t = 0; t < T; t++) for (let d = 0; d < hd; d++) out[qOff + t * Hq * hd + d] = Op[t * hd + d];
      }
    }
  }
}

/**
 * dv += Pᵀ·dout;  dP = dout·vᵀ;  dS = P ⊙ (dP − rowsum(P ⊙ dP)) (softmax backward);
 * dq += scale·dS·k;  dk += scale·dSᵀ·q. A kv head's gradients are summed in float64 over its
 * query heads before being added to the buffers.
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
  const P = T * hd;
  const TT = T * T;
  const buf = getScratch(7 * P + 3 * TT);
  const Qp = buf.subarray(0, P); // (T, hd)
  const Kp = buf.subarray(P, 2 * P); // (T, hd)
  const Vp = buf.subarray(2 * P, 3 * P); // (T, hd)
  const dOp = buf.subarray(3 * P, 4 * P); // (T, hd)
  const dQp = buf.subarray(4 * P, 5 * P); // (T, hd)
  const dKp = buf.subarray(5 * P, 6 * P); // (T, hd) summed over the group
  const dVp = buf.subarray(6 * P, 7 * P); // (T, hd) summed over the group
  const Pm = buf.subarray(7 * P, 7 * P + TT); // (T, T) probabilities
  const dS = buf.subarray(7 * P + TT, 7 * P + 2 * TT); // (T, T) dP, then dScores
  const tr = buf.subarray(7 * P + 2 * TT, 7 * P + 3 * TT); // (T, T) a transpose
  for (let b = 0; b < B; b++) {
    for (let kh = 0; kh < Hkv; kh++) {
      const kvOff = (b * T * Hkv + kh) * hd;
      pack(Kp, k, kvOff, Hkv * hd, T, hd, 1);
      pack(Vp, v, kvOff, Hkv * hd, T, hd, 1);
      dKp.fill(0);
      dVp.fill(0);
      for (let h = kh * group; h < (kh + 1) * group; h++) {
        const qOff = (b * T * Hq + h) * hd;
        pack(Qp, q, qOff, Hq * hd, T, hd, 1);
        pack(dOp, dout, qOff, Hq * hd, T, hd, 1);
        const ao = (b * Hq + h) * TT;
        for (let i = 0; i < TT; i++) Pm[i] = att[ao + i];
        lowerABt(dS, dOp, Vp, T, hd);
        for (let i = 0; i < T; i++) {
          const r = i * T;
          let s = 0;
          for (let j = 0; j <= i; j++) s += Pm[r + j] * dS[r + j];
          for (let j = 0; j <= i; j++) dS[r + j] = Pm[r + j] * (dS[r + j] - s) * scale;
          for (let j = i + 1; j < T; j++) dS[r + j] = 0;
        }
        mixPV(dQp, dS, Kp, T, hd, true, false);
        unpackAdd(dq, dQp, qOff, Hq * hd, T, hd);
        transpose(tr, dS, T);
        mixPV(dKp, tr, Qp, T, hd, false, true);
        transpose(tr, Pm, T);
        mixPV(dVp, tr, dOp, T, hd, false, true);
      }
      unpackAdd(dk, dKp, kvOff, Hkv * hd, T, hd);
      unpackAdd(dv, dVp, kvOff, Hkv * hd, T, hd);
    }
  }
}

/**
 * Writes the current token's keys and values into a head-major cache: for every sequence b with
 * active[b] = 1, head h's row goes to cache[b, h, pos[b], :].
 */
export function kvCacheWrite(
  kCache: Buf, // (B, Hkv, Tmax, hd)
  vCache: Buf, // (B, Hkv, Tmax, hd)
  k: Buf, // (B, Hkv, hd)
  v: Buf, // (B, Hkv, hd)
  pos: Int32Array, // (B)
  active: Uint8Array, // (B)
  B: number,
  Tmax: number,
  Hkv: number,
  hd: number,
): void {
  for (let b = 0; b < B; b++) {
    if (active[b] === 0) continue;
    for (let h = 0; h < Hkv; h++) {
      const src = (b * Hkv + h) * hd;
      const dst = ((b * Hkv + h) * Tmax + pos[b]) * hd;
      kCache.set(k.subarray(src, src + hd), dst);
      vCache.set(v.subarray(src, src + hd), dst);
    }
  }
}

/**
 * One decoding step against a head-major kv cache (B, Hkv, Tmax, hd): a head's keys are one
 * contiguous block, so the scores and the weighted sum stream through it. Sequence b's query
 * attends to cache rows [0, lengths[b]) (the current token's k/v must already be written). Rows
 * with active[b] = 0 are skipped and their `out` is left untouched.
 *
 * Both passes over the cache take four rows at a time: each query element (scores) or accumulator
 * element (weighted sum) is loaded once per four multiply-adds. Sums are float64.
 */
export function attentionDecode(
  out: Buf, // (B, Hq, hd)
  q: Buf, // (B, Hq, hd)
  kCache: Buf, // (B, Hkv, Tmax, hd)
  vCache: Buf, // (B, Hkv, Tmax, hd)
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
  const buf = getScratch(2 * hd + Tmax);
  const qs = buf.subarray(0, hd); // (hd) the query, pre-scaled
  const acc = buf.subarray(hd, 2 * hd); // (hd) weighted sum of values
  const scores = buf.subarray(2 * hd, 2 * hd + Tmax); // scores, then unnormalised weights
  for (let b = 0; b < B; b++) {
    if (active[b] === 0) continue;
    const L = lengths[b];
    if (L < 1 || L > Tmax) throw new Error(`attentionDecode: lengths[${b}]=${L} outside [1, ${Tmax}]`);
    for (let h = 0; h < Hq; h++) {
      const qo = (b * Hq + h) * hd;
      const row0 = (b * Hkv + ((h / group) | 0)) * Tmax * hd; // cache row t at row0 + t·hd
      for (let d = 0; d < hd; d++) qs[d] = q[qo + d] * scale;
      let max = -Infinity;
      let t = 0;
      for (; t + 4 <= L; t += 4) {
        const k0 = row0 + t * hd;
        const k1 = k0 + hd;
        const k2 = k1 + hd;
        const k3 = k2 + hd;
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        for (let d = 0; d < hd; d++) {
          const x = qs[d];
          s0 += x * kCache[k0 + d];
          s1 += x * kCache[k1 + d];
          s2 += x * kCache[k2 + d];
          s3 += x * kCache[k3 + d];
        }
        scores[t] = s0;
        scores[t + 1] = s1;
        scores[t + 2] = s2;
        scores[t + 3] = s3;
        max = Math.max(max, s0, s1, s2, s3);
      }
      for (; t < L; t++) {
        const k0 = row0 + t * hd;
        let s0 = 0;
        for (let d = 0; d < hd; d++) s0 += qs[d] * kCache[k0 + d];
        scores[t] = s0;
        if (s0 > max) max = s0;
      }
      let sum = 0;
      for (t = 0; t < L; t++) sum += scores[t] = exp(scores[t] - max);
      acc.fill(0);
      for (t = 0; t + 4 <= L; t += 4) {
        const v0 = row0 + t * hd;
        const v1 = v0 + hd;
        const v2 = v1 + hd;
        const v3 = v2 + hd;
        const p0 = scores[t];
        const p1 = scores[t + 1];
        const p2 = scores[t + 2];
        const p3 = scores[t + 3];
        for (let d = 0; d < hd; d++)
          acc[d] += p0 * vCache[v0 + d] + p1 * vCache[v1 + d] + p2 * vCache[v2 + d] + p3 * vCache[v3 + d];
      }
      for (; t < L; t++) {
        const v0 = row0 + t * hd;
        const p0 = scores[t];
        for (let d = 0; d < hd; d++) acc[d] += p0 * vCache[v0 + d];
      }
      const inv = 1 / sum;
      for (let d = 0; d < hd; d++) out[qo + d] = acc[d] * inv;
    }
  }
}
