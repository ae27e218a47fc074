/**
 * Picks the kernel tier at start-up and says which tiers this machine has:
 *  - `native`: the C addon (AVX-512 or AVX2 + FMA, its own thread pool), tensors on a shared heap;
 *  - `wasm`: WebAssembly SIMD on the same kind of heap, `threads` - 1 worker threads plus the caller;
 *  - `ts`: the readable reference, no heap;
 *  - `auto` (default): native when its addon loaded on this CPU, else wasm.
 * Every tier takes any buffer: arguments the fast tiers cannot take (float64, off-heap arrays) go
 * to the reference code.
 */
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { Heap, type HeapOptions } from "./heap.js";
import { NativeKernels, nativeStatus, type NativeIsa } from "./native.js";
import { WorkerPool } from "./pool.js";
import { tsKernels } from "./ts.js";
import type { Kernels } from "./types.js";
import { WASM_PATH, WasmKernels, instantiateKernels, loadKernelModule } from "./wasm.js";
import { jsOps, type Ops } from "../ops/table.js";

export type KernelImpl = "ts" | "wasm" | "native" | "auto";
export const KERNEL_IMPLS: readonly KernelImpl[] = ["auto", "native", "wasm", "ts"];

export type EngineKernels = Kernels & {
  /** The tier that runs: "ts", "wasm" or "native" (never "auto"). */
  readonly name: "ts" | "wasm" | "native";
  /** The native tier's instruction set (undefined on the other tiers). */
  readonly isa?: NativeIsa;
  /** Every op of the model on this tier. */
  readonly ops: Ops;
  /** Where float32 tensors must live for the fast path; null for the reference kernels. */
  readonly heap: Heap | null;
  readonly threads: number;
  /** Stops the worker threads (wasm). Large gemms throw afterwards; the heap stays usable. */
  close(): Promise<void>;
};

export interface KernelOptions {
  impl?: KernelImpl;
  /** Threads the kernels use, the calling one included. Default: os.availableParallelism(). */
  threads?: number;
  /** Native tier only: the instruction set (default: $SAT_NATIVE_ISA, else the best the CPU has). */
  isa?: NativeIsa;
  heap?: HeapOptions;
}

/** The reference kernels, synchronously (tests, float64 gradient checks). */
export function defaultTsKernels(): EngineKernels {
  return {
    name: "ts",
    gemm: tsKernels.gemm,
    ops: jsOps(tsKernels),
    heap: null,
    threads: 1,
    close: async () => {},
  };
}

/** What `auto` resolves to on this machine. */
export function resolveImpl(impl: KernelImpl): "ts" | "wasm" | "native" {
  if (impl !== "auto") return impl;
  return nativeStatus().ok ? "native" : "wasm";
}

export async function createKernels(opts: KernelOptions = {}): Promise<EngineKernels> {
  const requested = opts.impl ?? "auto";
  if (!KERNEL_IMPLS.includes(requested))
    throw new Error(
      `createKernels: unknown impl "${String(requested)}" (expected ${KERNEL_IMPLS.join(", ")})`,
    );
  const threads = opts.threads ?? availableParallelism();
  if (!Number.isInteger(threads) || threads < 1) {
    throw new Error(`createKernels: threads must be a positive integer, got ${threads}`);
  }
  const impl = resolveImpl(requested);
  if (impl === "ts") return defaultTsKernels();
  if (impl === "native") {
    const heap = new Heap(opts.heap);
    const k = new NativeKernels(heap, threads, opts.isa);
    return {
      name: "native",
      isa: k.isa,
      gemm: k.gemm.bind(k),
      ops: k.ops,
      heap,
      threads,
      close: async () => {},
    };
  }
  const module = await loadKernelModule();
  const heap = new Heap(opts.heap);
  const pool = threads > 1 ? await WorkerPool.start(module, heap, threads - 1) : null;
  const kernels = new WasmKernels(instantiateKernels(module, heap.memory), heap, pool);
  return {
    name: "wasm",
    gemm: kernels.gemm.bind(kernels),
    ops: jsOps(kernels),
    heap,
    threads,
    close: async () => pool?.close(),
  };
}

export interface TierDescription {
  available: boolean;
  /** Why the tier is absent (only when it is). */
  reason?: string;
}

/** Which kernel tiers this machine has, and why a tier is absent: for `sat doctor` and the bench. */
export interface KernelsDescription {
  /** The tier `auto` (the default) runs. */
  auto: "native" | "wasm";
  ts: TierDescription;
  wasm: TierDescription & { path: string };
  native: TierDescription & {
    /** The instruction set the native tier runs ($SAT_NATIVE_ISA or the best the CPU has). */
    isa?: NativeIsa;
    cpu?: { avx512: boolean; avx2: boolean };
    path?: string;
  };
}

export function describeKernels(): KernelsDescription {
  const n = nativeStatus();
  const wasmOk = existsSync(WASM_PATH);
  return {
    auto: n.ok ? "native" : "wasm",
    ts: { available: true },
    wasm: wasmOk
      ? { available: true, path: WASM_PATH }
      : { available: false, reason: `${WASM_PATH} is missing; run \`npm run build\``, path: WASM_PATH },
    native: n.ok
      ? { available: true, isa: n.isa, cpu: n.cpu, path: n.path }
      : { available: false, reason: n.reason },
  };
}
