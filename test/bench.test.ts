/**
 * The benchmark harness (bench/): a quick run on the tiny models produces a report that passes the
 * schema check (fields present, numbers finite and positive), on every tier present, with the
 * known parameter counts of the bench models; profiles account for the step; the stage-scaling
 * fit recovers known coefficients; the validator itself rejects broken reports; the CLI prints the
 * same JSON it writes with --out and rejects bad arguments with one line. No timing assertions.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runSuite } from "../bench/suite.js";
import {
  bestEngine,
  computeRatios,
  validateReport,
  type BenchReport,
  type ModelReport,
} from "../bench/report.js";
import { leastSquares } from "../bench/stages.js";
import { benchModels, paramCount, QUICK_SETTINGS } from "../bench/workloads.js";
import { describeKernels } from "../src/engine/kernels/select.js";
import type { TorchReport } from "../bench/torch.js";

const RUN_JS = fileURLToPath(new URL("../bench/run.js", import.meta.url));
const MISSING_PYTHON = "/nonexistent/python-for-bench-test";

let cached: Promise<BenchReport> | null = null;
const native = describeKernels().native.available;
const tiers = native ? (["wasm", "native"] as const) : (["wasm"] as const);

/** One quick suite run on the tiny models without torch, every tier present, shared by the tests below. */
function quickReport(): Promise<BenchReport> {
  cached ??= runSuite({
    mode: "quick",
    models: ["tiny", "tiny-llama"],
    engines: tiers.flatMap((impl) => [
      { impl, threads: 1 },
      { impl, threads: 2 },
    ]),
    matmulOnly: [{ impl: "ts", threads: 1 }],
    settings: { ...QUICK_SETTINGS, matmul: { M: 64, K: 32, N: 128, warmup: 1, repeats: 2 } },
    profile: true,
    stages: null,
    pythons: [MISSING_PYTHON],
    torchThreads: 2,
    command: "test",
    log: () => {},
  });
  return cached;
}

test("the bakeoff model has the 809,728 parameters of the engine bakeoff; llama-135m has SmolLM2-135M's", () => {
  const m = benchModels();
  assert.equal(paramCount(m.bakeoff.config), 809_728);
  assert.equal(m.bakeoff.config.tiedEmbeddings, false);
  assert.equal(m.small.config.vocabSize, 64);
  assert.equal(m.small.config.maxSeqLen, 64);
  // SmolLM2-135M: 134,515,008 parameters with tied embeddings.
  assert.equal(paramCount(m["llama-135m"].config), 134_515_008);
  assert.equal(m["llama-135m"].config.maxSeqLen, 256);
});

test("a quick run on the tiny model gives a valid report without torch", async () => {
  const rep = await quickReport();
  assert.deepEqual(validateReport(rep), []);
  assert.equal(rep.torch, null);
  assert.equal(rep.ratios, null);
  assert.equal(rep.ratios_min, null);
  assert.match(rep.torch_reason ?? "", /nonexistent\/python-for-bench-test: not found/);
  const tiny = rep.models[0];
  const labels = tiers.flatMap((t) => [`${t}-1t`, `${t}-2t`]);
  assert.deepEqual(Object.keys(tiny.train).sort(), [...labels].sort());
  assert.deepEqual(Object.keys(rep.matmul.results).sort(), ["ts-1t", ...labels].sort());
  for (const e of rep.engines) assert.equal(e.isa !== null, e.impl === "native", `${e.label} says its ISA`);
  // Same seed, same data and bit-identical kernels for any thread count: the same losses per tier.
  for (const m of rep.models)
    for (const t of tiers) {
      assert.equal(m.train[`${t}-1t`].loss_first, m.train[`${t}-2t`].loss_first, `${m.name} ${t}`);
      assert.equal(m.train[`${t}-1t`].loss_last, m.train[`${t}-2t`].loss_last, `${m.name} ${t}`);
    }
  // Random tokens over 16 ids: the first loss is near ln 16 (small init gives near-uniform logits).
  for (const t of Object.values(tiny.train)) assert.ok(Math.abs(t.loss_first - Math.log(16)) < 0.1);
  for (const t of Object.values(tiny.train)) {
    assert.equal(t.step_ms.length, QUICK_SETTINGS.trainSteps);
    assert.equal(t.tokens_per_step, QUICK_SETTINGS.batch * QUICK_SETTINGS.seq);
  }
  for (const r of Object.values(tiny.peak_rss_mib)) assert.ok(r > 10, `peak RSS ${r} MiB`);
  assert.equal(rep.summary.models[0].engine, native ? "native-2t" : "wasm-2t");
  assert.equal(rep.kernels.auto, native ? "native" : "wasm");
  assert.equal(rep.fma_peak !== null, native);
});

test("the profiles time every op in place: phases add up, ops add up to the step minus what no op covers", async () => {
  const rep = await quickReport();
  assert.equal(rep.profiles.length, native ? 3 : 2); // wasm on the first model (if native runs), best tier on each
  for (const p of rep.profiles) {
    const sum = Object.values(p.phases).reduce((a, x) => a + x, 0);
    assert.ok(Math.abs(sum - p.step_ms) <= 1e-3 * p.step_ms, `phases ${sum} vs step ${p.step_ms}`);
    const ops = p.ops.reduce((a, o) => a + o.ms, 0);
    assert.ok(Math.abs(ops + p.unattributed_ms - p.step_ms) <= 1e-3 * p.step_ms);
    // Every linear layer, forward and backward, once per step: 4 per GPT-2 block + lm_head
    // (7 per Llama block: q, k, v, o, gate, up, down).
    const cfg = benchModels()[p.model].config;
    const perLayer = cfg.arch === "gpt2" ? 4 : 7;
    const calls = (kind: string) =>
      p.ops.filter((o) => o.op.startsWith(kind + " ")).reduce((a, o) => a + o.calls, 0);
    assert.equal(calls("linearForward"), perLayer * cfg.nLayers + 1, `${p.model} ${p.engine}`);
    assert.equal(calls("linearBackward"), perLayer * cfg.nLayers + 1);
    assert.ok(p.ops.some((o) => o.op === "attentionBackward"));
    assert.ok(p.sample.ops.some((o) => o.op === "attentionDecode"));
  }
});

test("the stage-scaling fit recovers known coefficients", () => {
  const pts = [
    [1, 100],
    [2, 100],
    [3, 250],
    [6, 80],
    [2, 400],
    [6, 300],
  ];
  const X = pts.map(([a, t]) => [1, a, t, a * t]);
  const y = pts.map(([a, t]) => 5 + 2 * a + 0.5 * t + 0.25 * a * t);
  const b = leastSquares(X, y);
  [5, 2, 0.5, 0.25].forEach((v, i) => assert.ok(Math.abs(b[i] - v) < 1e-9, `b${i} = ${b[i]}`));
  assert.throws(
    () =>
      leastSquares(
        [
          [1, 1],
          [1, 1],
        ],
        [1, 2],
      ),
    /singular/,
  );
  assert.equal(bestEngine(["wasm-1t", "wasm-2t", "native-1t", "native-2t"]), "native-2t");
  assert.equal(bestEngine(["wasm-1t", "wasm-2t"]), "wasm-2t");
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
    '$.schema: expected "sat-llm-bench/2", got "other"',
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
      [
        RUN_JS,
        "--quick",
        "--models",
        "tiny",
        "--threads",
        "1",
        "--no-torch",
        "--no-profile",
        "--no-stages",
        "--out",
        out,
      ],
      {
        encoding: "utf8",
      },
    );
    assert.equal(r.status, 0, r.stderr);
    const printed = JSON.parse(r.stdout) as BenchReport;
    assert.deepEqual(JSON.parse(readFileSync(out, "utf8")), printed);
    assert.deepEqual(validateReport(printed), []);
    assert.equal(printed.torch_reason, "disabled with --no-torch");
    assert.deepEqual(printed.profiles, []);
    assert.equal(printed.stage_scaling, null);
    assert.match(r.stderr, /train tok\/s/);

    const bad = spawnSync(process.execPath, [RUN_JS, "--models", "nope", "--no-torch"], { encoding: "utf8" });
    assert.equal(bad.status, 2);
    assert.equal(bad.stdout, "");
    assert.match(
      bad.stderr,
      /^bench: unknown model "nope" \(choose from bakeoff, small, tiny, llama-135m, tiny-llama\)\n$/,
    );
    const badTier = spawnSync(process.execPath, [RUN_JS, "--tiers", "gpu"], { encoding: "utf8" });
    assert.equal(badTier.status, 2);
    assert.match(badTier.stderr, /--tiers: expected wasm or native, got "gpu"/);
    const badThreads = spawnSync(process.execPath, [RUN_JS, "--threads", "0"], { encoding: "utf8" });
    assert.equal(badThreads.status, 2);
    assert.match(badThreads.stderr, /--threads: expected positive integers, got "0"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
