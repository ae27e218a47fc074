/**
 * Kernel worker thread: instantiates the wasm kernels on the shared heap memory, then loops
 * forever: sleep on the control block's SEQ word, compute its row range of the posted gemm, count
 * itself into DONE. It never returns to its event loop while the pool is open (close() sets STOP).
 */
import { parentPort, workerData } from "node:worker_threads";
import { CTL, ctlWords, type WorkerInit } from "./pool.js";
import { instantiateKernels } from "./wasm.js";

/** Polls of SEQ before sleeping: gemms come in bursts, and a futex wake-up costs tens of µs. */
const SPIN_POLLS = 20000;

const init = workerData as WorkerInit;
const wasm = instantiateKernels(init.module, init.memory);
const ctl = new Int32Array(init.memory.buffer, init.ctlOffset, ctlWords(init.workers));
const slot = CTL.WORKER0 + 4 * init.index;

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
let seen = 0;
for (;;) {
  seen = waitForJob(seen);
  if (Atomics.load(ctl, CTL.STOP) !== 0) break;
  try {
    wasm.gemmRows(
      ctl[CTL.TRANS_A],
      ctl[CTL.M],
      ctl[CTL.N],
      ctl[CTL.K],
      ctl[CTL.A] >>> 0,
      ctl[CTL.PACKED_B] >>> 0,
      ctl[CTL.C] >>> 0,
      ctl[CTL.ACCUMULATE],
      ctl[slot],
      ctl[slot + 1],
      ctl[slot + 2] >>> 0,
    );
  } catch (err) {
    process.stderr.write(`kernel worker ${init.index}: ${(err as Error).stack ?? String(err)}\n`);
    Atomics.store(ctl, CTL.FAILED, 1);
  }
  Atomics.add(ctl, CTL.DONE, 1);
  Atomics.notify(ctl, CTL.DONE);
}
