/**
 * Causal scaled-dot-product attention (grouped-query) on the matmul kernels: the training path.
 * Same maths, layouts and saved probabilities (B, Hq, T, T) as attentionForward/attentionBackward in
 * attention.ts, which need no kernels and stay as the reference. Here each (sequence, head) is
 * copied into contiguous (T, hd) panels and every product is one `k.gemm`: scores = Q·Kᵀ and
 * out = P·V forward; dP = dO·Vᵀ, dV += Pᵀ·dO, dQ = dS·K, dK += dSᵀ·Q backward. On float32 heap
 * buffers these run on the WebAssembly SIMD kernels, several times faster than JS tiles.
 *
 * The gemms also fill the masked upper triangle (T is at most a few hundred here, so skipping it
 * would cost more in extra calls than it saves); the softmax and its backward zero it. Products of
 * this size stay on the calling thread, so results do not depend on the kernel thread count.
 * Scores are scaled inside the softmax, so the inputs are not rounded again.
 *
 * Memory: the caller passes `scratch` of attentionScratchSize(T, hd) floats from the same allocator
 * as the other buffers (the fast kernels need every operand on their heap).
 */
import type { Buf, Kernels } from "../kernels/types.js";
import { exp } from "./exp.js";
import { groupSize } from "./attention.js";

/** Floats per (T, hd) panel, rounded up to 16 so each panel starts 64-byte aligned. */
function panel(T: number, hd: number): number {
  return Math.ceil((T * hd) / 16) * 16;
}

/** Scratch floats attentionGemmForward / attentionGemmBackward need at sequence length T. */
export function attentionScratchSize(T: number, hd: number): number {
  return 7 * panel(T, hd) + T * T;
}

/** Scratch views: seven (T, hd) panels and one (T, T) block. */
function views(scratch: Buf, T: number, hd: number, where: string): Buf[] {
  const need = attentionScratchSize(T, hd);
  if (scratch.length < need)
    throw new Error(`${where}: scratch has ${scratch.length} floats, needs ${need} (T=${T}, hd=${hd})`);
  const P = panel(T, hd);
  const v: Buf[] = [];
  for (let i = 0; i < 7; i++) v.push(scratch.subarray(i * P, i * P + T * hd));
  v.push(scratch.subarray(7 * P, 7 * P + T * T));
  return v;
}

// The row copies are unrolled by 4: with hd = 32 that is ~1.7× faster in V8 than one element per
// iteration, and copying panels in and out is a large part of this op's non-gemm time.

/** T rows of hd floats: dst[dOff + t·dStride + i] = src[sOff + t·sStride + i]. */
function copyRows(
  dst: Buf,
  dOff: number,
  dStride: number,
  src: Buf,
  sOff: number,
  sStride: number,
  T: number,
  hd: number,
): void {
  const hd4 = hd & ~3;
  for (let t = 0; t < T; t++) {
    const d = dOff + t * dStride;
    const s = sOff + t * sStride;
    let i = 0;
    for (; i < hd4; i += 4) {
      dst[d + i] = src[s + i];
      dst[d + i + 1] = src[s + i + 1];
      dst[d + i + 2] = src[s + i + 2];
      dst[d + i + 3] = src[s + i + 3];
    }
    for (; i < hd; i++) dst[d + i] = src[s + i];
  }
}

/** As copyRows, but dst += src. */
function addRows(
  dst: Buf,
  dOff: number,
  dStride: number,
  src: Buf,
  sOff: number,
  sStride: number,
  T: number,
  hd: number,
): void {
  const hd4 = hd & ~3;
  for (let t = 0; t < T; t++) {
    const d = dOff + t * dStride;
    const s = sOff + t * sStride;
    let i = 0;
    for (; i < hd4; i += 4) {
      dst[d + i] += src[s + i];
      dst[d + i + 1] += src[s + i + 1];
      dst[d + i + 2] += src[s + i + 2];
      dst[d + i + 3] += src[s + i + 3];
    }
    for (; i < hd; i++) dst[d + i] += src[s + i];
  }
}

// Float64 scratch, grown on demand: a row of exponentials (so each probability is rounded once),
// and the (T, T) block used with the reference kernels (see `exactBlock`).
let row = new Float64Array(0);
let block = new Float64Array(0);

/**
 * With the TypeScript reference kernels (gradient checks, golden tests) scores and dP stay float64:
 * those kernels accumulate in float64 anyway, so rounding the (T, T) block to float32 would be the
 * one extra rounding of that path. The WebAssembly kernels need float32 heap operands.
 */
function exactBlock(k: Kernels, TT: number): Float64Array | null {
  if (k.name !== "ts") return null;
  if (block.length < TT) block = new Float64Array(TT);
  return block.subarray(0, TT);
}

// The softmax loops take two or four entries per iteration, with two partial max/sums (~30%
// faster in V8 than one entry per iteration: the rows are short and the loop overhead large).

/** In place on S (T, T): row i ← softmax(scale·S[i, 0..i]), zero for j > i. */
function causalSoftmax(S: Buf, T: number, scale: number): void {
  if (row.length < T) row = new Float64Array(T);
  const e = row;
  for (let i = 0; i < T; i++) {
    const r = i * T;
    const L = i + 1; // entries j ≤ i
    let m0 = -Infinity;
    let m1 = -Infinity;
    let j = 0;
    for (; j + 2 <= L; j += 2) {
      const a = S[r + j];
      const b = S[r + j + 1];
      if (a > m0) m0 = a;
      if (b > m1) m1 = b;
    }
    if (j < L && S[r + j] > m0) m0 = S[r + j];
    const max = m0 > m1 ? m0 : m1;
    let s0 = 0;
    let s1 = 0;
    for (j = 0; j + 2 <= L; j += 2) {
      s0 += e[j] = exp((S[r + j] - max) * scale);
      s1 += e[j + 1] = exp((S[r + j + 1] - max) * scale);
    }
    if (j < L) s0 += e[j] = exp((S[r + j] - max) * scale);
    const inv = 1 / (s0 + s1);
    const L4 = L & ~3;
    for (j = 0; j < L4; j += 4) {
      S[r + j] = e[j] * inv;
      S[r + j + 1] = e[j + 1] * inv;
      S[r + j + 2] = e[j + 2] * inv;
      S[r + j + 3] = e[j + 3] * inv;
    }
    for (; j < L; j++) S[r + j] = e[j] * inv;
    for (j = L; j < T; j++) S[r + j] = 0;
  }
}

/** In place on dP (T, T): dS = scale·P ⊙ (dP − rowsum(P ⊙ dP)), zero for j > i. */
function causalSoftmaxBackward(dP: Buf, P: Buf, T: number, scale: number): void {
  for (let i = 0; i < T; i++) {
    const r = i * T;
    const L = i + 1;
    let s0 = 0;
    let s1 = 0;
    let j = 0;
    for (; j + 2 <= L; j += 2) {
      s0 += P[r + j] * dP[r + j];
      s1 += P[r + j + 1] * dP[r + j + 1];
    }
    if (j < L) s0 += P[r + j] * dP[r + j];
    const s = s0 + s1;
    for (j = 0; j + 2 <= L; j += 2) {
      dP[r + j] = scale * P[r + j] * (dP[r + j] - s);
      dP[r + j + 1] = scale * P[r + j + 1] * (dP[r + j + 1] - s);
    }
    if (j < L) dP[r + j] = scale * P[r + j] * (dP[r + j] - s);
    for (j = L; j < T; j++) dP[r + j] = 0;
  }
}

export function attentionGemmForward(
  k: Kernels,
  out: Buf, // (B, T, Hq, hd)
  att: Buf, // (B, Hq, T, T) saved probabilities
  q: Buf, // (B, T, Hq, hd)
  key: Buf, // (B, T, Hkv, hd)
  value: Buf, // (B, T, Hkv, hd)
  scratch: Buf, // attentionScratchSize(T, hd)
  B: number,
  T: number,
  Hq: number,
  Hkv: number,
  hd: number,
): void {
  const group = groupSize(Hq, Hkv, "attentionGemmForward");
  const [Qp, Kp, Vp, Op] = views(scratch, T, hd, "attentionGemmForward");
  const scale = 1 / Math.sqrt(hd);
  const TT = T * T;
  const exact = exactBlock(k, TT);
  for (let b = 0; b < B; b++) {
    for (let kh = 0; kh < Hkv; kh++) {
      const kvOff = (b * T * Hkv + kh) * hd;
      copyRows(Kp, 0, hd, key, kvOff, Hkv * hd, T, hd);
      copyRows(Vp, 0, hd, value, kvOff, Hkv * hd, T, hd);
      for (let h = kh * group; h < (kh + 1) * group; h++) {
        const qOff = (b * T * Hq + h) * hd;
        const P = att.subarray((b * Hq + h) * TT, (b * Hq + h + 1) * TT); // (T, T)
        const S = exact ?? P; // scores, then probabilities in place
        copyRows(Qp, 0, hd, q, qOff, Hq * hd, T, hd);
        k.gemm(false, true, T, T, hd, Qp, Kp, S, false);
        causalSoftmax(S, T, scale);
        if (S !== P) P.set(S);
        k.gemm(false, false, T, hd, T, S, Vp, Op, false);
        copyRows(out, qOff, Hq * hd, Op, 0, hd, T, hd);
      }
    }
  }
}

/**
 * dv += Pᵀ·dout;  dP = dout·vᵀ;  dS = P ⊙ (dP − rowsum(P ⊙ dP)) (softmax backward);
 * dq += scale·dS·k;  dk += scale·dSᵀ·q. A kv head's gradients are summed over its query heads in
 * scratch before being added to the buffers.
 */
export function attentionGemmBackward(
  k: Kernels,
  dq: Buf, // (B, T, Hq, hd) +=
  dk: Buf, // (B, T, Hkv, hd) +=
  dv: Buf, // (B, T, Hkv, hd) +=
  dout: Buf, // (B, T, Hq, hd)
  att: Buf, // (B, Hq, T, T)
  q: Buf, // (B, T, Hq, hd)
  key: Buf, // (B, T, Hkv, hd)
  value: Buf, // (B, T, Hkv, hd)
  scratch: Buf, // attentionScratchSize(T, hd)
  B: number,
  T: number,
  Hq: number,
  Hkv: number,
  hd: number,
): void {
  const group = groupSize(Hq, Hkv, "attentionGemmBackward");
  const [Qp, Kp, Vp, dOp, dQp, dKp, dVp, dSf] = views(scratch, T, hd, "attentionGemmBackward");
  const scale = 1 / Math.sqrt(hd);
  const TT = T * T;
  const dS = exactBlock(k, TT) ?? dSf; // (T, T) dP, then dScores
  for (let b = 0; b < B; b++) {
    for (let kh = 0; kh < Hkv; kh++) {
      const kvOff = (b * T * Hkv + kh) * hd;
      copyRows(Kp, 0, hd, key, kvOff, Hkv * hd, T, hd);
      copyRows(Vp, 0, hd, value, kvOff, Hkv * hd, T, hd);
      dKp.fill(0);
      dVp.fill(0);
      for (let h = kh * group; h < (kh + 1) * group; h++) {
        const qOff = (b * T * Hq + h) * hd;
        const P = att.subarray((b * Hq + h) * TT, (b * Hq + h + 1) * TT); // (T, T)
        copyRows(Qp, 0, hd, q, qOff, Hq * hd, T, hd);
        copyRows(dOp, 0, hd, dout, qOff, Hq * hd, T, hd);
        k.gemm(false, true, T, T, hd, dOp, Vp, dS, false); // dP
        causalSoftmaxBackward(dS, P, T, scale);
        k.gemm(true, false, T, hd, T, P, dOp, dVp, true);
        k.gemm(false, false, T, hd, T, dS, Kp, dQp, false);
        addRows(dq, qOff, Hq * hd, dQp, 0, hd, T, hd);
        k.gemm(true, false, T, hd, T, dS, Qp, dKp, true);
      }
      addRows(dk, kvOff, Hkv * hd, dKp, 0, hd, T, hd);
      addRows(dv, kvOff, Hkv * hd, dVp, 0, hd, T, hd);
    }
  }
}
