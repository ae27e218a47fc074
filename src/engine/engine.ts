/**
 * An Engine bundles what a model needs from the machine: the dense kernels, the op table that runs
 * every op of the model on the same tier, and an allocator for its float buffers. Training uses
 * float32 buffers on the kernels' heap (so fast kernels can use them without copies); gradient
 * checks use a float64 engine with the reference kernels.
 */
import type { Buf, Kernels } from "./kernels/types.js";
import { tsKernels } from "./kernels/ts.js";
import { createKernels, type KernelImpl } from "./kernels/select.js";
import type { NativeIsa } from "./kernels/native.js";
import { jsOps, type Ops } from "./ops/table.js";

export { describeKernels, type KernelsDescription, type KernelImpl } from "./kernels/select.js";

export interface Engine {
  readonly kernels: Kernels;
  readonly ops: Ops;
  readonly float64: boolean;
  /** A zero-filled float buffer of n elements. */
  alloc(n: number): Buf;
}

/** Reference kernels on plain float64 arrays: for finite-difference gradient checks. */
export function float64Engine(): Engine {
  return { kernels: tsKernels, ops: jsOps(tsKernels), float64: true, alloc: (n) => new Float64Array(n) };
}

/** Reference kernels on plain float32 arrays: the slow but dependency-free default. */
export function referenceEngine(): Engine {
  return { kernels: tsKernels, ops: jsOps(tsKernels), float64: false, alloc: (n) => new Float32Array(n) };
}

export interface FastEngine extends Engine {
  /** The tier that runs ("native", "wasm" or "ts"). */
  readonly impl: "ts" | "wasm" | "native";
  /** The native tier's instruction set (undefined on the other tiers). */
  readonly isa?: NativeIsa;
  readonly threads: number;
  /** Stops the worker threads. */
  close(): Promise<void>;
}

/**
 * The training engine: float32 buffers on a shared heap and the kernels of `impl`: `auto` (the
 * default: native when its addon loads on this CPU, else wasm), `native`, `wasm`, or `ts`.
 */
export async function createEngine(
  opts: { impl?: KernelImpl; threads?: number; isa?: NativeIsa } = {},
): Promise<FastEngine> {
  const kernels = await createKernels(opts);
  const heap = kernels.heap;
  return {
    kernels,
    ops: kernels.ops,
    impl: kernels.name,
    isa: kernels.isa,
    float64: false,
    threads: kernels.threads,
    alloc: heap ? (n) => heap.f32(n) : (n) => new Float32Array(n),
    close: () => kernels.close(),
  };
}
