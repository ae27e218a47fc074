import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/engine/rng.js";
import { referenceEngine } from "../src/engine/engine.js";
import { Transformer } from "../src/model/transformer.js";
import { presetConfig } from "../src/model/config.js";
import { CharTokenizer } from "../src/model/tokenizer.js";
import { getTask, makeProblems } from "../src/tasks/index.js";
import { rolloutTeam } from "../src/team/rollout.js";
import { ModelMember } from "../src/team/member.js";
import { LmPolicy } from "../src/team/lm-policy.js";
import { ProjectedMember, distillProjection } from "../src/swap/projected-member.js";
import { klRow, type StateRef } from "../src/algorithm/index.js";
import { ProjectedPolicy } from "../src/swap/projection.js";

const tok = new CharTokenizer();
const task = getTask("add");
const optim = { lr: 3e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 };
const dims = (d: number) => ({ dModel: d, nHeads: 2, headDim: d / 2, dFF: 2 * d, nLayers: 1, maxSeqLen: 64 });

test("Stage 0: a swapped-in larger agent stays inside the δ0 ball of the incumbent at every visited state", async () => {
  const T = 0.9;
  const delta0 = 0.01;
  const incumbent = new Transformer(
    presetConfig("nano", tok.vocabSize, "gpt2", dims(16)),
    referenceEngine(),
    new Rng(1),
  );
  // A different, larger model (llama style, wider), as an upgrade would be.
  const bigger = new Transformer(
    presetConfig("nano", tok.vocabSize, "llama", { ...dims(32), nKvHeads: 1 }),
    referenceEngine(),
    new Rng(2),
  );
  for (let i = 0; i < bigger.params.length; i++) bigger.params[i] *= 8; // far from the incumbent
  const other = new ModelMember(
    new Transformer(presetConfig("nano", tok.vocabSize, "gpt2", dims(16)), referenceEngine(), new Rng(3)),
  );
  const swapped = new ProjectedMember(bigger, incumbent, delta0, T);
  const problems = makeProblems(task, { split: "train", n: 3, seed: 5 });
  const trajs = await rolloutTeam(
    [other, swapped],
    tok,
    problems,
    2,
    { protocol: "relay", rounds: 2, maxTurnTokens: 8, maxCompletionLength: 30, temperature: T, topP: 1 },
    task.verify,
    new Rng(7),
  );
  const states: StateRef[] = [];
  trajs.forEach((tr, i) =>
    tr.owner.forEach((o, t) => {
      if (o === 1) states.push({ traj: i, t });
    }),
  );
  assert.ok(states.length > 10);
  const preP = new LmPolicy(bigger, T, optim);
  const curP = new LmPolicy(incumbent, T, optim);
  const proj = new ProjectedPolicy(preP, curP, delta0);
  const rows = proj.logProbs(trajs, states);
  const cur = Float64Array.from(curP.logProbs(trajs, states));
  const V = tok.vocabSize;
  let worst = 0;
  let maxLogpDiff = 0;
  states.forEach((s, k) => {
    worst = Math.max(worst, klRow(rows, k * V, cur, k * V, V));
    maxLogpDiff = Math.max(
      maxLogpDiff,
      Math.abs(rows[k * V + trajs[s.traj].tokens[s.t]] - trajs[s.traj].behaviourLogp[s.t]),
    );
  });
  assert.ok(worst <= delta0 + 1e-9, `max per-state KL to the incumbent ${worst}`);
  assert.ok(proj.lastStats.projectedFrac > 0.5, "the raw larger model violated δ0 at most states");
  assert.ok(swapped.counters.klMax <= delta0 + 1e-9);
  assert.ok(
    maxLogpDiff <= 1e-4,
    `behaviour log-probs of the projected agent match its scoring (${maxLogpDiff})`,
  );

  // Distillation into the new model moves it towards the projection and reports the check honestly.
  const snap = preP.snapshot();
  const before = Float64Array.from(preP.logProbs(trajs, states));
  let klBefore = 0;
  states.forEach((_, k) => (klBefore = Math.max(klBefore, klRow(before, k * V, cur, k * V, V))));
  const res = distillProjection(preP, curP, delta0, trajs, states, {
    epochs: 30,
    miniBatch: 4,
    klQuantile: 0.99,
  });
  assert.equal(res.states, states.length);
  assert.equal(res.checkStates, states.length, "checked on the distillation states");
  assert.ok(res.attempts >= 1 && res.kappa <= 0.5);
  assert.ok(
    res.klMax < klBefore,
    `distillation reduced the max KL to the incumbent (${klBefore} → ${res.klMax})`,
  );
  assert.equal(res.accepted, res.klQuantile <= delta0);
  preP.restore(snap);
  assert.deepEqual(Array.from(preP.logProbs(trajs, states)), Array.from(before));
});

test("Stage 0 refuses agents that do not share the tokenizer", async () => {
  const a = new Transformer(presetConfig("nano", 64, "gpt2", dims(16)), referenceEngine(), new Rng(1));
  const b = new Transformer(presetConfig("nano", 60, "gpt2", dims(16)), referenceEngine(), new Rng(1));
  assert.throws(() => new ProjectedMember(a, b, 0.01, 1), /shared tokenizer/);
});
