/**
 * The WebAssembly SIMD kernels against the TypeScript reference, the shared heap, the worker pool.
 *
 * Tolerance: the wasm gemm sums in float32 (k in order), the reference in float64. For recursive
 * summation every element satisfies |C - C_ref| ≤ (K+2)·2⁻²⁴·(Σ_k |a_ik||b_kj| + |C_old|), where
 * C_old is the accumulated-into value (0 without accumulate). A wrong index, transpose or
 * remainder breaks this bound by orders of magnitude.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Rng } from "../src/engine/rng.js";
import { Heap } from "../src/engine/kernels/heap.js";
import { gemmReference } from "../src/engine/kernels/ts.js";
import { createKernels, defaultTsKernels, type EngineKernels } from "../src/engine/kernels/select.js";
import {
  PARALLEL_MIN_MACS,
  WasmKernels,
  instantiateKernels,
  loadKernelModule,
} from "../src/engine/kernels/wasm.js";
import { WorkerPool } from "../src/engine/kernels/pool.js";
import type { Buf, Kernels } from "../src/engine/kernels/types.js";

const U = 2 ** -24;
const TRANSPOSES = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;

function fill<T extends Buf>(x: T, rng: Rng): T {
  for (let i = 0; i < x.length; i++) x[i] = rng.uniform() * 2 - 1;
  return x;
}

/** Rows checked: all of them for small M; for large M every 13th (13 is odd, so every lane of
 * the 4-row tile gets checked) and the last few, to keep the float64 reference affordable. */
function rowsToCheck(M: number): number[] {
  const rows = Array.from({ length: M }, (_, i) => i);
  return M <= 64 ? rows : rows.filter((i) => i % 13 === 0 || i >= M - 5);
}

/** Runs k.gemm on heap arrays and checks the chosen rows against the float64 reference and its bound. */
function checkGemm(
  k: EngineKernels,
  rng: Rng,
  tA: boolean,
  tB: boolean,
  M: number,
  N: number,
  K: number,
  acc: boolean,
): void {
  const heap = k.heap!;
  const A = fill(heap.f32(M * K), rng);
  const B = fill(heap.f32(K * N), rng);
  const C = fill(heap.f32(M * N), rng);
  const C0 = new Float64Array(C);
  k.gemm(tA, tB, M, N, K, A, B, C, acc);
  const absB = Float64Array.from(B, Math.abs);
  const where = `transA=${tA} transB=${tB} M=${M} N=${N} K=${K} accumulate=${acc}`;
  for (const i of rowsToCheck(M)) {
    // Row i of op(A) as a (1,K) matrix, then the reference on that row alone.
    const a = Float64Array.from({ length: K }, (_, kk) => (tA ? A[kk * M + i] : A[i * K + kk]));
    const want = C0.slice(i * N, (i + 1) * N);
    const bound = acc ? want.map(Math.abs) : new Float64Array(N);
    if (!acc) want.fill(0);
    gemmReference(false, tB, 1, N, K, a, B, want, true);
    gemmReference(false, tB, 1, N, K, a.map(Math.abs), absB, bound, true);
    for (let j = 0; j < N; j++) {
      const got = C[i * N + j];
      const err = Math.abs(got - want[j]);
      const tol = (K + 2) * U * bound[j];
      if (!(err <= tol))
        assert.fail(`${where}: C[${i},${j}] = ${got}, reference ${want[j]}, error ${err} > ${tol}`);
    }
  }
  for (const x of [A, B, C]) heap.free(x);
}

test("wasm gemm matches the reference on the engine's shapes, all transposes, with and without accumulate", async () => {
  const k = await createKernels({ impl: "wasm", threads: 1 });
  try {
    const rng = new Rng(1);
    // (M, K, N): qkv, attention proj, MLP up, MLP down, lm_head, decode qkv
    const shapes = [
      [1024, 128, 384],
      [1024, 128, 128],
      [1024, 128, 512],
      [1024, 512, 128],
      [1024, 128, 32],
      [16, 128, 384],
    ];
    for (const [M, K, N] of shapes) {
      for (const [tA, tB] of TRANSPOSES) checkGemm(k, rng, tA, tB, M, N, K, tA === tB);
    }
  } finally {
    await k.close();
  }
});

test("wasm gemm matches the reference on odd sizes (remainders in M, N and K), all transposes, accumulate", async () => {
  const k = await createKernels({ impl: "wasm", threads: 1 });
  try {
    const rng = new Rng(2);
    const sizes = [1, 3, 7, 9, 13, 33];
    for (const M of sizes) {
      for (const N of sizes) {
        for (const K of sizes) {
          for (const [tA, tB] of TRANSPOSES) {
            checkGemm(k, rng, tA, tB, M, N, K, false);
            checkGemm(k, rng, tA, tB, M, N, K, true);
          }
        }
      }
    }
  } finally {
    await k.close();
  }
});

test("K = 0 gives zeros, or leaves C unchanged with accumulate; M = 0 or N = 0 touch nothing", async () => {
  const k = await createKernels({ impl: "wasm", threads: 1 });
  try {
    const heap = k.heap!;
    const A = heap.f32(0);
    const B = heap.f32(0);
    const C = heap.f32(6).fill(5);
    k.gemm(false, false, 2, 3, 0, A, B, C, true);
    assert.deepEqual(Array.from(C), [5, 5, 5, 5, 5, 5]);
    k.gemm(false, true, 2, 3, 0, A, B, C, false);
    assert.deepEqual(Array.from(C), [0, 0, 0, 0, 0, 0]);
    C.fill(7);
    k.gemm(false, false, 0, 3, 4, A, heap.f32(12).fill(1), C, false);
    k.gemm(false, false, 2, 0, 4, heap.f32(8).fill(1), B, C, false);
    assert.deepEqual(Array.from(C), [7, 7, 7, 7, 7, 7]);
  } finally {
    await k.close();
  }
});

test("results are bit-identical with 1 and 2 threads, and the worker does part of the rows", async () => {
  const one = await createKernels({ impl: "wasm", threads: 1 });
  // Assembled by hand to see the pool's per-thread chunk counts.
  const module = await loadKernelModule();
  const heap = new Heap();
  const pool = await WorkerPool.start(module, heap, 1);
  const two = new WasmKernels(instantiateKernels(module, heap.memory), heap, pool);
  try {
    const rng = new Rng(3);
    // (M, N, K): engine shapes, and rows that do not split into whole 4-row tiles.
    const shapes = [
      [1024, 384, 128],
      [384, 128, 1024],
      [1022, 130, 129],
      [101, 77, 515],
    ];
    const compare = (M: number, N: number, K: number, tA: boolean, tB: boolean): void => {
      assert.ok(M * N * K >= PARALLEL_MIN_MACS, "shape must be large enough to be split between threads");
      const A = fill(new Float32Array(M * K), rng);
      const B = fill(new Float32Array(K * N), rng);
      const C = fill(new Float32Array(M * N), rng);
      const out = [
        [one, one.heap!],
        [two, heap],
      ].map(([k, h]) => {
        const [a, b, c] = [A, B, C].map((x) => (h as Heap).f32(x.length));
        a.set(A);
        b.set(B);
        c.set(C);
        (k as Kernels).gemm(tA, tB, M, N, K, a, b, c, true);
        const bits = new Uint32Array(c.buffer, c.byteOffset, c.length).slice();
        for (const x of [a, b, c]) (h as Heap).free(x);
        return bits;
      });
      assert.deepEqual(out[1], out[0], `M=${M} N=${N} K=${K} transA=${tA} transB=${tB}`);
    };
    for (const [M, N, K] of shapes) for (const [tA, tB] of TRANSPOSES) compare(M, N, K, tA, tB);
    // On a busy machine the worker may wake after the caller took every chunk: insist a little.
    for (let i = 0; i < 200 && pool.chunksByThread()[1] === 0; i++) compare(1024, 384, 128, false, true);
    const [mine, theirs] = pool.chunksByThread();
    assert.ok(theirs > 0 && mine > 0, `chunks computed by caller/worker: ${mine}/${theirs}`);
  } finally {
    await Promise.all([one.close(), pool.close()]);
  }
});

test("Float64Array and off-heap arrays fall back to the reference (same bits)", async () => {
  const k = await createKernels({ impl: "wasm", threads: 2 });
  try {
    const rng = new Rng(4);
    const [M, N, K] = [5, 6, 7];
    const A64 = fill(new Float64Array(M * K), rng);
    const B64 = fill(new Float64Array(K * N), rng);
    const want = new Float64Array(M * N);
    gemmReference(false, true, M, N, K, A64, B64, want, false);
    const C64 = new Float64Array(M * N);
    k.gemm(false, true, M, N, K, A64, B64, C64, false);
    assert.deepEqual(C64, want);

    // Float32 but one operand off the heap: the reference result (float64 sums, one rounding).
    const A = k.heap!.f32(M * K);
    A.set(Float32Array.from(A64));
    const Boff = Float32Array.from(B64);
    const want32 = new Float32Array(M * N);
    gemmReference(false, true, M, N, K, A, Boff, want32, false);
    const C = k.heap!.f32(M * N);
    k.gemm(false, true, M, N, K, A, Boff, C, false);
    assert.deepEqual(C, want32);
    const Coff = new Float32Array(M * N);
    k.gemm(
      false,
      true,
      M,
      N,
      K,
      A,
      k
        .heap!.f32(K * N)
        .fill(0)
        .map((_, i) => Boff[i]),
      Coff,
      false,
    );
    assert.deepEqual(Coff, want32);
  } finally {
    await k.close();
  }
});

test("gemm rejects arrays too short for their shape", async () => {
  const k = await createKernels({ impl: "wasm", threads: 1 });
  try {
    const h = k.heap!;
    assert.throws(
      () => k.gemm(false, false, 4, 4, 4, h.f32(15), h.f32(16), h.f32(16), false),
      /gemm: A has 15 elements, needs 16/,
    );
    assert.throws(
      () => k.gemm(false, false, 4, 4, 4, h.f32(16), h.f32(16), h.f32(3), false),
      /gemm: C has 3 elements/,
    );
  } finally {
    await k.close();
  }
});

test("heap: zeroed 64-byte aligned blocks, reuse after free, accounting, growth, owns", () => {
  const heap = new Heap({ initialBytes: 1 << 17, maximumBytes: 1 << 24 });
  const a = heap.f32(10);
  const b = heap.i32(100);
  assert.equal(a.byteOffset % 64, 0);
  assert.equal(b.byteOffset % 64, 0);
  assert.ok(a.every((x) => x === 0) && b.every((x) => x === 0));
  assert.equal(heap.bytesInUse(), 64 + 448); // 40 -> 64, 400 -> 448 bytes
  a.fill(3);
  const offset = a.byteOffset;
  heap.free(a);
  assert.equal(heap.bytesInUse(), 448);
  const a2 = heap.f32(16); // same 64-byte block size
  assert.equal(a2.byteOffset, offset);
  assert.ok(
    a2.every((x) => x === 0),
    "reused block is zero-filled",
  );
  assert.throws(() => heap.free(a2.subarray(1)), /not a live heap block/);
  assert.throws(() => heap.free(a), /not a live heap block/, "double free");

  // Growth: the old views stay valid and are still owned; the buffer object changes.
  const before = b.buffer;
  b[99] = 42;
  const big = heap.f32(1 << 20); // 4 MiB > 128 KiB initial
  assert.notEqual(big.buffer, before);
  assert.equal(b[99], 42);
  assert.ok(heap.owns(b) && heap.owns(big) && heap.owns(a2.subarray(2, 4)));
  assert.ok(!heap.owns(new Float32Array(4)));
  assert.ok(!heap.owns(new Float32Array(new SharedArrayBuffer(64))));
  assert.throws(() => heap.f32(1 << 22), /Heap.f32: out of memory allocating 16777216 bytes/);
  assert.throws(() => heap.f32(-1), /Heap.f32: invalid length -1/);
});

test("workers see memory grown after they started", async () => {
  const k = await createKernels({ impl: "wasm", threads: 2, heap: { initialBytes: 1 << 20 } });
  try {
    const rng = new Rng(5);
    const [M, N, K] = [256, 128, 96];
    assert.ok(M * N * K >= PARALLEL_MIN_MACS);
    const size = k.heap!.memory.buffer.byteLength;
    const A = fill(k.heap!.f32(M * K), rng);
    const B = fill(k.heap!.f32(K * N), rng);
    const C = k.heap!.f32(M * N);
    k.heap!.f32(1 << 20);
    assert.ok(k.heap!.memory.buffer.byteLength > size, "heap grew");
    const want = new Float64Array(M * N);
    gemmReference(false, false, M, N, K, A, B, want, false);
    k.gemm(false, false, M, N, K, A, B, C, false);
    for (let i = 0; i < C.length; i += 97) assert.ok(Math.abs(C[i] - want[i]) < 1e-4, `C[${i}]`);
  } finally {
    await k.close();
  }
});

test("selection: defaults, ts implementation, argument errors, close", async () => {
  const ts = defaultTsKernels();
  assert.equal(ts.name, "ts");
  assert.equal(ts.heap, null);
  const viaCreate = await createKernels({ impl: "ts" });
  assert.equal(viaCreate.name, "ts");
  await assert.rejects(createKernels({ threads: 0 }), /threads must be a positive integer, got 0/);
  await assert.rejects(createKernels({ impl: "gpu" as "ts" }), /unknown impl "gpu"/);

  const k = await createKernels({ impl: "wasm", threads: 2 });
  assert.equal(k.name, "wasm");
  await k.close();
  await k.close(); // idempotent
  const h = k.heap!;
  const [M, N, K] = [256, 256, 64];
  assert.throws(
    () => k.gemm(false, false, M, N, K, h.f32(M * K), h.f32(K * N), h.f32(M * N), false),
    /used after close/,
  );
});

test("an open pool does not keep the process alive", () => {
  const select = fileURLToPath(new URL("../src/engine/kernels/select.js", import.meta.url));
  const script = `const m = await import(${JSON.stringify(select)}); const k = await m.createKernels({ impl: "wasm", threads: 3 });
    const h = k.heap; k.gemm(false, false, 256, 256, 64, h.f32(256 * 64), h.f32(64 * 256), h.f32(256 * 256), false);
    console.log("done", k.threads);`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(r.status, 0, `child exited with ${r.status} / ${r.signal}: ${r.stderr}`);
  assert.equal(r.stdout.trim(), "done 3");
});
