import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/engine/rng.js";
import { float64Engine, referenceEngine } from "../src/engine/engine.js";
import { expectAllClose, numericGrad } from "../src/engine/check.js";
import { Transformer } from "../src/model/transformer.js";
import { presetConfig } from "../src/model/config.js";
import { CharTokenizer } from "../src/model/tokenizer.js";
import { getTask, makeProblems } from "../src/tasks/index.js";
import { rolloutTeam } from "../src/team/rollout.js";
import { ModelMember } from "../src/team/member.js";
import { LmPolicy } from "../src/team/lm-policy.js";
import type { StateRef } from "../src/contracts/policy.js";

const tok = new CharTokenizer();
const optim = { lr: 1e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0, maxGradNorm: 0 };
const small = { dModel: 16, nHeads: 2, headDim: 8, dFF: 32, nLayers: 1, maxSeqLen: 48 };

test("LmPolicy scores the owner's tokens with the behaviour log-probs of the rollout (≤ 1e-5, temperature 0.8)", async () => {
  const task = getTask("add");
  const models = [0, 1].map(
    (i) =>
      new Transformer(presetConfig("nano", tok.vocabSize, "gpt2", small), referenceEngine(), new Rng(20 + i)),
  );
  const trajs = await rolloutTeam(
    models.map((m) => new ModelMember(m)),
    tok,
    makeProblems(task, { split: "train", n: 2, seed: 4 }),
    2,
    { protocol: "relay", rounds: 2, maxTurnTokens: 6, maxCompletionLength: 30, temperature: 0.8, topP: 1 },
    task.verify,
    new Rng(1),
  );
  let maxDiff = 0;
  let n = 0;
  for (let a = 0; a < 2; a++) {
    const pol = new LmPolicy(models[a], 0.8, optim);
    const states: StateRef[] = [];
    trajs.forEach((tr, i) =>
      tr.owner.forEach((o, t) => {
        if (o === a) states.push({ traj: i, t });
      }),
    );
    const lp = pol.logProbs(trajs, states);
    const V = pol.vocabSize;
    states.forEach((s, k) => {
      maxDiff = Math.max(
        maxDiff,
        Math.abs(lp[k * V + trajs[s.traj].tokens[s.t]] - trajs[s.traj].behaviourLogp[s.t]),
      );
      n++;
    });
  }
  assert.ok(n > 10);
  assert.ok(maxDiff <= 1e-5, `max diff ${maxDiff}`);
});

test("LmPolicy backward matches finite differences of a loss on the scored rows (float64)", async () => {
  const rng = new Rng(3);
  const m = new Transformer(
    presetConfig("nano", tok.vocabSize, "llama", { ...small, nKvHeads: 1 }),
    float64Engine(),
    rng,
  );
  for (let i = 0; i < m.params.length; i++) m.params[i] += rng.normal() * 0.1;
  const pol = new LmPolicy(m, 1.3, optim);
  const mk = (len: number) => ({
    promptId: 0,
    groupId: 0,
    tokens: Int32Array.from({ length: len }, () => 4 + rng.int(30)),
    owner: new Int8Array(len),
    behaviourLogp: new Float32Array(len),
    ownerVersion: new Int32Array(len),
    reward: 0,
    answer: null,
    truncated: false,
  });
  const trajs = [mk(7), mk(4), mk(9)];
  const states: StateRef[] = [
    { traj: 0, t: 3 },
    { traj: 2, t: 8 },
    { traj: 1, t: 1 },
    { traj: 2, t: 2 },
  ];
  const V = pol.vocabSize;
  const w = Float64Array.from({ length: states.length * V }, () => rng.normal());
  const loss = () => {
    const lp = pol.logProbs(trajs, states);
    let s = 0;
    for (let i = 0; i < w.length; i++) s += w[i] * lp[i];
    return s;
  };
  loss();
  pol.zeroGrad();
  pol.backward(w);
  const idx = Array.from({ length: 40 }, () => rng.int(m.params.length));
  const ana = idx.map((i) => m.grads[i]);
  const num = numericGrad(loss, m.params, 1e-6, idx);
  expectAllClose(ana, num, 1e-5, 1e-8, "LmPolicy gradient");
  // snapshot/restore bring parameters and optimizer state back exactly.
  const snap = pol.snapshot();
  pol.optimizerStep();
  assert.notDeepEqual(Array.from(m.params.slice(0, 50)), Array.from(snap.params.slice(0, 50)));
  pol.restore(snap);
  assert.deepEqual(Array.from(m.params), Array.from(snap.params));
  assert.equal(pol.optimizer.snapshot().step, snap.adam.step);
});
