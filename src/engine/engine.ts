/**
 * An Engine bundles what a model needs from the machine: the dense kernels and an allocator for its
 * float buffers. Training uses float32 buffers on the kernels' heap (so fast kernels can use them
 * without copies); gradient checks use a float64 engine with the reference kernels.
 */
import type { Buf, Kernels } from "./kernels/types.js";
import { tsKernels } from "./kernels/ts.js";
import { createKernels } from "./kernels/select.js";

export interface Engine {
  readonly kernels: Kernels;
  readonly float64: boolean;
  /** A zero-filled float buffer of n elements. */
  alloc(n: number): Buf;
}

/** Reference kernels on plain float64 arrays: for finite-difference gradient checks. */
export function float64Engine(): Engine {
  return { kernels: tsKernels, float64: true, alloc: (n) => new Float64Array(n) };
}

/** Reference kernels on plain float32 arrays: the slow but dependency-free default. */
export function referenceEngine(): Engine {
  return { kernels: tsKernels, float64: false, alloc: (n) => new Float32Array(n) };
}

export interface FastEngine extends Engine {
  readonly threads: number;
  /** Stops the worker threads. */
  close(): Promise<void>;
}

/**
 * The training engine: float32 buffers on the shared WebAssembly heap and SIMD kernels on a worker
 * pool (`impl: "wasm"`, the default), or the TypeScript reference kernels (`impl: "ts"`).
 */
export async function createEngine(
  opts: { impl?: "ts" | "wasm"; threads?: number } = {},
): Promise<FastEngine> {
  const kernels = await createKernels(opts);
  const heap = kernels.heap;
  return {
    kernels,
    float64: false,
    threads: kernels.threads,
    alloc: heap ? (n) => heap.f32(n) : (n) => new Float32Array(n),
    close: () => kernels.close(),
  };
}
