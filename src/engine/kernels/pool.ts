/**
 * A pool of worker threads that run the wasm kernels on the heap's shared memory, driven through a
 * control block of int32 words on the heap with Atomics.wait/notify (no message per call).
 *
 * A gemm is cut into chunks of output rows. The caller posts the job (parameters, then SEQ + 1,
 * then a notify), and every thread — the caller included — claims chunks from one shared counter
 * until none is left; the caller then waits until all chunks are done. On a busy machine a worker
 * that wakes late simply finds fewer chunks (or none), so nobody waits on a sleeping thread.
 * Chunk boundaries depend only on the shape, and each output element is computed the same way
 * whoever computes it, so results are bit-identical for any thread count.
 *
 * The claim counter is a 64-bit word (SEQ << 32 | next chunk), claimed by compare-exchange: a
 * worker that read the parameters of job s can only claim a chunk while job s is unfinished, so it
 * never mixes parameters of two jobs. Workers are unref()'d (an idle pool never keeps the process
 * alive); close() stops and terminates them.
 */
import { once } from "node:events";
import { Worker } from "node:worker_threads";
import type { Heap } from "./heap.js";
import type { GemmJob, KernelExports } from "./wasm.js";

// Control block layout (int32 words). Byte offsets are stored as int32 and read back with >>> 0.
export const CTL = {
  SEQ: 0, // job counter, bumped by the caller per job
  DONE: 1, // chunks finished in the current job
  STOP: 2, // 1 = workers leave their loop
  FAILED: 3, // 1 = a worker caught an error in the current job (details on its stderr)
  TRANS_A: 4,
  M: 5,
  N: 6,
  K: 7,
  A: 8,
  PACKED_B: 9,
  C: 10,
  ACCUMULATE: 11,
  CHUNK_ROWS: 12,
  CHUNKS: 13,
  CLAIM: 16, // words 16-17: the 64-bit claim counter (byte 64, so 8-byte aligned)
  SCRATCH: 18, // then one word per thread t: its scratch block; then one per thread: chunks computed
} as const;
export const ctlWords = (threads: number): number => CTL.SCRATCH + 2 * threads;
const chunkCountWord = (threads: number, thread: number): number => CTL.SCRATCH + threads + thread;

/** What a worker receives at start (workerData). */
export interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  ctlOffset: number;
  threads: number;
  index: number; // thread index, 1.. (0 is the caller)
}

/** Views of the control block. */
export interface Control {
  ctl: Int32Array;
  claim: BigInt64Array;
}

export function controlViews(memory: WebAssembly.Memory, ctlOffset: number, threads: number): Control {
  return {
    ctl: new Int32Array(memory.buffer, ctlOffset, ctlWords(threads)),
    claim: new BigInt64Array(memory.buffer, ctlOffset + CTL.CLAIM * 4, 1),
  };
}

/**
 * Claims and computes chunks of job `seq` until none is left. Reads the parameters before the
 * first claim: a successful claim proves they were still those of job `seq` (see the file header).
 * A failing chunk still counts as done (so nobody waits forever); the first error is returned.
 */
export function runChunks(
  { ctl, claim }: Control,
  seq: number,
  wasm: KernelExports,
  thread: number,
  threads: number,
): unknown {
  const transA = ctl[CTL.TRANS_A];
  const M = ctl[CTL.M];
  const N = ctl[CTL.N];
  const K = ctl[CTL.K];
  const a = ctl[CTL.A] >>> 0;
  const packedB = ctl[CTL.PACKED_B] >>> 0;
  const c = ctl[CTL.C] >>> 0;
  const accumulate = ctl[CTL.ACCUMULATE];
  const chunkRows = ctl[CTL.CHUNK_ROWS];
  const chunks = ctl[CTL.CHUNKS];
  const scratch = ctl[CTL.SCRATCH + thread] >>> 0;
  const tag = BigInt(seq >>> 0) << 32n;
  let error: unknown = undefined;
  for (;;) {
    const v = Atomics.load(claim, 0);
    const chunk = Number(v - tag);
    if (chunk < 0 || chunk >= chunks) return error; // another job, or nothing left
    if (Atomics.compareExchange(claim, 0, v, v + 1n) !== v) continue;
    const m0 = chunk * chunkRows;
    try {
      wasm.gemmRows(transA, M, N, K, a, packedB, c, accumulate, m0, Math.min(M, m0 + chunkRows), scratch);
    } catch (err) {
      error ??= err;
      Atomics.store(ctl, CTL.FAILED, 1);
    }
    ctl[chunkCountWord(threads, thread)]++;
    Atomics.add(ctl, CTL.DONE, 1);
    Atomics.notify(ctl, CTL.DONE);
  }
}

/** A worker that has not answered after this long is considered dead (no gemm here takes a second). */
const ANSWER_TIMEOUT_MS = 60_000;

export class WorkerPool {
  private closed = false;

  private constructor(
    private readonly heap: Heap,
    private readonly ctlBlock: Int32Array,
    private readonly control: Control,
    private readonly workerThreads: Worker[],
  ) {}

  /** Threads that compute a gemm: the workers plus the calling thread. */
  get threads(): number {
    return this.workerThreads.length + 1;
  }

  /** Starts `workers` threads on the heap's memory and waits until each has instantiated the kernels. */
  static async start(module: WebAssembly.Module, heap: Heap, workers: number): Promise<WorkerPool> {
    const threads = workers + 1;
    const ctlBlock = heap.i32(ctlWords(threads));
    const url = new URL("./worker.js", import.meta.url);
    const started: Worker[] = [];
    try {
      for (let index = 1; index <= workers; index++) {
        const workerData: WorkerInit = {
          module,
          memory: heap.memory,
          ctlOffset: ctlBlock.byteOffset,
          threads,
          index,
        };
        // execArgv: [] because some of the parent's flags (--input-type, --eval...) are invalid in a worker.
        const w = new Worker(url, { workerData, execArgv: [] });
        started.push(w);
        const failed = once(w, "error").then(([e]) => Promise.reject(e as Error));
        const [msg] = (await Promise.race([once(w, "message"), failed])) as [unknown];
        if (msg !== "ready") throw new Error(`worker ${index} sent ${String(msg)} instead of ready`);
        w.unref();
      }
    } catch (err) {
      await Promise.all(started.map((w) => w.terminate()));
      heap.free(ctlBlock);
      throw new Error(`kernel worker pool: a worker failed to start: ${(err as Error).message}`);
    }
    return new WorkerPool(heap, ctlBlock, controlViews(heap.memory, ctlBlock.byteOffset, threads), started);
  }

  /**
   * Computes `job` in chunks of `chunkRows` output rows on all threads; scratch[t] is thread t's
   * scratch block (byte offset). Returns when every row is done.
   */
  gemm(job: GemmJob, chunkRows: number, scratch: number[], wasm: KernelExports): void {
    if (this.closed) throw new Error("kernel worker pool: used after close()");
    const { ctl, claim } = this.control;
    ctl[CTL.TRANS_A] = job.transA ? 1 : 0;
    ctl[CTL.M] = job.M;
    ctl[CTL.N] = job.N;
    ctl[CTL.K] = job.K;
    ctl[CTL.A] = job.a | 0;
    ctl[CTL.PACKED_B] = job.packedB | 0;
    ctl[CTL.C] = job.c | 0;
    ctl[CTL.ACCUMULATE] = job.accumulate ? 1 : 0;
    ctl[CTL.CHUNK_ROWS] = chunkRows;
    const chunks = Math.ceil(job.M / chunkRows);
    ctl[CTL.CHUNKS] = chunks;
    for (let t = 0; t < this.threads; t++) ctl[CTL.SCRATCH + t] = scratch[t] | 0;
    ctl[CTL.DONE] = 0;
    ctl[CTL.FAILED] = 0;
    const seq = (ctl[CTL.SEQ] + 1) | 0;
    Atomics.store(claim, 0, BigInt(seq >>> 0) << 32n);
    Atomics.store(ctl, CTL.SEQ, seq); // seq-cst store: publishes the plain writes above
    Atomics.notify(ctl, CTL.SEQ);

    const error = runChunks(this.control, seq, wasm, 0, this.threads);
    this.waitDone(chunks);
    if (error !== undefined) throw error;
    if (Atomics.load(ctl, CTL.FAILED) !== 0)
      throw new Error("kernel worker pool: a worker failed during gemm (see its stderr)");
  }

  /** Chunks computed so far by each thread (0 = the calling thread): shows whether workers take part. */
  chunksByThread(): number[] {
    const { ctl } = this.control;
    return Array.from({ length: this.threads }, (_, t) => Atomics.load(ctl, chunkCountWord(this.threads, t)));
  }

  /** Stops the workers and waits until they have exited. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const { ctl } = this.control;
    Atomics.store(ctl, CTL.STOP, 1);
    Atomics.add(ctl, CTL.SEQ, 1);
    Atomics.notify(ctl, CTL.SEQ);
    await Promise.all(this.workerThreads.map((w) => w.terminate()));
    this.heap.free(this.ctlBlock);
  }

  /** Waits for chunks still being computed by workers (spinning first: they usually end within µs). */
  private waitDone(chunks: number): void {
    const { ctl } = this.control;
    for (let i = 0; i < 1000; i++) if (Atomics.load(ctl, CTL.DONE) === chunks) return;
    const deadline = Date.now() + ANSWER_TIMEOUT_MS;
    for (;;) {
      const done = Atomics.load(ctl, CTL.DONE);
      if (done === chunks) return;
      if (Date.now() > deadline)
        throw new Error(
          `kernel worker pool: ${chunks - done} chunk(s) unfinished after ${ANSWER_TIMEOUT_MS} ms`,
        );
      Atomics.wait(ctl, CTL.DONE, done, 100);
    }
  }
}
