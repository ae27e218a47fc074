/**
 * The op table an Engine carries: every operation the model, the decoder and the optimizer run in
 * their hot loops, with one signature for every kernel tier. `jsOps` binds the TypeScript ops of
 * this folder (whose products go through the given kernels: the reference or the WebAssembly
 * gemm); the native tier (kernels/native.ts) replaces each entry with a call into the C addon and
 * falls back to these for arguments it cannot take (float64, arrays off its heap).
 */
import type { Buf, Kernels } from "../kernels/types.js";
import { adamwUpdate, scaleInPlace, sumOfSquares } from "../adamw.js";
import { geluForward, geluBackwardFromOutput, swigluForward, swigluBackward } from "./activations.js";
import { attentionDecode, kvCacheWrite } from "./attention.js";
import { attentionGemmForward, attentionGemmBackward } from "./attention-gemm.js";
import { embeddingForward, embeddingBackward, addPositionForward, addPositionBackward } from "./embedding.js";
import { layerNormForward, layerNormBackward } from "./layernorm.js";
import { linearForward, linearBackward } from "./linear.js";
import { accumulate, addInto } from "./residual.js";
import { rmsNormForward, rmsNormBackward } from "./rmsnorm.js";
import { ropeApply } from "./rope.js";
import { softmaxCrossEntropy, type sampleRowJs } from "./softmax.js";

export interface Ops {
  /** The kernel tier behind these ops: "ts", "wasm" or "native". */
  readonly name: string;
  readonly kernels: Kernels;
  embeddingForward: typeof embeddingForward;
  embeddingBackward: typeof embeddingBackward;
  addPositionForward: typeof addPositionForward;
  addPositionBackward: typeof addPositionBackward;
  layerNormForward: typeof layerNormForward;
  layerNormBackward: typeof layerNormBackward;
  rmsNormForward: typeof rmsNormForward;
  rmsNormBackward: typeof rmsNormBackward;
  /** linearForward without the kernels argument. */
  linearForward(out: Buf, inp: Buf, weight: Buf, bias: Buf | null, N: number, IC: number, OC: number): void;
  linearBackward(
    dinp: Buf | null,
    dweight: Buf,
    dbias: Buf | null,
    dout: Buf,
    inp: Buf,
    weight: Buf,
    N: number,
    IC: number,
    OC: number,
  ): void;
  ropeApply: typeof ropeApply;
  /** Causal attention forward (attentionGemmForward without the kernels argument). */
  attentionForward(
    out: Buf,
    att: Buf,
    q: Buf,
    k: Buf,
    v: Buf,
    scratch: Buf,
    B: number,
    T: number,
    Hq: number,
    Hkv: number,
    hd: number,
  ): void;
  attentionBackward(
    dq: Buf,
    dk: Buf,
    dv: Buf,
    dout: Buf,
    att: Buf,
    q: Buf,
    k: Buf,
    v: Buf,
    scratch: Buf,
    B: number,
    T: number,
    Hq: number,
    Hkv: number,
    hd: number,
  ): void;
  attentionDecode: typeof attentionDecode;
  kvCacheWrite: typeof kvCacheWrite;
  geluForward: typeof geluForward;
  geluBackwardFromOutput: typeof geluBackwardFromOutput;
  swigluForward: typeof swigluForward;
  swigluBackward: typeof swigluBackward;
  addInto: typeof addInto;
  accumulate: typeof accumulate;
  /** rows × cols floats: dst[dOff + r·dStride + c] = src[sOff + r·sStride + c]. */
  copyRows(
    dst: Buf,
    dOff: number,
    dStride: number,
    src: Buf,
    sOff: number,
    sStride: number,
    rows: number,
    cols: number,
  ): void;
  /** x[0..n) = 0. */
  zero(x: Buf, n: number): void;
  softmaxCrossEntropy: typeof softmaxCrossEntropy;
  adamwUpdate: typeof adamwUpdate;
  sumOfSquares: typeof sumOfSquares;
  scaleInPlace: typeof scaleInPlace;
  /**
   * Samples from softmax(logits[off..off+V) · invTemp) with the uniform draw u ∈ [0, 1) as
   * Rng.categorical does; returns the token and writes its log-prob to logp[0]. Only the native
   * tier has it (the others keep generate.ts's float64 path).
   */
  sampleRow?: typeof sampleRowJs;
}

function copyRows(
  dst: Buf,
  dOff: number,
  dStride: number,
  src: Buf,
  sOff: number,
  sStride: number,
  rows: number,
  cols: number,
): void {
  for (let r = 0; r < rows; r++) {
    const s = sOff + r * sStride;
    dst.set(src.subarray(s, s + cols), dOff + r * dStride);
  }
}

/** The TypeScript ops, their products on `k` (the reference or the WebAssembly kernels). */
export function jsOps(k: Kernels): Ops {
  return {
    name: k.name,
    kernels: k,
    embeddingForward,
    embeddingBackward,
    addPositionForward,
    addPositionBackward,
    layerNormForward,
    layerNormBackward,
    rmsNormForward,
    rmsNormBackward,
    linearForward: (out, inp, weight, bias, N, IC, OC) => linearForward(k, out, inp, weight, bias, N, IC, OC),
    linearBackward: (dinp, dweight, dbias, dout, inp, weight, N, IC, OC) =>
      linearBackward(k, dinp, dweight, dbias, dout, inp, weight, N, IC, OC),
    ropeApply,
    attentionForward: (out, att, q, key, v, scratch, B, T, Hq, Hkv, hd) =>
      attentionGemmForward(k, out, att, q, key, v, scratch, B, T, Hq, Hkv, hd),
    attentionBackward: (dq, dk, dv, dout, att, q, key, v, scratch, B, T, Hq, Hkv, hd) =>
      attentionGemmBackward(k, dq, dk, dv, dout, att, q, key, v, scratch, B, T, Hq, Hkv, hd),
    attentionDecode,
    kvCacheWrite,
    geluForward,
    geluBackwardFromOutput,
    swigluForward,
    swigluBackward,
    addInto,
    accumulate,
    copyRows,
    zero: (x, n) => x.fill(0, 0, n),
    softmaxCrossEntropy,
    adamwUpdate,
    sumOfSquares,
    scaleInPlace,
  };
}
