/**
 * Timing helpers: a monotonic clock, robust statistics, and an op-table wrapper that times every
 * op a model runs (by op, and by shape for the linear layers), so a profile shows where a step or
 * a sampling round goes on any kernel tier.
 */
import { performance } from "node:perf_hooks";
import type { Ops } from "../src/engine/ops/table.js";

export const now = (): number => performance.now();

/** CPU time of this process (all its threads) in ms. */
export const cpuNow = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

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

export interface OpStats {
  /** Op name, with the product shape for the ops that run gemms ("linearForward 1024x384x128"). */
  op: string;
  calls: number;
  ms: number;
  /** Multiply-add flops of the call (gemm-bearing ops), else 0. */
  flops: number;
}

/** Ops whose key carries the product shape (M×N×K of the main gemm) and their flop counts. */
const SHAPED: Record<string, (a: number[]) => { shape: string; flops: number }> = {
  // (out, inp, weight, bias, N, IC, OC)
  linearForward: (a) => ({ shape: `${a[4]}x${a[6]}x${a[5]}`, flops: 2 * a[4] * a[5] * a[6] }),
  // (dinp, dweight, dbias, dout, inp, weight, N, IC, OC): two gemms, one without dinp
  linearBackward: (a) => ({
    shape: `${a[6]}x${a[7]}x${a[8]}`,
    flops: 2 * a[6] * a[7] * a[8] * (a[0] ? 2 : 1),
  }),
};

/**
 * An op table that forwards to `inner` and times every call (two clock reads, ~0.1 µs) by op and,
 * for the linear layers, by shape. Ops run synchronously on every tier (their threads join before
 * returning), so each time is the op's wall time.
 */
export class TimedOps {
  readonly ops: Ops;
  private readonly stats = new Map<string, OpStats>();
  enabled = true;

  /** `clock` (ms): wall time by default; process CPU time gives a load-robust profile of 1-thread runs. */
  constructor(inner: Ops, clock: () => number = now) {
    const wrapped: Record<string, unknown> = { ...inner };
    for (const [name, fn] of Object.entries(inner)) {
      if (typeof fn !== "function") continue;
      const shaped = SHAPED[name];
      wrapped[name] = (...args: unknown[]) => {
        if (!this.enabled) return (fn as (...a: unknown[]) => unknown)(...args);
        const t0 = clock();
        const r = (fn as (...a: unknown[]) => unknown)(...args);
        const dt = clock() - t0;
        let key = name;
        let flops = 0;
        if (shaped) {
          const nums: number[] = [];
          args.forEach((x, i) => (nums[i] = typeof x === "number" ? x : x ? 1 : 0));
          const s = shaped(nums);
          key = `${name} ${s.shape}`;
          flops = s.flops;
        }
        let st = this.stats.get(key);
        if (st === undefined) this.stats.set(key, (st = { op: key, calls: 0, ms: 0, flops }));
        st.calls++;
        st.ms += dt;
        return r;
      };
    }
    this.ops = wrapped as unknown as Ops;
  }

  /** Statistics since the last reset, slowest first. */
  take(): OpStats[] {
    const r = [...this.stats.values()].sort((a, b) => b.ms - a.ms);
    this.stats.clear();
    return r;
  }
}
