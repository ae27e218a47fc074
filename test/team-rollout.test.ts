import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/engine/rng.js";
import { referenceEngine } from "../src/engine/engine.js";
import { Transformer } from "../src/model/transformer.js";
import { presetConfig } from "../src/model/config.js";
import { CharTokenizer } from "../src/model/tokenizer.js";
import { tokenLogProbForward } from "../src/engine/ops/softmax.js";
import { getTask, makeProblems } from "../src/tasks/index.js";
import { rolloutTeam, majorityVote } from "../src/team/rollout.js";
import { ModelMember } from "../src/team/member.js";

const tok = new CharTokenizer();
const task = getTask("add");

function team(n: number, seed: number): ModelMember[] {
  return Array.from({ length: n }, (_, i) => {
    const cfg = presetConfig("nano", tok.vocabSize, i % 2 ? "llama" : "gpt2", {
      dModel: 32,
      nHeads: 2,
      headDim: 16,
      nKvHeads: i % 2 ? 1 : 2,
      dFF: 64,
      nLayers: 1,
      maxSeqLen: 64,
    });
    const m = new Transformer(cfg, referenceEngine(), new Rng(seed + i));
    // Make <eot> likely so turns end by sampling as well as by the M-token limit.
    const w = m.w(m.lmHeadName());
    for (let c = 0; c < cfg.dModel; c++) w[tok.eot * cfg.dModel + c] *= 40;
    return new ModelMember(m);
  });
}

test("relay: every token has one owner, turns follow the speaking order, segments ≤ M, behaviour log-probs match the trainer's (temperature included)", async () => {
  const members = team(3, 1);
  const problems = makeProblems(task, { split: "train", n: 3, seed: 1 });
  const temperature = 0.7;
  const M = 5;
  const trajs = await rolloutTeam(
    members,
    tok,
    problems,
    2,
    {
      protocol: "relay",
      rounds: 3,
      maxTurnTokens: M,
      maxCompletionLength: 40,
      temperature,
      topP: 1,
      speakingOrder: [2, 0, 1],
    },
    task.verify,
    new Rng(9),
  );
  assert.equal(trajs.length, 6);
  let maxDiff = 0;
  let checked = 0;
  for (const tr of trajs) {
    assert.equal(tr.groupId, Math.floor(trajs.indexOf(tr) / 2));
    // Segment structure.
    const owners: number[] = [];
    let segLen = 0;
    let current = -2;
    for (let t = tr.promptLength; t < tr.tokens.length; t++) {
      const o = tr.owner[t];
      if (o >= 0) {
        if (o !== current) {
          owners.push(o);
          current = o;
          segLen = 0;
        }
        segLen++;
        assert.ok(segLen <= M, "segment longer than M");
      } else {
        assert.equal(tr.tokens[t], tok.eot, "only the protocol's <eot> is unowned");
      }
      if (tr.tokens[t] === tok.eot) current = -2;
    }
    const order = [2, 0, 1];
    owners.forEach((o, i) => assert.equal(o, order[i % 3], "speaking order"));
    // Recompute each owner's log-probs by teacher forcing.
    for (let a = 0; a < 3; a++) {
      const m = members[a].model;
      const T = tr.tokens.length - 1;
      const logits = m.forward(tr.tokens.subarray(0, T), 1, T);
      const V = m.cfg.vocabSize;
      const lp = new Float32Array(T);
      const logp = new Float32Array(T * V);
      tokenLogProbForward(lp, logp, logits, tr.tokens.subarray(1, T + 1), T, V, 1 / temperature);
      for (let t = 1; t < tr.tokens.length; t++) {
        if (tr.owner[t] !== a) continue;
        maxDiff = Math.max(maxDiff, Math.abs(lp[t - 1] - tr.behaviourLogp[t]));
        checked++;
      }
    }
  }
  assert.ok(checked > 20, `checked ${checked} tokens`);
  assert.ok(maxDiff <= 1e-5, `max |logp_rollout - logp_trainer| = ${maxDiff}`);
});

test("independent: each agent writes its own episodes alone; majority vote ties go to the lowest index", async () => {
  const members = team(2, 5);
  const problems = makeProblems(task, { split: "train", n: 2, seed: 2 });
  const trajs = await rolloutTeam(
    members,
    tok,
    problems,
    3,
    {
      protocol: "independent",
      rounds: 1,
      maxTurnTokens: 4,
      maxCompletionLength: 30,
      temperature: 1,
      topP: 1,
    },
    task.verify,
    new Rng(3),
  );
  assert.equal(trajs.length, 12);
  for (const tr of trajs) {
    for (let t = tr.promptLength; t < tr.tokens.length; t++) assert.equal(tr.owner[t], tr.writer);
    assert.ok(tr.tokens.length - tr.promptLength <= 30);
  }
  assert.deepEqual(
    trajs.slice(0, 6).map((t) => t.writer),
    [0, 0, 0, 0, 0, 0],
  );
  assert.equal(majorityVote(["1", "2", "2", null]), "2");
  assert.equal(majorityVote(["3", "1", "1", "3"]), "3");
  assert.equal(majorityVote([null, null]), null);
});

test("rollouts are deterministic for a seed", async () => {
  const problems = makeProblems(task, { split: "train", n: 2, seed: 3 });
  const opts = {
    protocol: "relay" as const,
    rounds: 2,
    maxTurnTokens: 6,
    maxCompletionLength: 30,
    temperature: 1,
    topP: 0.9,
  };
  const a = await rolloutTeam(team(2, 7), tok, problems, 2, opts, task.verify, new Rng(4));
  const b = await rolloutTeam(team(2, 7), tok, problems, 2, opts, task.verify, new Rng(4));
  assert.deepEqual(
    a.map((t) => Array.from(t.tokens)),
    b.map((t) => Array.from(t.tokens)),
  );
  assert.deepEqual(
    a.map((t) => Array.from(t.behaviourLogp)),
    b.map((t) => Array.from(t.behaviourLogp)),
  );
});
