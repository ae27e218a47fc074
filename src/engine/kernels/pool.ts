/**
 * A pool of worker threads that run the wasm kernels on the heap's shared memory. Dispatch goes
 * through a control block of int32 words on the heap with Atomics.wait/notify (no message per
 * call): the caller writes the job, bumps SEQ and wakes the workers, computes its own rows, then
 * waits for DONE to reach the number of workers. Work is split by output rows only, so results
 * do not depend on the thread count. Workers are unref()'d: an idle pool never keeps the process
 * alive; close() stops and terminates them.
 */
import { once } from "node:events";
import { Worker } from "node:worker_threads";
import type { Heap } from "./heap.js";
import type { GemmJob, KernelExports } from "./wasm.js";

// Control block layout (int32 words). Byte offsets are stored as int32 and read back with >>> 0.
export const CTL = {
  SEQ: 0, // job counter, bumped by the caller per job
  DONE: 1, // workers finished with the current job
  STOP: 2, // 1 = workers leave their loop
  FAILED: 3, // 1 = a worker caught an error (message in the worker's stderr)
  TRANS_A: 4,
  M: 5,
  N: 6,
  K: 7,
  A: 8,
  PACKED_B: 9,
  C: 10,
  ACCUMULATE: 11,
  WORKER0: 16, // then 4 words per worker w (1-based): m0, m1, scratch, unused
} as const;
export const ctlWords = (workers: number): number => CTL.WORKER0 + 4 * (workers + 1);

/** What a worker receives at start (workerData). */
export interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  ctlOffset: number;
  workers: number;
  index: number; // 1-based
}

/** A worker that has not answered after this long is considered dead (no gemm here takes a second). */
const ANSWER_TIMEOUT_MS = 60_000;
/** Polls of DONE before the caller sleeps: the workers usually finish within a few µs of it. */
const SPIN_POLLS = 2000;

export class WorkerPool {
  private closed = false;

  private constructor(
    private readonly heap: Heap,
    private readonly ctl: Int32Array,
    private readonly threads: Worker[],
  ) {}

  get workers(): number {
    return this.threads.length;
  }

  /** Starts `workers` threads on the heap's memory and waits until each has instantiated the kernels. */
  static async start(module: WebAssembly.Module, heap: Heap, workers: number): Promise<WorkerPool> {
    const ctl = heap.i32(ctlWords(workers));
    const url = new URL("./worker.js", import.meta.url);
    const threads: Worker[] = [];
    try {
      for (let index = 1; index <= workers; index++) {
        const workerData: WorkerInit = { module, memory: heap.memory, ctlOffset: ctl.byteOffset, workers, index };
        // execArgv: [] because some of the parent's flags (--input-type, --eval...) are invalid in a worker.
        const w = new Worker(url, { workerData, execArgv: [] });
        threads.push(w);
        const [msg] = (await Promise.race([once(w, "message"), once(w, "error").then(([e]) => Promise.reject(e))])) as [unknown];
        if (msg !== "ready") throw new Error(`kernel worker ${index} sent ${String(msg)} instead of ready`);
        w.unref();
      }
    } catch (err) {
      await Promise.all(threads.map((w) => w.terminate()));
      heap.free(ctl);
      throw new Error(`kernel worker pool: a worker failed to start: ${(err as Error).message}`);
    }
    return new WorkerPool(heap, ctl, threads);
  }

  /** Runs `wasm.gemmRows` for ranges[t] with scratch[t]: range 0 on the calling thread, t ≥ 1 on worker t. */
  gemmRows(job: GemmJob, ranges: Array<[number, number]>, scratch: number[], wasm: KernelExports): void {
    if (this.closed) throw new Error("kernel worker pool: used after close()");
    if (ranges.length !== this.workers + 1) throw new Error(`kernel worker pool: ${ranges.length} ranges for ${this.workers + 1} threads`);
    const ctl = this.ctl;
    ctl[CTL.TRANS_A] = job.transA ? 1 : 0;
    ctl[CTL.M] = job.M;
    ctl[CTL.N] = job.N;
    ctl[CTL.K] = job.K;
    ctl[CTL.A] = job.a | 0;
    ctl[CTL.PACKED_B] = job.packedB | 0;
    ctl[CTL.C] = job.c | 0;
    ctl[CTL.ACCUMULATE] = job.accumulate ? 1 : 0;
    for (let w = 1; w <= this.workers; w++) {
      const o = CTL.WORKER0 + 4 * w;
      ctl[o] = ranges[w][0];
      ctl[o + 1] = ranges[w][1];
      ctl[o + 2] = scratch[w] | 0;
    }
    Atomics.store(ctl, CTL.DONE, 0);
    Atomics.add(ctl, CTL.SEQ, 1); // publishes the plain writes above (seq-cst)
    Atomics.notify(ctl, CTL.SEQ);

    const [m0, m1] = ranges[0];
    const { transA, M, N, K, a, packedB, c, accumulate } = job;
    wasm.gemmRows(transA ? 1 : 0, M, N, K, a, packedB, c, accumulate ? 1 : 0, m0, m1, scratch[0]);
    this.waitDone();
    if (Atomics.load(ctl, CTL.FAILED) !== 0) throw new Error("kernel worker pool: a worker failed during gemm");
  }

  /** Stops the workers and waits until they have exited. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.ctl, CTL.STOP, 1);
    Atomics.add(this.ctl, CTL.SEQ, 1);
    Atomics.notify(this.ctl, CTL.SEQ);
    await Promise.all(this.threads.map((w) => w.terminate()));
    this.heap.free(this.ctl);
  }

  private waitDone(): void {
    const ctl = this.ctl;
    const want = this.workers;
    for (let i = 0; i < SPIN_POLLS; i++) if (Atomics.load(ctl, CTL.DONE) === want) return;
    const deadline = Date.now() + ANSWER_TIMEOUT_MS;
    for (;;) {
      const done = Atomics.load(ctl, CTL.DONE);
      if (done === want) return;
      if (Date.now() > deadline) throw new Error(`kernel worker pool: ${want - done} worker(s) did not answer within ${ANSWER_TIMEOUT_MS} ms`);
      Atomics.wait(ctl, CTL.DONE, done, 100);
    }
  }
}
