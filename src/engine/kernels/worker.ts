/**
 * Kernel worker thread: instantiates the wasm kernels on the shared heap memory, then loops: sleep
 * on the control block's SEQ word, claim and compute chunks of the posted gemm (pool.ts), repeat.
 * It never returns to its event loop while the pool is open; close() sets STOP and terminates it.
 */
import { parentPort, workerData } from "node:worker_threads";
import { CTL, controlViews, runChunks, type WorkerInit } from "./pool.js";
import { instantiateKernels } from "./wasm.js";

/** Polls of SEQ before sleeping: a futex wake-up costs tens of µs, and gemms come in bursts. */
const SPIN_POLLS = 2000;

const init = workerData as WorkerInit;
const wasm = instantiateKernels(init.module, init.memory);
const control = controlViews(init.memory, init.ctlOffset, init.threads);
const { ctl } = control;

function waitForJob(seen: number): number {
  for (let i = 0; i < SPIN_POLLS; i++) {
    const seq = Atomics.load(ctl, CTL.SEQ);
    if (seq !== seen) return seq;
  }
  for (;;) {
    Atomics.wait(ctl, CTL.SEQ, seen);
    const seq = Atomics.load(ctl, CTL.SEQ);
    if (seq !== seen) return seq;
  }
}

parentPort!.postMessage("ready");
let seen = Atomics.load(ctl, CTL.SEQ);
for (;;) {
  seen = waitForJob(seen);
  if (Atomics.load(ctl, CTL.STOP) !== 0) break;
  const error = runChunks(control, seen, wasm, init.index, init.threads);
  if (error !== undefined) {
    process.stderr.write(`kernel worker ${init.index}: ${(error as Error).stack ?? String(error)}\n`);
  }
}
