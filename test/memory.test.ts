/**
 * The memory estimate of a stage and of an evaluation (issue 11, point 5): the pure estimator
 * (src/app/memory.ts) against real runs, each in its own process: the engine part against the
 * engine heap's actual allocations, the whole against the growth of peak RSS during one stage.
 * Stated factors: the engine part is within [1, 2]× the bytes the engine allocated, the whole
 * within [0.8, 2]× the measured peak-RSS growth (fixed overheads, such as code compiled during the
 * stage, do not scale with the setting) (the estimate counts allocated, not touched, pages,
 * and sequences at their caps). Then the CLI: settings that cannot fit are refused at once, in one
 * line, with the estimate and the largest setting that fits, leaving no run directory.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  estimateEval,
  estimateStage,
  formatBytes,
  largestFitting,
  type ModelDims,
  type StageShape,
} from "../src/app/memory.js";
import { jsHeapLimit } from "../src/io/sysmem.js";
import { readModelConfig } from "../src/model/checkpoint.js";
import { buildLayout } from "../src/model/layout.js";
import { modelDims } from "../src/app/memory.js";
import { errorLines, fixtureAgent, repo, startSat } from "./sat-process.js";

const tmp = mkdtempSync(join(tmpdir(), "sat-memory-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

const agentCfg = readModelConfig(fixtureAgent);
const dims: ModelDims = modelDims(agentCfg, buildLayout(agentCfg).total);

/** Runs one stage of a two-agent team in a fresh process; returns its measurements and the estimate. */
function measureStage(prompts: number, group: number, protocol: "relay" | "independent") {
  const dist = join(repo, "dist", "src");
  const code = `
    import { createEngine } from "${dist}/engine/engine.js";
    import { loadModel } from "${dist}/model/checkpoint.js";
    import { validateConfig } from "${dist}/config/index.js";
    import { TeamTrainer } from "${dist}/train/team.js";
    import { stageConfigOf, rolloutOptionsOf, lmOptimOf, taskOf, teamTokenizer } from "${dist}/app/setup.js";
    import { estimateStage, stageShapeOf, modelDims } from "${dist}/app/memory.js";
    import { longestPrompt } from "${dist}/app/train.js";
    const A = ${JSON.stringify(fixtureAgent)};
    const cfg = validateConfig({
      team: { n_agents: 2, protocol: "${protocol}", agent_checkpoints: [A, A] },
      tasks: { difficulty: 2 },
      rollout: { prompts_per_step: ${prompts}, n: ${group}, max_prompt_length: 16, max_completion_length: 40 },
      algo: { ppo_mini_batch_size: 4, kl_radius: 0.3 },
    });
    const engine = await createEngine({ threads: 1 });
    const tok = teamTokenizer(cfg);
    const task = await taskOf(cfg, tok);
    const models = [0, 1].map(() => loadModel(A, engine, tok));
    const heap = engine.kernels.heap;
    const trainer = new TeamTrainer(models, tok, {
      algo: "sat", stage: stageConfigOf(cfg, 2), rollout: rolloutOptionsOf(cfg, 2), groupSize: ${group},
      klCoef: 0.1, optim: lmOptimOf(cfg), task, difficulty: 2, heldOutPrompts: cfg.algo.cert_prompts, seed: 1,
    });
    globalThis.gc?.();
    const rssBefore = process.resourceUsage().maxRSS * 1024;
    const engineBefore = heap.bytesInUse();
    await trainer.stage();
    const out = {
      rssGrowth: process.resourceUsage().maxRSS * 1024 - rssBefore,
      engine: heap.bytesInUse() - engineBefore,
      estimate: estimateStage(modelDims(models[0].cfg, models[0].params.length), stageShapeOf(cfg, 2, longestPrompt(cfg, task, tok))),
    };
    await engine.close();
    console.log(JSON.stringify(out));
  `;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", code], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as {
    rssGrowth: number;
    engine: number;
    estimate: ReturnType<typeof estimateStage>;
  };
}

test("safety 5 memory: the estimate against real stages: engine part within [1, 2]× the engine's allocations, total within [0.8, 2]× the peak-RSS growth", (t) => {
  for (const [prompts, group, protocol] of [
    [32, 8, "relay"],
    [16, 8, "independent"],
  ] as const) {
    const m = measureStage(prompts, group, protocol);
    const engineRatio = m.estimate.engine / m.engine;
    const rssRatio = m.estimate.total / m.rssGrowth;
    t.diagnostic(
      `${prompts}×${group} ${protocol}: estimate ${formatBytes(m.estimate.total)} (engine ${formatBytes(m.estimate.engine)}); ` +
        `engine allocated ${formatBytes(m.engine)} (×${engineRatio.toFixed(2)}), peak RSS grew ${formatBytes(m.rssGrowth)} (×${rssRatio.toFixed(2)})`,
    );
    assert.ok(engineRatio >= 1 && engineRatio <= 2, `engine estimate ×${engineRatio.toFixed(2)}`);
    assert.ok(rssRatio >= 0.8 && rssRatio <= 2, `total estimate ×${rssRatio.toFixed(2)} of the RSS growth`);
  }
});

test("safety 5 memory: the estimate grows with what it should and largestFitting finds the boundary", () => {
  const shape: StageShape = {
    agents: 2,
    protocol: "relay",
    prompts: 8,
    group: 8,
    promptTokens: 8,
    completionTokens: 34,
    miniBatchPrompts: 4,
    heldOutPrompts: 8,
    resample: false,
    critic: false,
  };
  const base = estimateStage(dims, shape);
  const doubled = estimateStage(dims, { ...shape, prompts: 16, heldOutPrompts: 16 });
  // Rollouts and log-prob rows scale with the trajectories; activations too, but for the fixed
  // minibatch buffers; the weights do not.
  assert.ok(Math.abs(doubled.parts.rollouts / base.parts.rollouts - 2) < 1e-9);
  assert.ok(Math.abs(doubled.parts.logprobs / base.parts.logprobs - 2) < 1e-9);
  const act = doubled.parts.activations / base.parts.activations;
  assert.ok(act > 1.8 && act < 2, `activations ×${act}`);
  assert.equal(doubled.parts.weights, base.parts.weights);
  assert.ok(estimateStage(dims, { ...shape, critic: true }).parts.weights > base.parts.weights);
  const evalSmall = estimateEval(dims, {
    agents: 2,
    protocol: "relay",
    prompts: 100,
    samples: 4,
    promptTokens: 8,
    completionTokens: 34,
    batchPrompts: 32,
  });
  assert.ok(evalSmall.total > 0 && evalSmall.parts.logprobs === 0);
  for (const limit of [1, 7, 1000, 65536])
    assert.equal(
      largestFitting(65536, (v) => v <= limit),
      limit,
    );
  assert.equal(
    largestFitting(10, () => false),
    0,
  );
  assert.equal(formatBytes(1536), "1.54 KB");
  assert.equal(formatBytes(4.29e9), "4.29 GB");
});

test("safety 5 memory: sat train with rollout.prompts_per_step=65536 and rollout.n=1024 is refused at once with the estimate and the largest setting that fits", async () => {
  const out = join(tmp, "huge");
  const r = await startSat(
    [
      "train",
      "-q",
      "--set",
      "rollout.prompts_per_step=65536",
      "--set",
      "rollout.n=1024",
      "--output-dir",
      out,
    ],
    tmp,
  ).done;
  assert.equal(r.code, 2);
  const lines = errorLines(r);
  assert.equal(lines.length, 1, r.stderr);
  const m =
    /^sat: rollout\.prompts_per_step=65536 × rollout\.n=1024: a stage needs about [\d.]+ TB \(activations and KV caches [\d.]+ TB, .*log-prob rows \(S, V\) [\d.]+ [GT]B.*\) but (?:the engine's float heap holds at most 4\.29 GB|V8's heap limit is [\d.]+ GB) \([^)]*\); (the largest rollout\.prompts_per_step that fits with rollout\.n=1024 is (\d+).*|even rollout\.prompts_per_step=1 does not fit with rollout\.n=1024; the largest rollout\.n that fits with one prompt is (\d+))$/.exec(
      lines[0],
    );
  assert.ok(m, lines[0]);
  assert.ok(r.seconds < 20, `refused after ${r.seconds} s`);
  assert.ok(!existsSync(out), "no run directory");
  // The suggestion is the boundary: one more is refused the same way.
  const over = m[2]
    ? ["--set", `rollout.prompts_per_step=${Number(m[2]) + 1}`, "--set", "rollout.n=1024"]
    : ["--set", "rollout.prompts_per_step=1", "--set", `rollout.n=${Number(m[3]) + 1}`];
  const again = await startSat(
    ["train", "-q", ...over, "--set", "algo.ppo_mini_batch_size=1", "--output-dir", join(tmp, "over")],
    tmp,
  ).done;
  assert.equal(again.code, 2, again.stderr);
  assert.match(
    errorLines(again)[0],
    /a stage needs about .* but (the engine's float heap holds at most 4\.29 GB|V8's heap limit is [\d.]+ GB|[\d.]+ GB is available)/,
  );
});

test("safety 5 memory: eval.n_prompts=1e7 is refused at once (sat train and sat eval) with the largest that fits", async () => {
  const out = join(tmp, "eval-huge");
  const r = await startSat(["train", "-q", "--set", "eval.n_prompts=10000000", "--output-dir", out], tmp)
    .done;
  assert.equal(r.code, 2);
  const lines = errorLines(r);
  assert.equal(lines.length, 1, r.stderr);
  const m =
    /^sat: eval\.n_prompts=10000000 × eval\.n=8: an evaluation needs about [\d.]+ GB \(rollouts [\d.]+ GB, .*\) but (V8's heap limit is [\d.]+ GB .*|[\d.]+ GB is available); the largest eval\.n_prompts that fits with eval\.n=8 is (\d+)$/.exec(
      lines[0],
    );
  assert.ok(m, lines[0]);
  const p = Number(m[2]);
  assert.ok(p > 1000 && p < 10000000, `${p}`);
  assert.ok(r.seconds < 20);
  assert.ok(!existsSync(out));
  assert.ok(jsHeapLimit() > 0);
  // sat eval of a team checkpoint: the same refusal, before its output directory exists.
  const team = join(tmp, "team");
  for (const i of [0, 1]) cpSync(fixtureAgent, join(team, `agent-${i}`), { recursive: true });
  const evalOut = join(tmp, "eval-out");
  const e = await startSat(
    [
      ...["eval", "-q", "--checkpoint", team, "--output-dir", evalOut, "--set", "eval.n_prompts=10000000"],
      ...[
        "--set",
        "tasks.difficulty=2",
        "--set",
        "rollout.max_prompt_length=16",
        "--set",
        "rollout.max_completion_length=40",
      ],
    ],
    tmp,
  ).done;
  assert.equal(e.code, 2, e.stderr);
  assert.match(
    errorLines(e)[0],
    /^sat: eval\.n_prompts=10000000 × eval\.n=8: an evaluation needs about .*; the largest eval\.n_prompts that fits with eval\.n=8 is \d+$/,
  );
  assert.ok(!existsSync(evalOut));
});
