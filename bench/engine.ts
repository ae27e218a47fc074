/**
 * Builds the Engine a benchmark runs on: the kernels of one tier (`ts`, `wasm`, `native`) with a
 * thread count, and an allocator that puts float32 tensors on the kernels' heap so the fast tiers
 * work in place instead of falling back to the reference for off-heap arrays.
 */
import type { Engine } from "../src/engine/engine.js";
import type { Ops } from "../src/engine/ops/table.js";
import { createKernels, type EngineKernels } from "../src/engine/kernels/select.js";

export type KernelTier = "ts" | "wasm" | "native";

export interface EngineSpec {
  impl: KernelTier;
  threads: number;
}

export interface BenchEngine {
  readonly spec: EngineSpec;
  /** "native-2t" style label used in tables and JSON keys. */
  readonly label: string;
  /** The native tier's instruction set, else null. */
  readonly isa: string | null;
  readonly kernels: EngineKernels;
  readonly engine: Engine;
  /** The same allocator with another op table (e.g. a timing wrapper of `engine.ops`). */
  withOps(ops: Ops): Engine;
  close(): Promise<void>;
}

export function engineLabel(spec: EngineSpec): string {
  return `${spec.impl}-${spec.threads}t`;
}

export async function createBenchEngine(spec: EngineSpec): Promise<BenchEngine> {
  const kernels = await createKernels({ impl: spec.impl, threads: spec.threads });
  const heap = kernels.heap;
  const alloc = heap ? (n: number) => heap.f32(n) : (n: number) => new Float32Array(n);
  const withOps = (ops: Ops): Engine => ({ kernels: ops.kernels, ops, float64: false, alloc });
  return {
    spec,
    label: engineLabel(spec),
    isa: kernels.isa ?? null,
    kernels,
    engine: withOps(kernels.ops),
    withOps,
    close: () => kernels.close(),
  };
}
