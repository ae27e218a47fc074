/**
 * The native kernel tier: the C addon in native/ (built at install by scripts/build-native.mjs when
 * a compiler is present), one object per instruction set (AVX-512, AVX2 + FMA) chosen at run time.
 * It works on the same shared heap as the WebAssembly tier: tensors are passed as byte offsets,
 * written with the scalar arguments into a small block of doubles on the heap, so a call is a few
 * stores and one N-API call. The addon runs every op on its own thread pool (native/pool.c).
 *
 * Arguments the addon cannot take (float64 arrays, arrays off the heap) go to the TypeScript ops,
 * as with the WebAssembly gemm. Integer inputs (ids, positions, lengths) are copied to heap slots.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type { Heap } from "./heap.js";
import { gemmReference } from "./ts.js";
import type { Buf, Kernels } from "./types.js";
import { jsOps, type Ops } from "../ops/table.js";
import { groupSize } from "../ops/attention.js";
import { sampleRowJs } from "../ops/softmax.js";

/** Op codes, in the order of native/kernels.h. */
const OP = {
  GEMM: 0,
  BIAS_GRAD: 1,
  LAYERNORM_FWD: 2,
  LAYERNORM_BWD: 3,
  RMSNORM_FWD: 4,
  RMSNORM_BWD: 5,
  GELU_FWD: 6,
  GELU_BWD: 7,
  SWIGLU_FWD: 8,
  SWIGLU_BWD: 9,
  ADD: 10,
  ACCUMULATE: 11,
  EMBED_FWD: 12,
  EMBED_BWD: 13,
  ROPE: 14,
  ATTN_FWD: 15,
  ATTN_BWD: 16,
  ATTN_DECODE: 17,
  KV_WRITE: 18,
  COPY_ROWS: 19,
  ZERO: 20,
  CROSS_ENTROPY: 21,
  SAMPLE: 22,
} as const;
const OP_COUNT = 23;

export type NativeIsa = "avx512" | "avx2";

/** The addon's functions (native/addon.c). */
interface NativeAddon {
  cpu(): { avx512: boolean; avx2: boolean };
  create(heapView: Uint8Array, argsOffset: number, isa: NativeIsa, threads: number): object;
  run(ctx: object, op: number): void;
  adamw(
    ctx: object,
    p: Float32Array,
    g: Float32Array,
    m: Float32Array,
    v: Float32Array,
    mask: Uint8Array | null,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    decay: number,
    stepSize: number,
    bc2Sqrt: number,
  ): void;
  sumsq(ctx: object, x: Float32Array): number;
  scale(ctx: object, x: Float32Array, s: number): void;
  fmaPeak(isa: NativeIsa, threads: number, ms: number): number;
  opCount: number;
}

// Compiled files sit in dist/src/engine/kernels/, four levels below the package root.
const ROOT = new URL("../../../../", import.meta.url);
export const NATIVE_ADDON_PATH = fileURLToPath(new URL("native/build/Release/sat_native.node", ROOT));
/** Written by scripts/build-native.mjs: why the addon was not built, when it was not. */
const BUILD_STATUS_PATH = fileURLToPath(new URL("native/build/status.json", ROOT));

export type NativeStatus =
  | { ok: true; isa: NativeIsa; cpu: { avx512: boolean; avx2: boolean }; path: string }
  | { ok: false; reason: string };

let loaded: { addon: NativeAddon | null; status: NativeStatus } | null = null;

function buildReason(): string {
  try {
    const s = JSON.parse(readFileSync(BUILD_STATUS_PATH, "utf8")) as { reason?: string };
    if (s.reason) return `not built: ${s.reason}`;
  } catch {
    // no status file: the build step never ran
  }
  return "not built (run `npm run build:native`; needs a C compiler, make and python3)";
}

/**
 * Loads the addon once and picks the instruction set: $SAT_NATIVE_ISA (avx512 or avx2) when set,
 * else AVX-512 when the CPU has it, else AVX2 + FMA. Never throws; says why when unavailable.
 */
export function nativeStatus(): NativeStatus {
  if (loaded) return loaded.status;
  const fail = (reason: string): NativeStatus => {
    loaded = { addon: null, status: { ok: false, reason } };
    return loaded.status;
  };
  if (process.arch !== "x64")
    return fail(`the native kernels are built for x64 only (this is ${process.arch})`);
  if (!existsSync(NATIVE_ADDON_PATH)) return fail(buildReason());
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(NATIVE_ADDON_PATH) as NativeAddon;
  } catch (err) {
    return fail(`cannot load ${NATIVE_ADDON_PATH}: ${(err as Error).message.split("\n")[0]}`);
  }
  if (addon.opCount !== OP_COUNT)
    return fail(
      `the built addon has ${addon.opCount} ops, this code expects ${OP_COUNT}: run \`npm run build:native\``,
    );
  const cpu = addon.cpu();
  const wanted = process.env.SAT_NATIVE_ISA?.trim();
  let isa: NativeIsa;
  if (wanted) {
    if (wanted !== "avx512" && wanted !== "avx2")
      return fail(`SAT_NATIVE_ISA="${wanted}" is not one of avx512, avx2`);
    if (!cpu[wanted]) return fail(`SAT_NATIVE_ISA=${wanted}, but this CPU lacks it`);
    isa = wanted;
  } else if (cpu.avx512) isa = "avx512";
  else if (cpu.avx2) isa = "avx2";
  else return fail("this CPU has neither AVX-512 nor AVX2 with FMA");
  loaded = { addon, status: { ok: true, isa, cpu, path: NATIVE_ADDON_PATH } };
  return loaded.status;
}

/** The instruction sets this CPU can run with the built addon (empty without it). */
export function nativeIsas(): NativeIsa[] {
  const s = nativeStatus();
  if (!s.ok) return [];
  return (["avx512", "avx2"] as const).filter((isa) => s.cpu[isa]);
}

function addonOrThrow(isa?: NativeIsa): { addon: NativeAddon; isa: NativeIsa } {
  const s = nativeStatus();
  if (!s.ok) throw new Error(`native kernels unavailable: ${s.reason}`);
  if (isa !== undefined && !s.cpu[isa]) throw new Error(`native kernels: this CPU cannot run ${isa}`);
  return { addon: loaded!.addon!, isa: isa ?? s.isa };
}

/**
 * GFLOP/s of independent FMA chains on `threads` threads at once (the machine's FMA peak for the
 * chosen instruction set), or null without the addon.
 */
export function nativeFmaPeak(threads: number, ms = 200): { isa: NativeIsa; gflops: number } | null {
  const s = nativeStatus();
  if (!s.ok) return null;
  return { isa: s.isa, gflops: loaded!.addon!.fmaPeak(s.isa, threads, ms) };
}

const ARG_SLOTS = 16;

const isCount = (x: number): boolean => Number.isInteger(x) && x >= 0;

export class NativeKernels implements Kernels {
  readonly name = "native";
  readonly isa: NativeIsa;
  readonly ops: Ops;
  private readonly addon: NativeAddon;
  private readonly ctx: object;
  private readonly args: Float64Array;
  private readonly intSlots: Int32Array[] = [];
  private readonly tables = new WeakMap<Float64Array, Float32Array>();

  /** `isa`: an instruction set other than the default (tests run both objects). */
  constructor(
    private readonly heap: Heap,
    readonly threads: number,
    isa?: NativeIsa,
  ) {
    const chosen = addonOrThrow(isa);
    const addon = chosen.addon;
    isa = chosen.isa;
    this.addon = addon;
    this.isa = isa;
    const block = heap.f32(2 * ARG_SLOTS);
    this.args = new Float64Array(block.buffer, block.byteOffset, ARG_SLOTS);
    this.ctx = addon.create(new Uint8Array(heap.memory.buffer), block.byteOffset, isa, threads);
    this.ops = this.buildOps(jsOps(this));
  }

  gemm(
    transA: boolean,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    A: Buf,
    B: Buf,
    C: Buf,
    accumulate: boolean,
  ): void {
    if (!this.on(A) || !this.on(B) || !this.on(C)) {
      gemmReference(transA, transB, M, N, K, A, B, C, accumulate);
      return;
    }
    if (!(isCount(M) && isCount(N) && isCount(K)))
      throw new Error(`gemm: M=${M} N=${N} K=${K} must be non-negative integers`);
    this.need(A, M * K, "gemm A");
    this.need(B, K * N, "gemm B");
    this.need(C, M * N, "gemm C");
    this.run(OP.GEMM, +transA, +transB, M, N, K, A.byteOffset, B.byteOffset, C.byteOffset, +accumulate, 0);
  }

  /** True when the addon can take x in place: a float32 array on this engine's heap (null: no tensor). */
  private on(x: Buf | null): x is Float32Array {
    return x === null || (x instanceof Float32Array && this.heap.owns(x));
  }

  private need(x: Buf, n: number, what: string): void {
    if (x.length < n) throw new Error(`${what} has ${x.length} elements, needs ${n}`);
  }

  /**
   * Writes the arguments into the heap block and runs op. Fixed parameters rather than a rest
   * array: no allocation per call (decoding makes thousands of calls per second).
   */
  private run(
    op: number,
    x0 = 0,
    x1 = 0,
    x2 = 0,
    x3 = 0,
    x4 = 0,
    x5 = 0,
    x6 = 0,
    x7 = 0,
    x8 = 0,
    x9 = 0,
    x10 = 0,
    x11 = 0,
    x12 = 0,
  ): void {
    const a = this.args;
    a[0] = x0;
    a[1] = x1;
    a[2] = x2;
    a[3] = x3;
    a[4] = x4;
    a[5] = x5;
    a[6] = x6;
    a[7] = x7;
    a[8] = x8;
    a[9] = x9;
    a[10] = x10;
    a[11] = x11;
    a[12] = x12;
    this.addon.run(this.ctx, op);
  }

  /** Heap copy of an int32/uint8 input in slot `slot` (byte offset). */
  private ints(slot: number, src: ArrayLike<number>, n: number): number {
    let s = this.intSlots[slot];
    if (s === undefined || s.length < n) {
      if (s !== undefined) this.heap.free(s);
      s = this.heap.i32(Math.max(n, 64, s ? 2 * s.length : 0));
      this.intSlots[slot] = s;
    }
    for (let i = 0; i < n; i++) s[i] = src[i];
    return s.byteOffset;
  }

  /** A float32 heap copy of a RoPE table, made once per table. */
  private table(t: Float64Array): number {
    let c = this.tables.get(t);
    if (c === undefined) {
      c = this.heap.f32(t.length);
      c.set(t);
      this.tables.set(t, c);
    }
    return c.byteOffset;
  }

  private buildOps(js: Ops): Ops {
    const off = (x: Buf | null): number => (x === null ? 0 : x.byteOffset);
    // Fixed arity (no rest array): true when every given tensor can be passed in place.
    const on = (
      a: Buf | null,
      b: Buf | null = null,
      c: Buf | null = null,
      d: Buf | null = null,
      e: Buf | null = null,
      f: Buf | null = null,
      g: Buf | null = null,
      h: Buf | null = null,
    ): boolean =>
      this.on(a) &&
      this.on(b) &&
      this.on(c) &&
      this.on(d) &&
      this.on(e) &&
      this.on(f) &&
      this.on(g) &&
      this.on(h);
    const ctx = this.ctx;
    const addon = this.addon;
    return {
      ...js,
      name: "native",
      kernels: this,
      embeddingForward: (out, ids, wte, N, C) => {
        if (!on(out, wte)) return js.embeddingForward(out, ids, wte, N, C);
        this.need(out, N * C, "embeddingForward out");
        this.run(OP.EMBED_FWD, out.byteOffset, this.ints(0, ids, N), wte.byteOffset, N, C, 0);
      },
      addPositionForward: (x, wpe, pos, N, C) => {
        if (!on(x, wpe)) return js.addPositionForward(x, wpe, pos, N, C);
        this.need(x, N * C, "addPositionForward x");
        this.run(OP.EMBED_FWD, x.byteOffset, this.ints(0, pos, N), wpe.byteOffset, N, C, 1);
      },
      embeddingBackward: (dwte, dout, ids, N, C) => {
        if (!on(dwte, dout)) return js.embeddingBackward(dwte, dout, ids, N, C);
        this.need(dout, N * C, "embeddingBackward dout");
        this.run(OP.EMBED_BWD, dwte.byteOffset, dout.byteOffset, this.ints(0, ids, N), N, C);
      },
      addPositionBackward: (dwpe, dx, pos, N, C) => {
        if (!on(dwpe, dx)) return js.addPositionBackward(dwpe, dx, pos, N, C);
        this.need(dx, N * C, "addPositionBackward dx");
        this.run(OP.EMBED_BWD, dwpe.byteOffset, dx.byteOffset, this.ints(0, pos, N), N, C);
      },
      layerNormForward: (out, mean, rstd, inp, weight, bias, N, C, eps) => {
        if (!on(out, mean, rstd, inp, weight, bias))
          return js.layerNormForward(out, mean, rstd, inp, weight, bias, N, C, eps);
        this.need(out, N * C, "layerNormForward out");
        this.need(inp, N * C, "layerNormForward inp");
        this.run(
          OP.LAYERNORM_FWD,
          off(out),
          off(mean),
          off(rstd),
          off(inp),
          off(weight),
          off(bias),
          N,
          C,
          eps,
        );
      },
      layerNormBackward: (dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C) => {
        if (!on(dinp, dweight, dbias, dout, inp, weight, mean, rstd))
          return js.layerNormBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
        this.need(dinp, N * C, "layerNormBackward dinp");
        this.run(
          OP.LAYERNORM_BWD,
          off(dinp),
          off(dweight),
          off(dbias),
          off(dout),
          off(inp),
          off(weight),
          off(mean),
          off(rstd),
          N,
          C,
        );
      },
      rmsNormForward: (out, rstd, inp, weight, N, C, eps) => {
        if (!on(out, rstd, inp, weight)) return js.rmsNormForward(out, rstd, inp, weight, N, C, eps);
        this.need(out, N * C, "rmsNormForward out");
        this.run(OP.RMSNORM_FWD, off(out), off(rstd), off(inp), off(weight), N, C, eps);
      },
      rmsNormBackward: (dinp, dweight, dout, inp, weight, rstd, N, C) => {
        if (!on(dinp, dweight, dout, inp, weight, rstd))
          return js.rmsNormBackward(dinp, dweight, dout, inp, weight, rstd, N, C);
        this.need(dinp, N * C, "rmsNormBackward dinp");
        this.run(OP.RMSNORM_BWD, off(dinp), off(dweight), off(dout), off(inp), off(weight), off(rstd), N, C);
      },
      linearForward: (out, inp, weight, bias, N, IC, OC) => {
        if (!on(out, inp, weight, bias)) return js.linearForward(out, inp, weight, bias, N, IC, OC);
        this.need(out, N * OC, "linearForward out");
        this.need(inp, N * IC, "linearForward inp");
        this.need(weight, OC * IC, "linearForward weight");
        if (bias !== null) this.need(bias, OC, "linearForward bias");
        this.run(OP.GEMM, 0, 1, N, OC, IC, off(inp), off(weight), off(out), 0, off(bias));
      },
      linearBackward: (dinp, dweight, dbias, dout, inp, weight, N, IC, OC) => {
        if (!on(dinp, dweight, dbias, dout, inp, weight))
          return js.linearBackward(dinp, dweight, dbias, dout, inp, weight, N, IC, OC);
        this.need(dout, N * OC, "linearBackward dout");
        this.need(inp, N * IC, "linearBackward inp");
        this.need(dweight, OC * IC, "linearBackward dweight");
        if (dinp !== null) {
          this.need(dinp, N * IC, "linearBackward dinp");
          this.run(OP.GEMM, 0, 0, N, IC, OC, off(dout), off(weight), off(dinp), 1, 0);
        }
        this.run(OP.GEMM, 1, 0, OC, IC, N, off(dout), off(inp), off(dweight), 1, 0);
        if (dbias !== null) this.run(OP.BIAS_GRAD, off(dbias), off(dout), N, OC);
      },
      ropeApply: (x, pos, cos, sin, N, H, hd, inverse) => {
        if (!on(x)) return js.ropeApply(x, pos, cos, sin, N, H, hd, inverse);
        this.need(x, N * H * hd, "ropeApply x");
        this.run(
          OP.ROPE,
          x.byteOffset,
          this.ints(0, pos, N),
          this.table(cos),
          this.table(sin),
          N,
          H,
          hd,
          +inverse,
        );
      },
      attentionForward: (out, att, q, k, v, scratch, B, T, Hq, Hkv, hd) => {
        if (!on(out, att, q, k, v)) return js.attentionForward(out, att, q, k, v, scratch, B, T, Hq, Hkv, hd);
        groupSize(Hq, Hkv, "attentionForward");
        this.need(att, B * Hq * T * T, "attentionForward att");
        this.need(out, B * T * Hq * hd, "attentionForward out");
        this.run(OP.ATTN_FWD, off(out), off(att), off(q), off(k), off(v), B, T, Hq, Hkv, hd);
      },
      attentionBackward: (dq, dk, dv, dout, att, q, k, v, scratch, B, T, Hq, Hkv, hd) => {
        if (!on(dq, dk, dv, dout, att, q, k, v))
          return js.attentionBackward(dq, dk, dv, dout, att, q, k, v, scratch, B, T, Hq, Hkv, hd);
        groupSize(Hq, Hkv, "attentionBackward");
        this.need(dq, B * T * Hq * hd, "attentionBackward dq");
        this.need(dk, B * T * Hkv * hd, "attentionBackward dk");
        this.run(
          OP.ATTN_BWD,
          off(dq),
          off(dk),
          off(dv),
          off(dout),
          off(att),
          off(q),
          off(k),
          off(v),
          B,
          T,
          Hq,
          Hkv,
          hd,
        );
      },
      attentionDecode: (out, q, kCache, vCache, lengths, active, B, Tmax, Hq, Hkv, hd) => {
        if (!on(out, q, kCache, vCache))
          return js.attentionDecode(out, q, kCache, vCache, lengths, active, B, Tmax, Hq, Hkv, hd);
        groupSize(Hq, Hkv, "attentionDecode");
        this.need(kCache, B * Hkv * Tmax * hd, "attentionDecode kCache");
        for (let b = 0; b < B; b++) {
          const L = lengths[b];
          if (active[b] !== 0 && (L < 1 || L > Tmax))
            throw new Error(`attentionDecode: lengths[${b}]=${L} outside [1, ${Tmax}]`);
        }
        this.run(
          OP.ATTN_DECODE,
          off(out),
          off(q),
          off(kCache),
          off(vCache),
          this.ints(0, lengths, B),
          this.ints(1, active, B),
          B,
          Tmax,
          Hq,
          Hkv,
          hd,
        );
      },
      kvCacheWrite: (kCache, vCache, k, v, pos, active, B, Tmax, Hkv, hd) => {
        if (!on(kCache, vCache, k, v))
          return js.kvCacheWrite(kCache, vCache, k, v, pos, active, B, Tmax, Hkv, hd);
        this.need(kCache, B * Hkv * Tmax * hd, "kvCacheWrite kCache");
        for (let b = 0; b < B; b++)
          if (active[b] !== 0 && !(pos[b] >= 0 && pos[b] < Tmax))
            throw new Error(`kvCacheWrite: pos[${b}]=${pos[b]} outside [0, ${Tmax})`);
        this.run(
          OP.KV_WRITE,
          off(kCache),
          off(vCache),
          off(k),
          off(v),
          this.ints(0, pos, B),
          this.ints(1, active, B),
          B,
          Tmax,
          Hkv,
          hd,
        );
      },
      geluForward: (out, inp, n) => {
        if (!on(out, inp)) return js.geluForward(out, inp, n);
        this.need(out, n, "geluForward out");
        this.run(OP.GELU_FWD, out.byteOffset, inp.byteOffset, n);
      },
      geluBackwardFromOutput: (dinp, inp, out, dout, n) => {
        if (!on(dinp, inp, out, dout)) return js.geluBackwardFromOutput(dinp, inp, out, dout, n);
        this.need(dinp, n, "geluBackwardFromOutput dinp");
        this.run(OP.GELU_BWD, dinp.byteOffset, inp.byteOffset, out.byteOffset, dout.byteOffset, n);
      },
      swigluForward: (out, gate, up, n) => {
        if (!on(out, gate, up)) return js.swigluForward(out, gate, up, n);
        this.need(out, n, "swigluForward out");
        this.run(OP.SWIGLU_FWD, out.byteOffset, gate.byteOffset, up.byteOffset, n);
      },
      swigluBackward: (dgate, dup, dout, gate, up, n) => {
        if (!on(dgate, dup, dout, gate, up)) return js.swigluBackward(dgate, dup, dout, gate, up, n);
        this.need(dgate, n, "swigluBackward dgate");
        this.run(
          OP.SWIGLU_BWD,
          dgate.byteOffset,
          dup.byteOffset,
          dout.byteOffset,
          gate.byteOffset,
          up.byteOffset,
          n,
        );
      },
      addInto: (out, a, b, n) => {
        if (!on(out, a, b)) return js.addInto(out, a, b, n);
        this.need(out, n, "addInto out");
        this.run(OP.ADD, out.byteOffset, a.byteOffset, b.byteOffset, n);
      },
      accumulate: (dst, src, n) => {
        if (!on(dst, src)) return js.accumulate(dst, src, n);
        this.need(dst, n, "accumulate dst");
        this.run(OP.ACCUMULATE, dst.byteOffset, src.byteOffset, n);
      },
      copyRows: (dst, dOff, dStride, src, sOff, sStride, rows, cols) => {
        if (!on(dst, src)) return js.copyRows(dst, dOff, dStride, src, sOff, sStride, rows, cols);
        if (rows <= 0 || cols <= 0) return;
        this.need(dst, dOff + (rows - 1) * dStride + cols, "copyRows dst");
        this.need(src, sOff + (rows - 1) * sStride + cols, "copyRows src");
        this.run(
          OP.COPY_ROWS,
          dst.byteOffset + 4 * dOff,
          dStride,
          src.byteOffset + 4 * sOff,
          sStride,
          rows,
          cols,
          0,
        );
      },
      zero: (x, n) => {
        if (!on(x)) return js.zero(x, n);
        this.need(x, n, "zero x");
        this.run(OP.ZERO, x.byteOffset, n);
      },
      softmaxCrossEntropy: (losses, dlogits, logits, targets, N, V, dscale) => {
        if (!on(losses, dlogits, logits))
          return js.softmaxCrossEntropy(losses, dlogits, logits, targets, N, V, dscale);
        this.need(logits, N * V, "softmaxCrossEntropy logits");
        this.need(dlogits, N * V, "softmaxCrossEntropy dlogits");
        this.need(losses, N, "softmaxCrossEntropy losses");
        for (let n = 0; n < N; n++)
          if (!(targets[n] < V))
            throw new Error(`softmaxCrossEntropy: target ${targets[n]} at row ${n} ≥ V=${V}`);
        this.run(
          OP.CROSS_ENTROPY,
          off(losses),
          off(dlogits),
          off(logits),
          this.ints(0, targets, N),
          N,
          V,
          dscale,
          0,
        );
      },
      adamwUpdate: (p, g, m, v, mask, beta1, beta2, eps, decay, stepSize, bc2Sqrt) => {
        if (!(
          p instanceof Float32Array &&
          g instanceof Float32Array &&
          m instanceof Float32Array &&
          v instanceof Float32Array
        ))
          return js.adamwUpdate(p, g, m, v, mask, beta1, beta2, eps, decay, stepSize, bc2Sqrt);
        addon.adamw(ctx, p, g, m, v, mask ?? null, 0, beta1, beta2, eps, decay, stepSize, bc2Sqrt);
      },
      sumOfSquares: (x) => (x instanceof Float32Array ? addon.sumsq(ctx, x) : js.sumOfSquares(x)),
      scaleInPlace: (x, s) => (x instanceof Float32Array ? addon.scale(ctx, x, s) : js.scaleInPlace(x, s)),
      sampleRow: (logits, off, V, invTemp, u, logp) => {
        if (!on(logits) || logits.length < off + V) return sampleRowJs(logits, off, V, invTemp, u, logp);
        this.run(OP.SAMPLE, logits.byteOffset + 4 * off, V, invTemp, u);
        logp[0] = this.args[15];
        return this.args[14];
      },
    };
  }
}
