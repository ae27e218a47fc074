/**
 * The WebAssembly SIMD kernels (assembly/kernels.ts, built to build/kernels.wasm) bound to a Heap.
 * gemm packs op(B) once on the calling thread, then computes output rows: all of them on the
 * calling thread for small products, split between the calling thread and the worker pool for
 * large ones. Arguments that the wasm code cannot take (Float64Array, arrays not on the heap) go to
 * the TypeScript reference, so callers never need to care where their buffers live (but off-heap
 * float32 is ~50× slower). As with the reference, C must not overlap A or B.
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { Heap } from "./heap.js";
import type { WorkerPool } from "./pool.js";
import { gemmReference } from "./ts.js";
import type { Buf, Kernels } from "./types.js";

/** The functions exported by build/kernels.wasm (pointers are byte offsets, booleans 0/1). */
export interface KernelExports {
  scratchBytes(K: number): number;
  packB(transB: number, N: number, K: number, b: number, dst: number): void;
  gemmRows(
    transA: number,
    M: number,
    N: number,
    K: number,
    a: number,
    packedB: number,
    c: number,
    accumulate: number,
    m0: number,
    m1: number,
    scratch: number,
  ): void;
}

/**
 * Products with fewer multiply-adds than this stay on the calling thread: waking a worker costs
 * ~30 µs, about what the calling thread needs for ~1.5M multiply-adds on its own.
 */
export const PARALLEL_MIN_MACS = 1 << 21;

// Compiled files sit in dist/src/engine/kernels/, four levels below the package root.
const WASM_URL = new URL("../../../../build/kernels.wasm", import.meta.url);
export const WASM_PATH = fileURLToPath(WASM_URL);

let modulePromise: Promise<WebAssembly.Module> | null = null;

/** The compiled kernel module (compiled once per process, shared by every heap and worker). */
export function loadKernelModule(): Promise<WebAssembly.Module> {
  modulePromise ??= readFile(WASM_URL).then(
    (bytes) => WebAssembly.compile(bytes),
    (err: NodeJS.ErrnoException) => {
      modulePromise = null;
      throw new Error(
        `wasm kernels: cannot read ${WASM_URL.pathname} (${err.code ?? err.message}); run \`npm run build\``,
      );
    },
  );
  return modulePromise;
}

/** Instantiates the kernel module on a shared memory (synchronous: the module is tiny). */
export function instantiateKernels(module: WebAssembly.Module, memory: WebAssembly.Memory): KernelExports {
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  return instance.exports as unknown as KernelExports;
}

/** One gemm as the workers receive it: everything but the row range and the scratch block. */
export interface GemmJob {
  transA: boolean;
  M: number;
  N: number;
  K: number;
  a: number;
  packedB: number;
  c: number;
  accumulate: boolean;
}

export class WasmKernels implements Kernels {
  readonly name = "wasm";

  constructor(
    private readonly exports: KernelExports,
    private readonly heap: Heap,
    private readonly pool: WorkerPool | null,
  ) {}

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
    if (!this.takes(A) || !this.takes(B) || !this.takes(C)) {
      gemmReference(transA, transB, M, N, K, A, B, C, accumulate);
      return;
    }
    checkSizes(M, N, K, A, B, C);
    if (M === 0 || N === 0) return;
    // Heap scratch slot 0 holds packed op(B); slot 1 + t is thread t's row-block scratch.
    const packed = this.heap.scratch(0, ((N + 7) >> 3) * 8 * K);
    const wasm = this.exports;
    wasm.packB(transB ? 1 : 0, N, K, B.byteOffset, packed.byteOffset);
    const job: GemmJob = {
      transA,
      M,
      N,
      K,
      a: A.byteOffset,
      packedB: packed.byteOffset,
      c: C.byteOffset,
      accumulate,
    };
    const scratchFloats = wasm.scratchBytes(K) / 4;
    const pool = this.pool;
    if (pool === null || M * N * K < PARALLEL_MIN_MACS) {
      const scratch = this.heap.scratch(1, scratchFloats).byteOffset;
      wasm.gemmRows(+transA, M, N, K, job.a, job.packedB, job.c, +accumulate, 0, M, scratch);
      return;
    }
    const scratch: number[] = [];
    for (let t = 0; t < pool.threads; t++) scratch.push(this.heap.scratch(1 + t, scratchFloats).byteOffset);
    pool.gemm(job, chunkRows(M, pool.threads), scratch, wasm);
  }

  private takes(x: Buf): x is Float32Array {
    return x instanceof Float32Array && this.heap.owns(x);
  }
}

/**
 * Rows per chunk when a gemm is shared: ~CHUNKS_PER_THREAD chunks per thread so a thread that
 * starts late or runs slower (busy machine) still finds work; a multiple of the 4-row tile.
 */
export function chunkRows(M: number, threads: number): number {
  return Math.max(4, Math.ceil(M / (threads * CHUNKS_PER_THREAD) / 4) * 4);
}
const CHUNKS_PER_THREAD = 4;

function checkSizes(M: number, N: number, K: number, A: Buf, B: Buf, C: Buf): void {
  // Written out (no array of pairs): gemm runs in the step loop, which allocates nothing.
  if (!isCount(M) || !isCount(N) || !isCount(K))
    throw new Error(`gemm: M=${M} N=${N} K=${K} must be non-negative integers`);
  // The wasm code reads the heap directly, so a short array would silently read its neighbours.
  need("A", A, M * K, M, N, K);
  need("B", B, K * N, M, N, K);
  need("C", C, M * N, M, N, K);
}

function isCount(x: number): boolean {
  return Number.isInteger(x) && x >= 0;
}

function need(what: string, x: Buf, n: number, M: number, N: number, K: number): void {
  if (x.length < n)
    throw new Error(`gemm: ${what} has ${x.length} elements, needs ${n} (M=${M} N=${N} K=${K})`);
}
