/**
 * Timing helpers: a monotonic clock, robust statistics, and a Kernels wrapper that times every
 * gemm call (total and per shape) so a profile can split a phase into gemm and everything else.
 * The wrapper costs two clock reads per gemm (~0.1 µs), negligible next to the ~50 gemms of a step.
 */
import { performance } from "node:perf_hooks";
import type { Buf, Kernels } from "../src/engine/kernels/types.js";

export const now = (): number => performance.now();

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error("median of an empty list");
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * Rounds every non-integer number in a JSON-able value to 5 significant digits (timings are far
 * noisier than that); integers (counts, sizes) stay exact.
 */
export function roundNumbers<T>(x: T): T {
  const round = (v: number): number =>
    Number.isInteger(v) || !Number.isFinite(v) ? v : Number(v.toPrecision(5));
  return JSON.parse(JSON.stringify(x, (_k, v: unknown) => (typeof v === "number" ? round(v) : v))) as T;
}

export interface GemmShapeStats {
  /** "NT 1024x384x128": op(A) N/T, op(B) N/T, then M x N x K. */
  shape: string;
  calls: number;
  ms: number;
  flops: number;
}

/** A Kernels object that forwards to `inner` and accumulates gemm time while enabled. */
export class TimedKernels implements Kernels {
  readonly name: string;
  enabled = true;
  ms = 0;
  calls = 0;
  private readonly shapes = new Map<string, GemmShapeStats>();

  constructor(private readonly inner: Kernels) {
    this.name = `timed(${inner.name})`;
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
    acc: boolean,
  ): void {
    if (!this.enabled) {
      this.inner.gemm(transA, transB, M, N, K, A, B, C, acc);
      return;
    }
    const t0 = now();
    this.inner.gemm(transA, transB, M, N, K, A, B, C, acc);
    const dt = now() - t0;
    this.ms += dt;
    this.calls++;
    const key = `${transA ? "T" : "N"}${transB ? "T" : "N"} ${M}x${N}x${K}`;
    let s = this.shapes.get(key);
    if (s === undefined) this.shapes.set(key, (s = { shape: key, calls: 0, ms: 0, flops: 2 * M * N * K }));
    s.calls++;
    s.ms += dt;
  }

  /** Gemm time since the last reset, then resets the counters (shape statistics are kept). */
  take(): { ms: number; calls: number } {
    const r = { ms: this.ms, calls: this.calls };
    this.ms = 0;
    this.calls = 0;
    return r;
  }

  shapeStats(): GemmShapeStats[] {
    return [...this.shapes.values()].sort((a, b) => b.ms - a.ms);
  }

  resetShapes(): void {
    this.shapes.clear();
  }
}
