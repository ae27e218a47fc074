/**
 * The benchmark harness (bench/): a quick run on the tiny model produces a report that passes the
 * schema check (fields present, numbers finite and positive), with the known parameter count of
 * the bakeoff model; the validator itself rejects broken reports; the CLI prints the same JSON it
 * writes with --out and rejects bad arguments with one line. No timing assertions.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runSuite } from "../bench/suite.js";
import { computeRatios, validateReport, type BenchReport, type ModelReport } from "../bench/report.js";
import { benchModels, paramCount, QUICK_SETTINGS } from "../bench/workloads.js";
import type { TorchReport } from "../bench/torch.js";

const RUN_JS = fileURLToPath(new URL("../bench/run.js", import.meta.url));
const MISSING_PYTHON = "/nonexistent/python-for-bench-test";

let cached: Promise<BenchReport> | null = null;
/** One quick suite run on the tiny model without torch, shared by the tests below. */
function quickReport(): Promise<BenchReport> {
  cached ??= runSuite({
    mode: "quick",
    models: ["tiny"],
    engines: [
      { impl: "wasm", threads: 1 },
      { impl: "wasm", threads: 2 },
    ],
    matmulOnly: [{ impl: "ts", threads: 1 }],
    settings: { ...QUICK_SETTINGS, matmul: { M: 64, K: 32, N: 128, warmup: 1, repeats: 2 } },
    profile: true,
    pythons: [MISSING_PYTHON],
    torchThreads: 2,
    command: "test",
    log: () => {},
  });
  return cached;
}

test("the bakeoff model has the 809,728 parameters of the engine bakeoff", () => {
  const m = benchModels();
  assert.equal(paramCount(m.bakeoff.config), 809_728);
  assert.equal(m.bakeoff.config.tiedEmbeddings, false);
  assert.equal(m.small.config.vocabSize, 64);
  assert.equal(m.small.config.maxSeqLen, 64);
});

test("a quick run on the tiny model gives a valid report without torch", async () => {
  const rep = await quickReport();
  assert.deepEqual(validateReport(rep), []);
  assert.equal(rep.torch, null);
  assert.equal(rep.ratios, null);
  assert.equal(rep.ratios_min, null);
  assert.match(rep.torch_reason ?? "", /nonexistent\/python-for-bench-test: not found/);
  const tiny = rep.models[0];
  assert.deepEqual(Object.keys(tiny.train).sort(), ["wasm-1t", "wasm-2t"]);
  assert.deepEqual(Object.keys(rep.matmul.results).sort(), ["ts-1t", "wasm-1t", "wasm-2t"]);
  // Same seed, same data and bit-identical kernels for any thread count: the same losses.
  assert.equal(tiny.train["wasm-1t"].loss_first, tiny.train["wasm-2t"].loss_first);
  assert.equal(tiny.train["wasm-1t"].loss_last, tiny.train["wasm-2t"].loss_last);
  // Random tokens over 16 ids: the first loss is near ln 16 (small init gives near-uniform logits).
  assert.ok(Math.abs(tiny.train["wasm-1t"].loss_first - Math.log(16)) < 0.1);
  for (const t of Object.values(tiny.train)) {
    assert.equal(t.step_ms.length, QUICK_SETTINGS.trainSteps);
    assert.equal(t.tokens_per_step, QUICK_SETTINGS.batch * QUICK_SETTINGS.seq);
  }
  assert.equal(rep.summary?.engine, "wasm-2t");
});

test("the profile splits the step into phases that add up, with gemm inside forward and backward", async () => {
  const p = (await quickReport()).profile!;
  const sum = Object.values(p.phases).reduce((a, x) => a + x.ms, 0);
  assert.ok(Math.abs(sum - p.step_ms) <= 1e-3 * p.step_ms, `phases ${sum} vs step ${p.step_ms}`);
  for (const ph of Object.values(p.phases)) assert.ok(ph.gemm_ms <= ph.ms && ph.rest_ms >= 0);
  assert.equal(p.phases.optimizer.gemm_ms, 0);
  // A GPT-2 step: 4 linears per layer + lm_head forward, two gemms (dinp, dweight) each backward;
  // linear gemms are the ones with a B·T dimension (attention products are per sequence and head).
  const L = benchModels().tiny.config.nLayers;
  const BT = QUICK_SETTINGS.batch * QUICK_SETTINGS.seq;
  const linear = p.gemm_shapes.filter((g) => g.shape.split(" ")[1].split("x").map(Number).includes(BT));
  assert.equal(
    linear.reduce((a, g) => a + g.calls_per_step, 0),
    3 * (4 * L + 1),
  );
});

test("the validator names the broken field", async () => {
  const rep = await quickReport();
  const broken = structuredClone(rep) as unknown as Record<string, any>;
  broken.models[0].train["wasm-2t"].tok_s = NaN;
  delete broken.machine;
  broken.torch_reason = null;
  const errs = validateReport(broken);
  assert.ok(
    errs.some((e) => e.startsWith("$.models[0].train.wasm-2t.tok_s:")),
    errs.join("\n"),
  );
  assert.ok(
    errs.some((e) => e.startsWith("$.machine:")),
    errs.join("\n"),
  );
  assert.ok(
    errs.some((e) => e.startsWith("$.torch_reason:")),
    errs.join("\n"),
  );
  assert.deepEqual(validateReport({ schema: "other" }).slice(0, 1), [
    '$.schema: expected "sat-llm-bench/1", got "other"',
  ]);
});

test("ratios are our throughput over PyTorch's", () => {
  const models = [
    {
      name: "m",
      train: { "wasm-2t": { tok_s: 3000 } },
      sample: { "wasm-2t": { tok_s: 500 } },
    },
  ] as unknown as ModelReport[];
  const torch = {
    models: { m: { train: { tok_s: 1500 }, sample: { tok_s: 2000 } } },
    matmul: { gflops: 40 },
  } as unknown as TorchReport;
  const r = computeRatios(models, { "wasm-2t": { gflops: 10, median_ms: 1, run_ms: [1] } }, torch);
  assert.equal(r.train_tok_s.m["wasm-2t"], 2);
  assert.equal(r.sample_tok_s.m["wasm-2t"], 0.25);
  assert.equal(r.matmul_gflops["wasm-2t"], 0.25);
  // From the fastest runs: 1000 tokens in 100 ms (ours) vs 1000 tokens in 400 ms (torch) is 4x.
  const runs = (ms: number[]) => ({
    tokens_per_step: 1000,
    tokens: 1000,
    step_ms: ms,
    round_ms: ms,
    run_ms: ms,
  });
  const oursRuns = [
    { name: "m", train: { a: runs([300, 100, 200]) }, sample: { a: runs([50, 60]) } },
  ] as unknown as ModelReport[];
  const torchRuns = {
    models: { m: { train: runs([400, 900]), sample: runs([25]) } },
    matmul: runs([8, 2]),
  } as unknown as TorchReport;
  const rm = computeRatios(oursRuns, { a: runs([4, 5]) as never }, torchRuns, "min");
  assert.equal(rm.train_tok_s.m.a, 4);
  assert.equal(rm.sample_tok_s.m.a, 0.5);
  assert.equal(rm.matmul_gflops.a, 0.5);
});

test("the CLI prints the report it writes with --out, and rejects bad arguments", () => {
  const dir = mkdtempSync(join(tmpdir(), "bench-test-"));
  try {
    const out = join(dir, "sub", "report.json");
    const r = spawnSync(
      process.execPath,
      [RUN_JS, "--quick", "--models", "tiny", "--threads", "1", "--no-torch", "--no-profile", "--out", out],
      {
        encoding: "utf8",
      },
    );
    assert.equal(r.status, 0, r.stderr);
    const printed = JSON.parse(r.stdout) as BenchReport;
    assert.deepEqual(JSON.parse(readFileSync(out, "utf8")), printed);
    assert.deepEqual(validateReport(printed), []);
    assert.equal(printed.torch_reason, "disabled with --no-torch");
    assert.equal(printed.profile, null);
    assert.match(r.stderr, /train tok\/s/);

    const bad = spawnSync(process.execPath, [RUN_JS, "--models", "nope", "--no-torch"], { encoding: "utf8" });
    assert.equal(bad.status, 2);
    assert.equal(bad.stdout, "");
    assert.match(bad.stderr, /^bench: unknown model "nope" \(choose from bakeoff, small, tiny\)\n$/);
    const badThreads = spawnSync(process.execPath, [RUN_JS, "--threads", "0"], { encoding: "utf8" });
    assert.equal(badThreads.status, 2);
    assert.match(badThreads.stderr, /--threads: expected positive integers, got "0"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
