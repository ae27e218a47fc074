/**
 * Picks the kernel implementation at start-up. `wasm` (default): WebAssembly SIMD on a shared heap,
 * `threads` - 1 worker threads plus the calling thread. `ts`: the readable reference, no heap.
 * Both take any buffer: the wasm kernels hand Float64Array and off-heap arrays to the reference.
 */
import { availableParallelism } from "node:os";
import { Heap, type HeapOptions } from "./heap.js";
import { WorkerPool } from "./pool.js";
import { tsKernels } from "./ts.js";
import type { Kernels } from "./types.js";
import { WasmKernels, instantiateKernels, loadKernelModule } from "./wasm.js";

export type EngineKernels = Kernels & {
  /** Where float32 tensors must live for the fast path; null for the reference kernels. */
  readonly heap: Heap | null;
  readonly threads: number;
  /** Stops the worker threads. Large gemms throw afterwards; the heap stays usable. */
  close(): Promise<void>;
};

export interface KernelOptions {
  impl?: "ts" | "wasm";
  /** Threads used by the wasm kernels, the calling one included. Default: os.availableParallelism(). */
  threads?: number;
  heap?: HeapOptions;
}

/** The reference kernels, synchronously (tests, float64 gradient checks). */
export function defaultTsKernels(): EngineKernels {
  return { name: tsKernels.name, gemm: tsKernels.gemm, heap: null, threads: 1, close: async () => {} };
}

export async function createKernels(opts: KernelOptions = {}): Promise<EngineKernels> {
  const impl = opts.impl ?? "wasm";
  const threads = opts.threads ?? availableParallelism();
  if (!Number.isInteger(threads) || threads < 1) {
    throw new Error(`createKernels: threads must be a positive integer, got ${threads}`);
  }
  if (impl === "ts") return defaultTsKernels();
  if (impl !== "wasm")
    throw new Error(`createKernels: unknown impl "${String(impl)}" (expected "ts" or "wasm")`);

  const module = await loadKernelModule();
  const heap = new Heap(opts.heap);
  const pool = threads > 1 ? await WorkerPool.start(module, heap, threads - 1) : null;
  const kernels = new WasmKernels(instantiateKernels(module, heap.memory), heap, pool);
  return {
    name: kernels.name,
    gemm: kernels.gemm.bind(kernels),
    heap,
    threads,
    close: async () => pool?.close(),
  };
}
