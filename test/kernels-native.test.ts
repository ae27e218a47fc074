/**
 * The native tier (C addon, native/): which tiers load and why one is absent; the gemm against the
 * float64 reference with the float32 error bound; every op of the op table against the TypeScript
 * op in float64 (whose gradients the ops-* tests check by finite differences); AdamW bit-identical
 * to the TypeScript loop; 1 and 2 threads bit-identical for every op; fall-backs and errors.
 * Runs once per instruction set the CPU has (AVX-512 and AVX2 objects); skips when the addon is
 * absent. Select with --test-name-pattern="native:".
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Rng } from "../src/engine/rng.js";
import { expectAllClose } from "../src/engine/check.js";
import { gemmReference, tsKernels } from "../src/engine/kernels/ts.js";
import { createKernels, describeKernels, type EngineKernels } from "../src/engine/kernels/select.js";
import { nativeIsas, nativeStatus, nativeFmaPeak } from "../src/engine/kernels/native.js";
import { jsOps, type Ops } from "../src/engine/ops/table.js";
import { adamwUpdate, scaleInPlace } from "../src/engine/adamw.js";
import { sampleRowJs } from "../src/engine/ops/softmax.js";
import { ropeTables } from "../src/engine/ops/rope.js";
import type { Buf } from "../src/engine/kernels/types.js";

const status = nativeStatus();
const skip = status.ok ? false : `native kernels absent: ${status.reason}`;
const isas = nativeIsas();
const U = 2 ** -24;

test("native: describeKernels names the tier auto picks, the ISA, and why a tier is absent", () => {
  const d = describeKernels();
  assert.equal(d.ts.available, true);
  assert.equal(d.wasm.available, true, d.wasm.reason);
  if (d.native.available) {
    assert.equal(d.auto, "native");
    assert.ok(d.native.isa === "avx512" || d.native.isa === "avx2");
    assert.ok(d.native.cpu?.[d.native.isa], "the chosen ISA runs on this CPU");
  } else {
    assert.equal(d.auto, "wasm");
    assert.ok((d.native.reason ?? "").length > 0, "an absent tier says why");
  }
});

test("native: an unknown SAT_NATIVE_ISA makes the tier absent with a reason, and auto falls back to wasm", () => {
  const select = fileURLToPath(new URL("../src/engine/kernels/select.js", import.meta.url));
  const script = `const m = await import(${JSON.stringify(select)}); const d = m.describeKernels();
    const k = await m.createKernels({ threads: 1 }); console.log(JSON.stringify([d.native.reason, d.auto, k.name]));`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    env: { ...process.env, SAT_NATIVE_ISA: "sse9" },
    timeout: 20_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const [reason, auto, name] = JSON.parse(r.stdout) as string[];
  assert.match(reason, /SAT_NATIVE_ISA="sse9" is not one of avx512, avx2/);
  assert.equal(auto, "wasm");
  assert.equal(name, "wasm");
});

test("native: the install step never fails: without make or a compiler it prints one line, exits 0 and records why", () => {
  // A copy of the package's build inputs, run with a PATH that has node and nothing else.
  const root = fileURLToPath(new URL("../../", import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), "native-build-"));
  try {
    mkdirSync(join(dir, "scripts"));
    cpSync(join(root, "scripts", "build-native.mjs"), join(dir, "scripts", "build-native.mjs"));
    cpSync(join(root, "native"), join(dir, "native"), {
      recursive: true,
      filter: (src) => !src.includes(join("native", "build")),
    });
    mkdirSync(join(dir, "bin"));
    symlinkSync(process.execPath, join(dir, "bin", "node"));
    const r = spawnSync(join(dir, "bin", "node"), [join(dir, "scripts", "build-native.mjs")], {
      encoding: "utf8",
      env: { PATH: join(dir, "bin"), npm_config_node_gyp: process.env.npm_config_node_gyp ?? "" },
      timeout: 60_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.equal(lines.length, 1, r.stdout);
    assert.match(lines[0], /^sat-llm: native kernels not built \(.+\); using WebAssembly$/);
    const status = JSON.parse(readFileSync(join(dir, "native", "build", "status.json"), "utf8"));
    assert.equal(status.ok, false);
    assert.ok(status.reason.length > 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("native: the process exits with the native thread pool started", { skip }, () => {
  const select = fileURLToPath(new URL("../src/engine/kernels/select.js", import.meta.url));
  const script = `const m = await import(${JSON.stringify(select)}); const k = await m.createKernels({ impl: "native", threads: 2 });
    const h = k.heap; k.gemm(false, false, 256, 256, 64, h.f32(256 * 64), h.f32(64 * 256), h.f32(256 * 256), false);
    console.log("done", k.name);`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(r.status, 0, `child exited with ${r.status} / ${r.signal}: ${r.stderr}`);
  assert.match(r.stdout, /done native/);
});

test("native: the FMA peak is measured on 1 and 2 threads", { skip }, () => {
  const one = nativeFmaPeak(1, 20)!;
  const two = nativeFmaPeak(2, 20)!;
  assert.ok(one.gflops > 1 && two.gflops > 1, `${one.gflops} ${two.gflops}`);
});

function fill<T extends Buf>(x: T, rng: Rng, scale = 1): T {
  for (let i = 0; i < x.length; i++) x[i] = Math.fround(rng.normal() * scale);
  return x;
}

/** Checks op(A)·op(B) rows against the float64 reference within (K+2)·u·Σ|a||b| (FMA only tightens it). */
function checkGemm(
  k: EngineKernels,
  rng: Rng,
  tA: boolean,
  tB: boolean,
  M: number,
  N: number,
  K: number,
  acc: boolean,
) {
  const heap = k.heap!;
  const A = fill(heap.f32(M * K), rng);
  const B = fill(heap.f32(K * N), rng);
  const C = fill(heap.f32(M * N), rng);
  const C0 = new Float64Array(C);
  k.gemm(tA, tB, M, N, K, A, B, C, acc);
  const absB = Float64Array.from(B, Math.abs);
  for (let i = 0; i < M; i += M > 64 ? 7 : 1) {
    const a = Float64Array.from({ length: K }, (_, kk) => (tA ? A[kk * M + i] : A[i * K + kk]));
    const want = C0.slice(i * N, (i + 1) * N);
    const bound = acc ? want.map(Math.abs) : new Float64Array(N);
    if (!acc) want.fill(0);
    gemmReference(false, tB, 1, N, K, a, B, want, true);
    gemmReference(false, tB, 1, N, K, a.map(Math.abs), absB, bound, true);
    for (let j = 0; j < N; j++) {
      const err = Math.abs(C[i * N + j] - want[j]);
      if (!(err <= (K + 2) * U * bound[j] + 1e-30))
        assert.fail(`tA=${tA} tB=${tB} M=${M} N=${N} K=${K} acc=${acc}: C[${i},${j}] error ${err}`);
    }
  }
  for (const x of [A, B, C]) heap.free(x);
}

for (const isa of isas.length > 0 ? isas : ["avx512" as const]) {
  test(
    `native: gemm (${isa}) within the float32 bound of the float64 reference: both paths, all transposes, remainders, K blocks`,
    { skip },
    async () => {
      const k = await createKernels({ impl: "native", threads: 2, isa });
      const rng = new Rng(1);
      // Dot-product path (M ≤ 24, NT), blocked path, several K blocks (K > 256) and N blocks
      // (N > 1,024), odd edges.
      const shapes = [
        [1, 1, 1],
        [3, 5, 7],
        [16, 384, 128],
        [24, 100, 300],
        [25, 70, 513],
        [13, 33, 9],
        [100, 64, 1024],
        [200, 97, 45],
        [64, 17, 600],
      ];
      for (const [M, N, K] of shapes)
        for (const [tA, tB] of [
          [false, false],
          [true, false],
          [false, true],
          [true, true],
        ])
          for (const acc of [false, true]) checkGemm(k, rng, tA, tB, M, N, K, acc);
    },
  );

  test(`native: every op (${isa}) agrees with the TypeScript op in float64`, { skip }, async (t) => {
    const k = await createKernels({ impl: "native", threads: 2, isa });
    for (const c of opCases) {
      const nat = runCase(c, k.ops, (n) => k.heap!.f32(n));
      const ref = runCase(c, jsOps(tsKernels), (n) => new Float64Array(n));
      // Reported: the worst output's max |native − reference| / max |reference|.
      let worst = 0;
      nat.forEach((x, i) => {
        const r = expectAllClose(x, ref[i], c.rtol, c.atol, `${isa} ${c.name} output ${i}`);
        let scale = 0;
        for (const v of ref[i]) scale = Math.max(scale, Math.abs(v));
        if (scale > 0) worst = Math.max(worst, r.maxAbs / scale);
      });
      t.diagnostic(`${isa} ${c.name}: max |Δ| / max |ref| ${worst.toExponential(2)}`);
    }
  });

  test(`native: 1 and 2 threads give bit-identical results for every op (${isa})`, { skip }, async () => {
    const one = await createKernels({ impl: "native", threads: 1, isa });
    const two = await createKernels({ impl: "native", threads: 2, isa });
    for (const c of bigCases) {
      const a = runCase(c, one.ops, (n) => one.heap!.f32(n));
      const b = runCase(c, two.ops, (n) => two.heap!.f32(n));
      a.forEach((x, i) =>
        assert.ok(
          Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(
            Buffer.from(b[i].buffer, b[i].byteOffset, b[i].byteLength),
          ),
          `${isa} ${c.name} output ${i} differs`,
        ),
      );
    }
  });

  test(
    `native: AdamW (${isa}) in float32 agrees with the TypeScript loop (float64 arithmetic); clip scaling is bit-identical`,
    { skip },
    async () => {
      const k = await createKernels({ impl: "native", threads: 2, isa });
      const rng = new Rng(3);
      const n = 200_003; // several chunks and a remainder
      const mk = () => fill(k.heap!.f32(n), rng, 0.1);
      const [p, g, m] = [mk(), mk(), mk()];
      const v = k.heap!.f32(n).map(() => Math.fround(Math.abs(rng.normal()) * 0.01));
      const mask = new Uint8Array(n).map((_, i) => (i % 3 === 0 ? 0 : 1));
      for (const [decay, maskArg] of [
        [1 - 3e-4 * 0.1, mask],
        [1, undefined],
        [0.5, mask], // a large decay makes a wrongly masked element obvious
      ] as const) {
        const [p2, m2, v2] = [Float32Array.from(p), Float32Array.from(m), Float32Array.from(v)];
        k.ops.adamwUpdate(p, g, m, v, maskArg, 0.9, 0.999, 1e-8, decay, 3e-4 / 0.1, Math.sqrt(1 - 0.999));
        adamwUpdate(p2, g, m2, v2, maskArg, 0.9, 0.999, 1e-8, decay, 3e-4 / 0.1, Math.sqrt(1 - 0.999));
        // A few float32 roundings per element: a few ulps of the terms summed (β1·m + (1−β1)·g may
        // cancel: |m|, |g| ≲ 0.5 here, so 6e-8 absolute), of v, and of the parameter plus its step
        // (stepSize = 3e-3).
        expectAllClose(m, m2, 3e-7, 6e-8, `${isa} m`);
        expectAllClose(v, v2, 3e-7, 1e-15, `${isa} v`);
        expectAllClose(p, p2, 3e-7, 3e-3 * 3e-7, `${isa} p`);
      }
      const g2 = Float32Array.from(g);
      k.ops.scaleInPlace(g, 0.37);
      scaleInPlace(g2, 0.37);
      assert.deepEqual(g, g2);
      let ss = 0;
      for (const x of g) ss += x * x;
      assert.ok(Math.abs(k.ops.sumOfSquares(g) - ss) <= 1e-12 * ss);
    },
  );

  test(
    `native: sampling a row (${isa}) draws the same token as the float64 walk and gives its log-prob`,
    { skip },
    async (t) => {
      const k = await createKernels({ impl: "native", threads: 1, isa });
      const rng = new Rng(4);
      const V = 1003;
      const logits = fill(k.heap!.f32(2 * V), rng, 3);
      logits[V + 5] = -Infinity;
      const lpN = new Float64Array(1);
      const lpJ = new Float64Array(1);
      let same = 0;
      for (let i = 0; i < 400; i++) {
        const u = rng.uniform();
        const invT = i % 2 === 0 ? 1 : 1 / 0.7;
        const tn = k.ops.sampleRow!(logits, V, V, invT, u, lpN);
        const tj = sampleRowJs(logits, V, V, invT, u, lpJ);
        if (tn === tj) same++;
        assert.notEqual(tn, 5, "a −∞ logit is never drawn");
        assert.ok(Math.abs(lpN[0] - logpOf(logits, V, V, invT, tn)) < 1e-5, `log-prob ${lpN[0]}`);
      }
      t.diagnostic(`${isa}: the same token for ${same} of 400 draws`);
      assert.ok(
        same >= 396,
        `same token for ${same} of 400 draws (differences only at float32 cumulative-sum boundaries)`,
      );
    },
  );

  test(
    `native: float64 and off-heap arrays fall back to the TypeScript ops; short buffers are rejected (${isa})`,
    { skip },
    async () => {
      const k = await createKernels({ impl: "native", threads: 1, isa });
      const x = new Float64Array([1, 2, 3, 4]);
      const out = new Float64Array(4);
      k.ops.geluForward(out, x, 4);
      const ref = new Float64Array(4);
      jsOps(tsKernels).geluForward(ref, x, 4);
      assert.deepEqual(out, ref);
      const off = new Float32Array(6);
      k.gemm(
        false,
        false,
        2,
        3,
        2,
        new Float32Array([1, 2, 3, 4]),
        new Float32Array([1, 0, 0, 0, 1, 0]),
        off,
        false,
      );
      assert.deepEqual(Array.from(off), [1, 2, 0, 3, 4, 0]);
      const h = k.heap!;
      assert.throws(
        () =>
          k.ops.layerNormForward(h.f32(10), h.f32(4), h.f32(4), h.f32(12), h.f32(3), h.f32(3), 4, 3, 1e-5),
        /layerNormForward out has 10 elements, needs 12/,
      );
      assert.throws(
        () => k.gemm(false, false, 4, 4, 4, h.f32(15), h.f32(16), h.f32(16), false),
        /gemm A has 15 elements, needs 16/,
      );
      assert.throws(
        () => k.ops.softmaxCrossEntropy(h.f32(2), h.f32(8), h.f32(8), new Int32Array([1, 4]), 2, 4, 1),
        /target 4 at row 1/,
      );
    },
  );
}

function logpOf(z: Buf, off: number, V: number, invT: number, t: number): number {
  let max = -Infinity;
  for (let i = 0; i < V; i++) max = Math.max(max, z[off + i]);
  let s = 0;
  for (let i = 0; i < V; i++) s += Math.exp((z[off + i] - max) * invT);
  return (z[off + t] - max) * invT - Math.log(s);
}

/** One op call on fresh inputs (same seed → same values on every run); returns the outputs to compare. */
interface OpCase {
  name: string;
  rtol: number;
  atol: number;
  run(ops: Ops, mk: (n: number, scale?: number) => Buf, zeros: (n: number) => Buf, rng: Rng): Buf[];
}

function runCase(c: OpCase, ops: Ops, alloc: (n: number) => Buf): Buf[] {
  const rng = new Rng(hash(c.name));
  const mk = (n: number, scale = 1) => fill(alloc(n), rng, scale);
  const zeros = (n: number) => alloc(n);
  return c.run(ops, mk, zeros, rng);
}

function hash(s: string): number {
  let h = 7;
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
  return h;
}

function makeCases(N: number, C: number, att: [number, number, number, number, number]): OpCase[] {
  const [B, T, Hq, Hkv, hd] = att;
  const ids = (rng: Rng, n: number, V: number) => Int32Array.from({ length: n }, () => rng.int(V));
  return [
    {
      name: "layerNorm forward and backward",
      rtol: 1e-5,
      atol: 2e-5,
      run(ops, mk, zeros) {
        const [out, mean, rstd] = [zeros(N * C), zeros(N), zeros(N)];
        const [x, w, b] = [mk(N * C, 2), mk(C), mk(C)];
        ops.layerNormForward(out, mean, rstd, x, w, b, N, C, 1e-5);
        const [dx, dw, db, dy] = [mk(N * C), mk(C), mk(C), mk(N * C)];
        ops.layerNormBackward(dx, dw, db, dy, x, w, mean, rstd, N, C);
        return [out, mean, rstd, dx, dw, db];
      },
    },
    {
      name: "rmsNorm forward and backward",
      rtol: 1e-5,
      atol: 2e-5,
      run(ops, mk, zeros) {
        const [out, rstd] = [zeros(N * C), zeros(N)];
        const [x, w] = [mk(N * C, 2), mk(C)];
        ops.rmsNormForward(out, rstd, x, w, N, C, 1e-6);
        const [dx, dw, dy] = [mk(N * C), mk(C), mk(N * C)];
        ops.rmsNormBackward(dx, dw, dy, x, w, rstd, N, C);
        return [out, rstd, dx, dw];
      },
    },
    {
      name: "GELU and SwiGLU forward and backward",
      rtol: 1e-5,
      atol: 1e-6,
      run(ops, mk, zeros) {
        const n = N * C;
        const [x, up, dy] = [mk(n, 3), mk(n), mk(n)];
        const [g, s] = [zeros(n), zeros(n)];
        ops.geluForward(g, x, n);
        const dx = mk(n);
        ops.geluBackwardFromOutput(dx, x, g, dy, n);
        ops.swigluForward(s, x, up, n);
        const [dg, du] = [mk(n), mk(n)];
        ops.swigluBackward(dg, du, dy, x, up, n);
        return [g, dx, s, dg, du];
      },
    },
    {
      name: "residual add, accumulate, zero, row copies",
      rtol: 1.2e-7, // one float32 rounding of the sum
      atol: 0,
      run(ops, mk, zeros) {
        const n = N * C;
        const [a, b, d] = [mk(n), mk(n), mk(n)];
        const out = zeros(n);
        ops.addInto(out, a, b, n);
        ops.accumulate(d, a, n - 3);
        const z = mk(n);
        ops.zero(z, n - 5);
        const wide = mk(N * 3 * C);
        const part = zeros(N * C);
        ops.copyRows(part, 0, C, wide, C, 3 * C, N, C);
        ops.copyRows(wide, 2 * C, 3 * C, a, 0, C, N - 1, C);
        return [out, d, z, part, wide];
      },
    },
    {
      name: "embeddings and positions forward and backward (repeated ids)",
      rtol: 1e-6,
      atol: 1e-6,
      run(ops, mk, zeros, rng) {
        const V = 7;
        const [wte, wpe] = [mk(V * C), mk(N * C)];
        const id = ids(rng, N, V);
        const pos = Int32Array.from({ length: N }, (_, i) => N - 1 - i);
        const x = zeros(N * C);
        ops.embeddingForward(x, id, wte, N, C);
        ops.addPositionForward(x, wpe, pos, N, C);
        const [dwte, dwpe, dy] = [mk(V * C), mk(N * C), mk(N * C)];
        ops.embeddingBackward(dwte, dy, id, N, C);
        ops.addPositionBackward(dwpe, dy, pos, N, C);
        return [x, dwte, dwpe];
      },
    },
    {
      name: "RoPE forward and inverse",
      rtol: 1e-5,
      atol: 1e-5,
      run(ops, mk, _zeros, rng) {
        const H = 3;
        const hdr = 2 * Math.max(1, (C / 6) | 0);
        const { cos, sin } = ropeTables(hdr, 300, 10000);
        const pos = Int32Array.from({ length: N }, () => rng.int(300));
        const x = mk(N * H * hdr);
        ops.ropeApply(x, pos, cos, sin, N, H, hdr, false);
        const y = Float64Array.from(x);
        ops.ropeApply(x, pos, cos, sin, N, H, hdr, true);
        return [y, x];
      },
    },
    {
      name: "linear forward (bias, none) and backward",
      rtol: 1e-4,
      atol: 1e-4,
      run(ops, mk, zeros) {
        const [IC, OC] = [C, C + 5];
        const [x, w, b] = [mk(N * IC), mk(OC * IC), mk(OC)];
        const [y1, y2] = [zeros(N * OC), zeros(N * OC)];
        ops.linearForward(y1, x, w, b, N, IC, OC);
        ops.linearForward(y2, x, w, null, N, IC, OC);
        const [dx, dw, db, dy] = [mk(N * IC), mk(OC * IC), mk(OC), mk(N * OC)];
        ops.linearBackward(dx, dw, db, dy, x, w, N, IC, OC);
        ops.linearBackward(null, dw, null, dy, x, w, N, IC, OC);
        return [y1, y2, dx, dw, db];
      },
    },
    {
      name: "attention forward and backward (grouped-query)",
      rtol: 1e-4,
      atol: 2e-5,
      run(ops, mk, zeros) {
        const [q, key, v] = [mk(B * T * Hq * hd), mk(B * T * Hkv * hd), mk(B * T * Hkv * hd)];
        const [out, att] = [zeros(B * T * Hq * hd), zeros(B * Hq * T * T)];
        const scratch = zeros(7 * T * hd + T * T + 64);
        ops.attentionForward(out, att, q, key, v, scratch, B, T, Hq, Hkv, hd);
        const [dq, dk, dv, dy] = [
          mk(B * T * Hq * hd),
          mk(B * T * Hkv * hd),
          mk(B * T * Hkv * hd),
          mk(B * T * Hq * hd),
        ];
        ops.attentionBackward(dq, dk, dv, dy, att, q, key, v, scratch, B, T, Hq, Hkv, hd);
        return [out, att, dq, dk, dv];
      },
    },
    {
      name: "kv cache write and decode attention",
      rtol: 1e-5,
      atol: 1e-5,
      run(ops, mk, zeros, rng) {
        const Tmax = T + 3;
        const [kc, vc] = [mk(B * Hkv * Tmax * hd), mk(B * Hkv * Tmax * hd)];
        const active = Uint8Array.from({ length: B }, (_, b) => (b % 3 === 1 ? 0 : 1));
        const pos = Int32Array.from({ length: B }, () => rng.int(Tmax));
        const [k1, v1, q] = [mk(B * Hkv * hd), mk(B * Hkv * hd), mk(B * Hq * hd)];
        ops.kvCacheWrite(kc, vc, k1, v1, pos, active, B, Tmax, Hkv, hd);
        const lengths = Int32Array.from(pos, (p) => p + 1);
        const out = zeros(B * Hq * hd);
        ops.attentionDecode(out, q, kc, vc, lengths, active, B, Tmax, Hq, Hkv, hd);
        return [kc, vc, out];
      },
    },
    {
      name: "softmax cross-entropy (an ignored row, large logits)",
      rtol: 1e-5,
      atol: 1e-6,
      run(ops, mk, zeros, rng) {
        const V = C + 3;
        const logits = mk(N * V, 4);
        logits[5] = 1e4;
        const targets = Int32Array.from({ length: N }, (_, n) => (n === 2 ? -1 : rng.int(V)));
        const [losses, dl] = [zeros(N), mk(N * V)];
        ops.softmaxCrossEntropy(losses, dl, logits, targets, N, V, 1 / N);
        return [losses, dl];
      },
    },
  ];
}

const opCases = makeCases(45, 37, [3, 19, 4, 2, 24]);
// Large enough that every op splits into several tasks.
const bigCases = makeCases(1024, 128, [4, 64, 6, 2, 32]);
