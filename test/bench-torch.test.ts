/**
 * The PyTorch reference of the benchmark, when a Python with torch is available (skipped
 * otherwise, e.g. in CI): the script builds models with exactly our parameter counts, and a quick
 * suite run includes its results and the ratios in a valid report.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { runSuite } from "../bench/suite.js";
import { validateReport } from "../bench/report.js";
import { TORCH_SCRIPT, findTorchPython, benchPythonCandidates } from "../bench/torch.js";
import { benchModels, paramCount, QUICK_SETTINGS } from "../bench/workloads.js";

const probe = findTorchPython(benchPythonCandidates());
const skip = probe.ok ? false : `no torch: ${probe.reason}`;

test("the torch models have our parameter counts", { skip }, () => {
  if (!probe.ok) return;
  const models = Object.values(benchModels()).map((m) => ({ name: m.name, config: m.config }));
  const spec = { threads: 1, settings: QUICK_SETTINGS, models };
  const r = spawnSync(probe.python, [TORCH_SCRIPT, "--spec", "-", "--params-only"], {
    input: JSON.stringify(spec),
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { models: Record<string, { params: number }> };
  for (const m of Object.values(benchModels()))
    assert.equal(out.models[m.name].params, paramCount(m.config), m.name);
  assert.equal(out.models.bakeoff.params, 809_728);
});

test("a quick run with torch reports its results and the ratios", { skip }, async () => {
  if (!probe.ok) return;
  const rep = await runSuite({
    mode: "quick",
    models: ["tiny"],
    engines: [{ impl: "wasm", threads: 1 }],
    matmulOnly: [],
    // As small as the schema allows: this test is about the plumbing, and python startup dominates.
    settings: {
      ...QUICK_SETTINGS,
      batch: 2,
      seq: 8,
      warmupSteps: 0,
      trainSteps: 1,
      sampleSequences: 2,
      sampleSteps: 4,
      sampleRepeats: 1,
      matmul: { M: 64, K: 32, N: 128, warmup: 1, repeats: 2 },
    },
    profile: false,
    stages: null,
    pythons: [probe.python],
    torchThreads: 1,
    command: "test",
    log: () => {},
  });
  assert.deepEqual(validateReport(rep), []);
  assert.ok(rep.torch, rep.torch_reason ?? "");
  assert.equal(rep.torch.threads, 1);
  assert.equal(rep.torch.models.tiny.params, rep.models[0].params);
  assert.ok(rep.torch.models.tiny.peak_rss_mib > 10);
  // Both start from GPT-2 init on random tokens over 16 ids: first losses near ln 16.
  assert.ok(Math.abs(rep.torch.models.tiny.train.loss_first - Math.log(16)) < 0.1);
  const ratio = rep.ratios!.train_tok_s.tiny["wasm-1t"];
  const expected = rep.models[0].train["wasm-1t"].tok_s / rep.torch.models.tiny.train.tok_s;
  assert.ok(Math.abs(ratio - expected) <= 1e-3 * expected);
  assert.ok(rep.ratios_min!.train_tok_s.tiny["wasm-1t"] > 0);
});
