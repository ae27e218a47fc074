/**
 * The value critic of gae runs (src/team/critic.ts): return targets, prefix-only values, fitting
 * towards per-prefix (weighted) mean returns on a toy dataset, save/load, and a gae stage of a
 * 2-agent transformer team through TeamTrainer, including a bit-identical resume of the critic.
 */
import { test } from "node:test";
import { stageMetrics } from "../src/algorithm/index.js";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createEngine, referenceEngine } from "../src/engine/engine.js";
import { Rng } from "../src/engine/rng.js";
import { allClose } from "../src/engine/check.js";
import { presetConfig } from "../src/model/config.js";
import { Transformer } from "../src/model/transformer.js";
import { loadModel } from "../src/model/checkpoint.js";
import { CharTokenizer } from "../src/model/tokenizer.js";
import { getTask } from "../src/tasks/index.js";
import { defaultStageConfig, type Trajectory } from "../src/algorithm/index.js";
import type { LmOptimOptions } from "../src/team/lm-policy.js";
import { LmCritic, loadCriticInto, returnTargets, saveCritic } from "../src/team/critic.js";
import { TeamTrainer, type TeamTrainOptions } from "../src/train/team.js";

const AGENT = join(fileURLToPath(new URL(".", import.meta.url)), "../../test/fixtures/agents/add2-tiny");
const tok = new CharTokenizer();
const BOS = tok.bos;
// Arbitrary non-special ids for the toy dataset: two prompts, two first moves, one closing token.
const [A, B, X, Y, Z] = [10, 11, 20, 21, 22];

function traj(
  tokens: number[],
  owner: number[],
  reward: number,
  extra: Partial<Trajectory> = {},
): Trajectory {
  const L = tokens.length;
  return {
    promptId: 0,
    groupId: 0,
    tokens: Int32Array.from(tokens),
    owner: Int8Array.from(owner),
    behaviourLogp: new Float64Array(L),
    ownerVersion: new Int32Array(L),
    reward,
    answer: null,
    truncated: false,
    ...extra,
  };
}

const optim = (lr: number): LmOptimOptions => ({
  lr,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
  maxGradNorm: 1,
});

function toyCritic(seed: number, lr = 1e-2): LmCritic {
  const cfg = presetConfig("nano", tok.vocabSize, "gpt2", {
    dModel: 16,
    nHeads: 2,
    nLayers: 1,
    dFF: 32,
    maxSeqLen: 8,
    valueHead: true,
  });
  return new LmCritic(new Transformer(cfg, referenceEngine(), new Rng(seed)), optim(lr));
}

/**
 * Two prompts, four continuations each, with probabilities (weights) as in an exact enumeration.
 * The minimiser of the weighted MSE at each distinct prefix is the weighted mean return there.
 */
const toyData: Array<[number, number, number, number]> = [
  // prompt, first move, reward, weight
  [A, X, 1, 0.3],
  [A, X, 0, 0.1],
  [A, Y, 1, 0.2],
  [A, Y, 0, 0.2],
  [B, X, 0, 0.25],
  [B, X, 0, 0.25],
  [B, Y, 1, 0.125],
  [B, Y, 0, 0.375],
];
const toyTrajs = toyData.map(([p, m, r, w], i) =>
  traj([BOS, p, m, Z], [-1, -1, 0, 1], r, { weight: w, groupId: p === A ? 0 : 1, promptId: i }),
);

function weightedMean(match: (d: [number, number, number, number]) => boolean): number {
  let sw = 0;
  let sr = 0;
  for (const d of toyData)
    if (match(d)) {
      sw += d[3];
      sr += d[3] * d[2];
    }
  return sr / sw;
}

test("returnTargets: γ^(L−1−t)·R from the first generated token, step rewards, and 0 after a truncated episode", () => {
  const t1 = traj([BOS, A, X, Y, Z], [-1, -1, 0, 1, -1], 1, { truncated: true });
  const t2 = traj([BOS, A, X, Y, Z], [-1, -1, 0, 1, -1], 9, {
    stepRewards: Float64Array.from([0, 0, 0.5, 0, 1]),
    weight: 0.25,
  });
  const t3 = traj([BOS, A], [-1, -1], 1); // no agent acted
  const d = returnTargets([t1, t2, t3], 0.9);
  assert.deepEqual(d.refs, [
    { traj: 0, t: 2 },
    { traj: 0, t: 3 },
    { traj: 0, t: 4 },
    { traj: 0, t: 5 },
    { traj: 1, t: 2 },
    { traj: 1, t: 3 },
    { traj: 1, t: 4 },
  ]);
  const want = [0.81, 0.9, 1, 0, 0.5 + 0.81, 0.9, 1];
  assert.ok(allClose(d.targets, want, 0, 1e-12).ok, `targets ${[...d.targets]} vs ${want}`);
  assert.deepEqual([...d.weights], [1, 1, 1, 1, 0.25, 0.25, 0.25]);
  assert.throws(() => returnTargets([t1], 1.5), /gamma must be in \[0, 1\]/);
});

test("values depend on the prefix only: position t−1, the state after the last token, 0 for the empty prefix", () => {
  const critic = toyCritic(1);
  const short = traj([BOS, A, X], [-1, -1, 0], 0, { truncated: true });
  const long = traj([BOS, A, X, Y, Z, Z, Z], [-1, -1, 0, 0, 0, 0, 0], 1);
  const other = traj([BOS, B, X], [-1, -1, 0], 0);
  const v = critic.values(
    [short, long, other],
    [
      { traj: 0, t: 3 }, // after the last token of `short`
      { traj: 1, t: 3 }, // same prefix inside `long`
      { traj: 0, t: 2 },
      { traj: 1, t: 2 },
      { traj: 2, t: 2 }, // different prompt
      { traj: 1, t: 0 },
    ],
  );
  assert.ok(Math.abs(v[0] - v[1]) < 1e-6, `same prefix, different batch padding: ${v[0]} vs ${v[1]}`);
  assert.ok(Math.abs(v[2] - v[3]) < 1e-6, `same prefix: ${v[2]} vs ${v[3]}`);
  assert.notEqual(v[2], v[4], "different prompts give different values");
  assert.equal(v[5], 0);
  // Alone in its batch, a state gets the same value as in the padded batch.
  const alone = critic.values([short], [{ traj: 0, t: 3 }]);
  assert.ok(Math.abs(alone[0] - v[0]) < 1e-6);
  assert.throws(() => critic.values([short], [{ traj: 0, t: 4 }]), /trajectory 0, t=4\) is outside 0\.\.3/);
  assert.throws(() => critic.values([short], [{ traj: 3, t: 1 }]), /trajectory 3, the batch has 1/);
});

test("fit lowers the MSE and each prefix's value converges to the weighted mean return of the trajectories sharing it", (t) => {
  const critic = toyCritic(2);
  const data = returnTargets(toyTrajs, 1);
  assert.equal(data.refs.length, 16); // two states (before each generated token) per trajectory
  const first = critic.fit(toyTrajs, data, { epochs: 5, miniBatchSize: 8, rng: new Rng(3) });
  assert.ok(first.lossAfter < first.lossBefore, `MSE ${first.lossBefore} → ${first.lossAfter}`);
  assert.equal(first.steps, 5);
  const res = critic.fit(toyTrajs, data, { epochs: 400, miniBatchSize: 8, rng: new Rng(4) });
  // The floor of the weighted MSE is the weighted within-prefix variance of the returns.
  let floor = 0;
  let sw = 0;
  for (const [p, m, r, w] of toyData) {
    const byPrompt = weightedMean((d) => d[0] === p);
    const byMove = weightedMean((d) => d[0] === p && d[1] === m);
    floor += w * ((r - byPrompt) ** 2 + (r - byMove) ** 2);
    sw += 2 * w;
  }
  floor /= sw;
  const prefixes = [
    { name: "bos A", ref: { traj: 0, t: 2 }, want: weightedMean((d) => d[0] === A) }, // 0.625
    { name: "bos A x", ref: { traj: 0, t: 3 }, want: weightedMean((d) => d[0] === A && d[1] === X) }, // 0.75
    { name: "bos A y", ref: { traj: 2, t: 3 }, want: weightedMean((d) => d[0] === A && d[1] === Y) }, // 0.5
    { name: "bos B", ref: { traj: 4, t: 2 }, want: weightedMean((d) => d[0] === B) }, // 0.125
    { name: "bos B x", ref: { traj: 4, t: 3 }, want: 0 },
    { name: "bos B y", ref: { traj: 6, t: 3 }, want: weightedMean((d) => d[0] === B && d[1] === Y) }, // 0.25
  ];
  const v = critic.values(
    toyTrajs,
    prefixes.map((p) => p.ref),
  );
  const report = prefixes
    .map((p, k) => `${p.name}: ${v[k].toFixed(3)} (mean ${p.want.toFixed(3)})`)
    .join("; ");
  t.diagnostic(
    `MSE ${first.lossBefore.toFixed(4)} → ${res.lossAfter.toFixed(4)} (floor ${floor.toFixed(4)}); ${report}`,
  );
  prefixes.forEach((p, k) => assert.ok(Math.abs(v[k] - p.want) < 0.01, report));
  assert.ok(res.lossAfter < floor + 1e-3, `final MSE ${res.lossAfter} vs floor ${floor}`);
  assert.ok(first.lossBefore > floor + 0.05, "the test starts far from the floor");
});

test("fit rejects malformed inputs with a clear message", () => {
  const critic = toyCritic(5);
  const data = returnTargets(toyTrajs, 1);
  const rng = new Rng(0);
  assert.throws(
    () =>
      critic.fit(toyTrajs, { ...data, weights: new Float64Array(1) }, { epochs: 1, miniBatchSize: 4, rng }),
    /16 states but 16 targets and 1 weights/,
  );
  assert.throws(
    () => critic.fit(toyTrajs, data, { epochs: 1, miniBatchSize: 0, rng }),
    /miniBatchSize must be an integer ≥ 1/,
  );
  assert.throws(
    () =>
      critic.fit(
        toyTrajs,
        { refs: [{ traj: 0, t: 0 }], targets: new Float64Array(1), weights: new Float64Array(1) },
        { epochs: 1, miniBatchSize: 4, rng },
      ),
    /t=0\) has no prefix to fit/,
  );
  const noHead = new Transformer(
    presetConfig("nano", tok.vocabSize, "gpt2", { dModel: 16, nHeads: 2, nLayers: 1, maxSeqLen: 8 }),
    referenceEngine(),
  );
  assert.throws(() => new LmCritic(noHead, optim(1e-3)), /needs a model with a value head/);
});

test("save → load of the critic is exact (weights, optimizer moments and step, values); a wrong architecture is refused", () => {
  const critic = toyCritic(6);
  critic.fit(toyTrajs, returnTargets(toyTrajs, 1), { epochs: 3, miniBatchSize: 4, rng: new Rng(7) });
  const dir = mkdtempSync(join(tmpdir(), "sat-critic-"));
  try {
    saveCritic(dir, critic, tok);
    const other = toyCritic(8);
    assert.notDeepEqual(other.model.params, critic.model.params);
    loadCriticInto(dir, other);
    assert.deepEqual(other.model.params, critic.model.params);
    assert.equal(other.optimizer.stepCount, critic.optimizer.stepCount);
    assert.equal(other.optimizer.stepCount, 6);
    assert.deepEqual(other.optimizer.m, critic.optimizer.m);
    assert.deepEqual(other.optimizer.v, critic.optimizer.v);
    const refs = returnTargets(toyTrajs, 1).refs;
    assert.deepEqual(other.values(toyTrajs, refs), critic.values(toyTrajs, refs));
    // The next fit continues identically from both.
    const a = critic.fit(toyTrajs, returnTargets(toyTrajs, 1), {
      epochs: 1,
      miniBatchSize: 4,
      rng: new Rng(9),
    });
    const b = other.fit(toyTrajs, returnTargets(toyTrajs, 1), {
      epochs: 1,
      miniBatchSize: 4,
      rng: new Rng(9),
    });
    assert.equal(a.lossAfter, b.lossAfter);
    const wider = new LmCritic(
      new Transformer(
        presetConfig("nano", tok.vocabSize, "gpt2", {
          dModel: 32,
          nHeads: 2,
          nLayers: 1,
          dFF: 32,
          maxSeqLen: 8,
          valueHead: true,
        }),
        referenceEngine(),
      ),
      optim(1e-3),
    );
    assert.throws(() => loadCriticInto(dir, wider), /has shape \[.*\], the model config needs/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const task = getTask("add");
const rollout = {
  protocol: "relay" as const,
  rounds: 1,
  maxTurnTokens: 12,
  maxCompletionLength: 40,
  temperature: 1,
  topP: 1,
};

function gaeOptions(): TeamTrainOptions {
  const stage = defaultStageConfig(2, {
    promptsPerStage: 4,
    miniBatchGroups: 2,
    epochs: 2,
    klRadius: [0.05, 0.05],
    advEstimator: "gae",
  });
  return {
    stage,
    rollout,
    groupSize: 4,
    klCoef: 0.1,
    optim: { lr: 3e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 },
    task,
    difficulty: 2,
    heldOutPrompts: 0,
    seed: 13,
  };
}

test("a gae stage of a 2-agent add2-tiny team runs through TeamTrainer with the critic, and a resumed run stays bit-identical", async (t) => {
  const engine = await createEngine({ threads: 1 });
  const dir = mkdtempSync(join(tmpdir(), "sat-critic-team-"));
  try {
    const team = () => [0, 1].map(() => loadModel(AGENT, engine, tok));
    const full = new TeamTrainer(team(), tok, gaeOptions());
    const critic = full.critic!;
    assert.ok(critic, "gae gives the trainer a critic");
    assert.equal(full.models[0].cfg.valueHead, false, "the agents need no value head");
    for (const spec of full.models[0].layout.tensors) {
      assert.deepEqual(
        critic.model.w(spec.name),
        full.models[0].w(spec.name),
        `critic starts from agent 0's ${spec.name}`,
      );
    }
    const seen: string[] = [];
    const first = await full.stage((r) => seen.push(r.key));
    const rec = first.record;
    assert.equal(rec.advEstimator, "gae");
    assert.equal(rec.agents.length, 2);
    for (const a of rec.agents) {
      assert.ok(a.numEpisodes > 0);
      for (const x of [a.advMean, a.advMin, a.advMax])
        assert.ok(Number.isFinite(x) && Math.abs(x) <= 5, `advantage ${x}`);
    }
    assert.ok(
      rec.agents.some((a) => a.advMax > a.advMin),
      "advantages are not all equal",
    );
    const fit = first.record.critic!;
    assert.ok(
      Number.isFinite(fit.lossBefore) && fit.lossAfter < fit.lossBefore,
      `critic MSE ${fit.lossBefore} → ${fit.lossAfter}`,
    );
    assert.ok(fit.numStates > 0 && fit.steps === 4);
    assert.ok(seen.includes("trust_region/kl_quantile"), "the sink hears the stage's metrics");
    const keys = stageMetrics(first.record).map((m) => m.key);
    assert.ok(keys.includes("critic/vf_loss") && keys.includes("critic/vf_loss_before"));
    t.diagnostic(
      `stage 1: reward ${rec.rewardMean.toFixed(3)}, adv [${rec.agents.map((a) => `${a.advMin.toFixed(2)}..${a.advMax.toFixed(2)}`).join(", ")}], ` +
        `critic MSE ${fit.lossBefore.toFixed(4)} → ${fit.lossAfter.toFixed(4)} over ${fit.numStates} states`,
    );

    // Checkpoint after stage 1: agents in memory, critic through its files.
    const agents = full.policies.map((p) => p.snapshot());
    const state = full.getState();
    saveCritic(dir, critic, tok);
    const second = await full.stage();
    t.diagnostic(
      `stage 2: critic MSE ${second.record.critic!.lossBefore.toFixed(4)} → ${second.record.critic!.lossAfter.toFixed(4)}`,
    );

    const resumed = new TeamTrainer(team(), tok, gaeOptions());
    resumed.policies.forEach((p, i) => p.restore(agents[i]));
    loadCriticInto(dir, resumed.critic!);
    resumed.setState(state);
    const again = await resumed.stage();
    assert.deepEqual(again.record.critic, second.record.critic);
    assert.deepEqual(
      resumed.critic!.model.params,
      critic.model.params,
      "critic weights after the resumed stage",
    );
    resumed.models.forEach((m, i) =>
      assert.deepEqual(m.params, full.models[i].params, `agent ${i} after the resumed stage`),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await engine.close();
  }
});
