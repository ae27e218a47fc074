/**
 * algo.cert_samples: the held-out batch of each stage's measured improvement has its own number of
 * samples per prompt (default rollout.n), so its size can be chosen for power without changing the
 * training batch; the batch before and the batch after a stage stay paired (same prompts, same
 * sampling streams).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createEngine } from "../src/engine/engine.js";
import { loadModel } from "../src/model/checkpoint.js";
import { CharTokenizer } from "../src/model/tokenizer.js";
import { getTask } from "../src/tasks/index.js";
import { defaultStageConfig } from "../src/algorithm/index.js";
import { TeamTrainer } from "../src/train/team.js";
import { loadConfig } from "../src/config/load.js";
import { estimateStage, modelDims, stageShapeOf } from "../src/app/memory.js";
import { presetConfig } from "../src/model/config.js";
import { buildLayout } from "../src/model/layout.js";

const AGENT = join(fileURLToPath(new URL(".", import.meta.url)), "../../test/fixtures/agents/add2-tiny");
const tok = new CharTokenizer();

test("cert samples: the key defaults to null (= rollout.n) and refuses 0 with its range", () => {
  assert.equal(loadConfig({}).algo.cert_samples, null);
  assert.equal(loadConfig({ sets: ["algo.cert_samples=2"] }).algo.cert_samples, 2);
  assert.throws(
    () => loadConfig({ sets: ["algo.cert_samples=0"] }),
    /^ConfigError: --set algo\.cert_samples=0: algo\.cert_samples: expected integer in \[1, 4096\], or null, got number 0$/,
  );
});

test("cert samples: the held-out batch has prompts × cert_samples episodes, the same before and after", async () => {
  const engine = await createEngine({ threads: 1 });
  try {
    const batch = async (heldOutSamples: number | undefined) => {
      const models = [0, 1].map(() => loadModel(AGENT, engine, tok));
      const trainer = new TeamTrainer(models, tok, {
        stage: defaultStageConfig(2, { promptsPerStage: 2, miniBatchGroups: 1, epochs: 2 }),
        rollout: {
          protocol: "relay",
          rounds: 1,
          maxTurnTokens: 12,
          maxCompletionLength: 40,
          temperature: 1,
          topP: 1,
        },
        groupSize: 4,
        klCoef: 0.1,
        optim: { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 },
        task: getTask("add"),
        difficulty: 2,
        heldOutPrompts: 3,
        heldOutSamples,
        seed: 3,
      });
      const input = trainer.stageInput();
      const first = await input.collectHeldOut!(input.team, 3);
      const again = await input.collectHeldOut!(input.team, 3);
      return { first, again };
    };
    for (const [samples, expected] of [
      [undefined, 12],
      [1, 3],
      [5, 15],
    ] as const) {
      const { first, again } = await batch(samples);
      assert.equal(first.length, expected, `cert_samples ${samples}: ${first.length} episodes`);
      assert.equal(new Set(first.map((t) => t.promptId)).size, 3, "three held-out prompts");
      // Unchanged team → the same transcripts: the before/after difference is the policy's alone.
      assert.deepEqual(
        first.map((t) => Array.from(t.tokens)),
        again.map((t) => Array.from(t.tokens)),
      );
    }
  } finally {
    await engine.close();
  }
});

test("cert samples: the memory estimate grows with the held-out samples per prompt", () => {
  const est = (sets: string[]) => {
    const cfg = loadConfig({ sets: ["algo.cert_prompts=256", ...sets] });
    const nano = presetConfig("nano", 64);
    return estimateStage(modelDims(nano, buildLayout(nano).total), stageShapeOf(cfg, 3)).total;
  };
  assert.ok(est(["algo.cert_samples=1"]) < est([]), "1 sample per prompt needs less than rollout.n = 8");
  assert.ok(est(["algo.cert_samples=32"]) > est([]), "32 samples per prompt need more than rollout.n = 8");
});
