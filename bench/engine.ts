/**
 * Builds the Engine a benchmark runs on: the kernels from createKernels (`ts` or `wasm` with a
 * thread count) plus an allocator that puts float32 tensors on the kernels' heap, so the wasm
 * kernels work in place instead of falling back to the reference for off-heap arrays.
 */
import type { Engine } from "../src/engine/engine.js";
import type { Kernels } from "../src/engine/kernels/types.js";
import { createKernels, type EngineKernels } from "../src/engine/kernels/select.js";

export type KernelImpl = "ts" | "wasm";

export interface EngineSpec {
  impl: KernelImpl;
  threads: number;
}

export interface BenchEngine {
  readonly spec: EngineSpec;
  /** "wasm-2t" style label used in tables and JSON keys. */
  readonly label: string;
  readonly kernels: EngineKernels;
  readonly engine: Engine;
  /** The same allocator with other kernels (e.g. a timing wrapper of `kernels`). */
  withKernels(k: Kernels): Engine;
  close(): Promise<void>;
}

export function engineLabel(spec: EngineSpec): string {
  return `${spec.impl}-${spec.threads}t`;
}

export async function createBenchEngine(spec: EngineSpec): Promise<BenchEngine> {
  const kernels = await createKernels({ impl: spec.impl, threads: spec.threads });
  const heap = kernels.heap;
  const alloc = heap ? (n: number) => heap.f32(n) : (n: number) => new Float32Array(n);
  const withKernels = (k: Kernels): Engine => ({ kernels: k, float64: false, alloc });
  return {
    spec,
    label: engineLabel(spec),
    kernels,
    engine: withKernels(kernels),
    withKernels,
    close: () => kernels.close(),
  };
}
