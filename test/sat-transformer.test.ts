/**
 * SAT on transformer agents, end to end through the library: from a pretrained tiny agent
 * (test/fixtures/agents/add2-tiny), a short SAT run must raise the team's held-out accuracy
 * beyond noise, and both intermediate-policy modes must run; stage records and weights are
 * bit-identical across runs and thread counts on every fast kernel tier present.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createEngine } from "../src/engine/engine.js";
import { nativeStatus } from "../src/engine/kernels/native.js";
import { loadModel } from "../src/model/checkpoint.js";
import { CharTokenizer } from "../src/model/tokenizer.js";
import { getTask, makeProblems } from "../src/tasks/index.js";
import { defaultStageConfig } from "../src/algorithm/index.js";
import { TeamTrainer, type TeamTrainOptions } from "../src/train/team.js";
import { rolloutTeam } from "../src/team/rollout.js";
import { withoutTiming } from "./sat-process.js";
const recordJson = (r: unknown) => JSON.stringify(withoutTiming(r));
import { Rng } from "../src/engine/rng.js";

const AGENT = join(fileURLToPath(new URL(".", import.meta.url)), "../../test/fixtures/agents/add2-tiny");
const tok = new CharTokenizer();
const task = getTask("add");
const rollout = {
  protocol: "relay" as const,
  rounds: 1,
  maxTurnTokens: 12,
  maxCompletionLength: 40,
  temperature: 1,
  topP: 1,
};

function options(n: number, over: Partial<TeamTrainOptions["stage"]> = {}): TeamTrainOptions {
  const stage = defaultStageConfig(n, {
    promptsPerStage: 8,
    miniBatchGroups: 4,
    epochs: 2,
    klRadius: Array(n).fill(0.05),
    ...over,
  });
  return {
    stage,
    rollout,
    groupSize: 8,
    klCoef: 0.1,
    optim: { lr: 3e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 },
    task,
    difficulty: 2,
    heldOutPrompts: 0,
    seed: 7,
  };
}

test("a short SAT run raises held-out team accuracy over the pretrained start, beyond noise", async (t) => {
  const engine = await createEngine({ threads: 1 });
  try {
    const models = [0, 1, 2].map(() => loadModel(AGENT, engine, tok));
    // 16 prompts × 8 episodes per stage: with 8 prompts the gradient noise of one run is as large as the gain.
    const trainer = new TeamTrainer(models, tok, options(3, { promptsPerStage: 16, miniBatchGroups: 8 }));
    const problems = makeProblems(task, { split: "test", n: 300, seed: 11, difficulty: 2 });
    // The same prompts and sampling streams before and after (common random numbers), so the
    // per-prompt differences are paired and their spread is the noise to beat.
    const perPrompt = async (): Promise<number[]> => {
      const trajs = await rolloutTeam(trainer.members, tok, problems, 4, rollout, task.verify, new Rng(5));
      return problems.map((_, i) => trajs.slice(i * 4, (i + 1) * 4).reduce((s, t) => s + t.reward, 0) / 4);
    };
    const before = await perPrompt();
    for (let s = 0; s < 12; s++) await trainer.stage();
    const after = await perPrompt();
    const diffs = after.map((x, i) => x - before[i]);
    const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
    const d = mean(diffs);
    const se = Math.sqrt(mean(diffs.map((x) => (x - d) ** 2)) / (diffs.length - 1));
    t.diagnostic(
      `team avg@1 ${mean(before).toFixed(3)} → ${mean(after).toFixed(3)} after 12 stages (paired difference ${d.toFixed(3)}, 2·SE = ${(2 * se).toFixed(3)})`,
    );
    assert.ok(d > 2 * se, `improvement ${d.toFixed(3)} is within noise (2·SE ${(2 * se).toFixed(3)})`);
  } finally {
    await engine.close();
  }
});

for (const intermediate of ["reweight", "resample"] as const) {
  test(`intermediate = ${intermediate} runs a stage on a transformer team`, async () => {
    const engine = await createEngine({ threads: 1 });
    try {
      const models = [0, 1].map(() => loadModel(AGENT, engine, tok));
      const trainer = new TeamTrainer(models, tok, {
        ...options(2, { intermediate, promptsPerStage: 4, miniBatchGroups: 2 }),
        groupSize: 4,
      });
      const { record: r } = await trainer.stage();
      assert.equal(r.intermediate, intermediate);
      assert.equal(r.agents.length, 2);
      for (const a of r.agents) {
        assert.ok(a.klQuantile <= 0.05 + 1e-12, "an accepted update stays inside the trust region");
        assert.ok(a.logpDiffMax <= 1e-4, `behaviour vs trainer log-probs ${a.logpDiffMax}`);
        assert.ok(a.numEpisodes > 0);
      }
      if (intermediate === "reweight") {
        const second = r.agents.find((a) => a.position === 1)!;
        assert.ok(second.isWeightMin <= 1 && second.isWeightMean <= 1, "truncated weights are at most 1");
      }
      assert.equal(trainer.state.step, 1);
    } finally {
      await engine.close();
    }
  });
}

const nativeStatusNow = nativeStatus();
for (const impl of ["wasm", "native"] as const) {
  const skip =
    impl === "native" && !nativeStatusNow.ok ? `native kernels absent: ${nativeStatusNow.reason}` : false;
  test(
    `same seed → bit-identical stage records (timings aside), and the same for 1 and 2 kernel threads, on ${impl}`,
    { skip },
    async () => {
      const run = async (threads: number) => {
        const engine = await createEngine({ impl, threads });
        try {
          const models = [0, 1].map(() => loadModel(AGENT, engine, tok));
          const trainer = new TeamTrainer(models, tok, {
            ...options(2, { promptsPerStage: 4, miniBatchGroups: 2, order: "greedy" }),
            groupSize: 4,
            heldOutPrompts: 2,
          });
          const records = [];
          for (let s = 0; s < 2; s++) records.push((await trainer.stage()).record);
          return {
            records: recordJson(records),
            params: models.map((m) =>
              Buffer.from(m.params.buffer, m.params.byteOffset, m.params.byteLength).toString("base64"),
            ),
          };
        } finally {
          await engine.close();
        }
      };
      const a = await run(1);
      const b = await run(1);
      const c = await run(2);
      assert.equal(a.records, b.records, "same seed, same records");
      assert.deepEqual(a.params, b.params);
      assert.equal(a.records, c.records, "2 threads give the same records as 1");
      assert.deepEqual(a.params, c.params, "2 threads give the same weights as 1");
    },
  );
}
