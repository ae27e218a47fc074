/**
 * Matmul throughput on the engine's shapes: GFLOP/s for the TypeScript reference, the wasm kernels
 * on 1 thread and on 2 threads. Prints one JSON object. Each figure is the median of several
 * timed repeats after a warm-up; a repeat runs enough calls to last ~20 ms. The reference is ~100×
 * slower, so it gets one warm-up in total and 3 single-call repeats per shape.
 * Shapes are the gemms of the 0.8M-parameter model (d 128, MLP 512, vocab 32, 1024 tokens) as the
 * linear layers issue them: forward NT (M=tokens, N=out, K=in), input gradient NN, weight gradient
 * TN (M=out, N=in, K=tokens); plus a decode step (16 sequences) and one big product.
 * Usage: node dist/bench/matmul.js [--quick]   (--quick: fewer repeats, for a smoke run)
 */
import { performance } from "node:perf_hooks";
import { availableParallelism, cpus, loadavg } from "node:os";
import { createKernels, type EngineKernels } from "../src/engine/kernels/select.js";
import { Rng } from "../src/engine/rng.js";

interface Shape {
  name: string;
  transA: boolean;
  transB: boolean;
  M: number;
  N: number;
  K: number;
}

const T = 1024;
const layers: Array<[string, number, number]> = [
  ["qkv", 128, 384],
  ["attn_proj", 128, 128],
  ["mlp_up", 128, 512],
  ["mlp_down", 512, 128],
  ["lm_head", 128, 32],
];
const shapes: Shape[] = [];
for (const [layer, inF, outF] of layers) {
  shapes.push({ name: `${layer} fwd`, transA: false, transB: true, M: T, N: outF, K: inF });
  shapes.push({ name: `${layer} dinp`, transA: false, transB: false, M: T, N: inF, K: outF });
  shapes.push({ name: `${layer} dweight`, transA: true, transB: false, M: outF, N: inF, K: T });
}
shapes.push({ name: "decode qkv fwd", transA: false, transB: true, M: 16, N: 384, K: 128 });
shapes.push({ name: "big", transA: false, transB: false, M: 1024, N: 2048, K: 512 });

const quick = process.argv.includes("--quick");
const REPEATS = quick ? 3 : 7;
const REPEAT_MS = quick ? 5 : 20;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** GFLOP/s of k.gemm on `shape`, or null when the reference would take too long (big shape). */
function measure(k: EngineKernels, shape: Shape, rng: Rng): number | null {
  const { transA, transB, M, N, K } = shape;
  const flops = 2 * M * N * K;
  if (k.name === "ts" && flops > 5e8) return null;
  const alloc = (n: number): Float32Array => (k.heap ? k.heap.f32(n) : new Float32Array(n));
  const A = alloc(M * K);
  const B = alloc(K * N);
  const C = alloc(M * N);
  for (const x of [A, B]) for (let i = 0; i < x.length; i++) x[i] = rng.uniform() * 2 - 1;
  const run = (calls: number): number => {
    const t0 = performance.now();
    for (let c = 0; c < calls; c++) k.gemm(transA, transB, M, N, K, A, B, C, false);
    return (performance.now() - t0) / calls;
  };
  const slow = k.name === "ts";
  if (!slow) run(1); // warm-up (and tier-up of the wasm code)
  const calls = slow ? 1 : Math.max(1, Math.round(REPEAT_MS / Math.max(run(3), 1e-3)));
  const times: number[] = [];
  for (let r = 0; r < (slow ? 3 : REPEATS); r++) times.push(run(calls));
  if (k.heap) for (const x of [A, B, C]) k.heap.free(x);
  return Number((flops / (median(times) * 1e6)).toFixed(1));
}

const rng = new Rng(7);
const reference = await createKernels({ impl: "ts" });
measure(reference, shapes[1], rng); // warm-up of the reference
const impls: Array<[string, EngineKernels]> = [
  ["ts", reference],
  ["wasm_1t", await createKernels({ impl: "wasm", threads: 1 })],
  ["wasm_2t", await createKernels({ impl: "wasm", threads: 2 })],
];
const loadBefore = loadavg()[0];
const results: Record<string, Record<string, number | string | null>> = {};
const start = performance.now();
for (const s of shapes) {
  const row: Record<string, number | string | null> = {
    shape: `${s.transA ? "T" : "N"}${s.transB ? "T" : "N"} ${s.M}x${s.N}x${s.K}`,
  };
  for (const [label, k] of impls) row[label] = measure(k, s, rng);
  results[s.name] = row;
}
for (const [, k] of impls) await k.close();

console.log(
  JSON.stringify(
    {
      bench: "matmul",
      unit: "GFLOP/s (median)",
      shape_format: "op(A) op(B) MxNxK",
      cpu: cpus()[0]?.model ?? "unknown",
      cores: availableParallelism(),
      node: process.version,
      seconds: Number(((performance.now() - start) / 1000).toFixed(1)),
      // 1-minute load average before/after: other processes on the machine make the figures noisy.
      load_avg: [loadBefore, loadavg()[0]].map((x) => Number(x.toFixed(2))),
      results,
    },
    null,
    1,
  ),
);
