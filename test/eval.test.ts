import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/engine/rng.js";
import { referenceEngine } from "../src/engine/engine.js";
import { Transformer } from "../src/model/transformer.js";
import { presetConfig } from "../src/model/config.js";
import { CharTokenizer } from "../src/model/tokenizer.js";
import {
  getTask,
  makeProblem,
  makeProblems,
  verifyExact,
  type Problem,
  type TaskFamily,
} from "../src/tasks/index.js";
import { majorityVote, rolloutTeam, type TeamMember } from "../src/team/rollout.js";
import { DecoderSession, type StepDecoder } from "../src/team/decoder-session.js";
import { ModelMember } from "../src/team/member.js";
import {
  evalRows,
  evaluateMatchedBudget,
  evaluateTeam,
  formatEvalTable,
  type EvalOptions,
} from "../src/eval/evaluate.js";
import { passAtK } from "../src/eval/metrics.js";

const tok = new CharTokenizer();
const task = getTask("add");
const HASH = tok.encode("#")[0];
const DIGIT = { "1": tok.encode("1")[0], "2": tok.encode("2")[0] };

function randomTeam(n: number, seed: number): ModelMember[] {
  return Array.from({ length: n }, (_, i) => {
    const cfg = presetConfig("nano", tok.vocabSize, "gpt2", {
      dModel: 16,
      nHeads: 2,
      headDim: 8,
      nKvHeads: 2,
      dFF: 32,
      nLayers: 1,
      maxSeqLen: 64,
    });
    return new ModelMember(new Transformer(cfg, referenceEngine(), new Rng(seed + i)));
  });
}

/**
 * A scripted agent: after any token other than "#" or a digit it writes "#", then a digit drawn
 * with weights {"1": w1, "2": w2}, then <eot>. So every turn states one answer, at random.
 */
class ScriptedMember implements TeamMember {
  readonly vocabSize = tok.vocabSize;
  readonly maxSeqLen = 64;
  readonly version = 0;
  constructor(
    private readonly w1: number,
    private readonly w2: number,
  ) {}
  openSession(episodes: number) {
    return new DecoderSession(this.createDecoder(episodes), this.vocabSize);
  }
  createDecoder(B: number): StepDecoder {
    const V = this.vocabSize;
    const lengths = new Int32Array(B);
    const { w1, w2 } = this;
    return {
      lengths,
      step(tokens: ArrayLike<number>, active: Uint8Array) {
        const logits = new Float32Array(B * V).fill(-1e9);
        for (let b = 0; b < B; b++) {
          if (!active[b]) continue;
          lengths[b]++;
          const last = tokens[b];
          if (last === HASH) {
            logits[b * V + DIGIT["1"]] = Math.log(w1);
            logits[b * V + DIGIT["2"]] = Math.log(w2);
          } else if (last === DIGIT["1"] || last === DIGIT["2"]) logits[b * V + tok.eot] = 0;
          else logits[b * V + HASH] = 0;
        }
        return logits;
      },
    };
  }
}

const toyFamily: TaskFamily = { ...task, name: "toy", verify: verifyExact };
/** Problems whose answers are "1" or "2", so scripted agents are right part of the time. */
const toyProblems: Problem[] = ["1", "2", "1", "1", "2"].map((answer, i) =>
  makeProblem("toy", 1, `q${"abcde"[i]}\n`, `#${answer}`, answer),
);

const baseOpts: EvalOptions = {
  protocol: "relay",
  rounds: 2,
  maxTurnTokens: 4,
  maxCompletionLength: 20,
  temperature: 1,
  topP: 1,
  n: 6,
  k: [1, 2, 4],
  bootstrap: 200,
  seed: 17,
};

function checkWellFormed(r: Awaited<ReturnType<typeof evaluateTeam>>, ks: number[]) {
  for (const name of ["avg", "pass", "maj"]) {
    for (const k of ks) {
      const key = `${name}@${k}`;
      const v = r.metrics[key];
      assert.ok(v >= 0 && v <= 1, `${key} = ${v}`);
      assert.ok(r.metrics[`${key}/ci_low`] <= v && v <= r.metrics[`${key}/ci_high`], `${key} interval`);
    }
  }
  assert.equal(Object.keys(r.metrics).length, 3 * ks.length * 3);
  // pass@k never decreases in k.
  for (let j = 1; j < ks.length; j++) assert.ok(r.metrics[`pass@${ks[j]}`] >= r.metrics[`pass@${ks[j - 1]}`]);
}

test("evaluateTeam on a tiny random team: well-formed, avg@1 = fraction correct of a direct rolloutTeam with the same seed, deterministic", async () => {
  const team = randomTeam(2, 3);
  const problems = makeProblems(task, { split: "test", n: 3, seed: 1 });
  const opts = { ...baseOpts, n: 4, k: [1, 4], maxCompletionLength: 12 };
  const r = await evaluateTeam(team, tok, task, problems, opts);
  assert.equal(r.n, 4);
  assert.equal(r.numPrompts, 3);
  assert.equal(r.protocol, "relay");
  checkWellFormed(r, [1, 4]);
  assert.equal(r.perAgent.length, 2);
  const direct = await rolloutTeam(team, tok, problems, 4, opts, task.verify, new Rng(opts.seed));
  assert.equal(r.metrics["avg@1"], direct.filter((t) => t.reward === 1).length / direct.length);
  assert.ok(
    r.tokens > direct.reduce((s, t) => s + t.tokens.length - t.promptLength, 0),
    "tokens include the solo rollouts",
  );
  const again = await evaluateTeam(team, tok, task, problems, opts);
  assert.deepEqual(again.metrics, r.metrics);
  assert.deepEqual(again.perAgent, r.perAgent);
});

test("relay: avg@1, pass@k and maj@k match the direct rollout's samples", async () => {
  const team = [new ScriptedMember(3, 1), new ScriptedMember(1, 2)];
  const r = await evaluateTeam(team, tok, toyFamily, toyProblems, baseOpts);
  checkWellFormed(r, baseOpts.k);
  const n = baseOpts.n;
  const direct = await rolloutTeam(
    team,
    tok,
    toyProblems,
    n,
    baseOpts,
    toyFamily.verify,
    new Rng(baseOpts.seed),
  );
  const correct = direct.filter((t) => t.reward === 1).length / direct.length;
  assert.ok(correct > 0 && correct < 1, `fraction correct ${correct}`);
  assert.ok(Math.abs(r.metrics["avg@1"] - correct) < 1e-12);
  // The team answer is the last agent's (the second turn overrides the first).
  for (const t of direct) assert.ok(t.answer === "1" || t.answer === "2");
  const P = toyProblems.length;
  for (const k of baseOpts.k) {
    let pass = 0;
    let maj = 0;
    for (let i = 0; i < P; i++) {
      const group = direct.slice(i * n, (i + 1) * n);
      pass += passAtK(n, group.filter((t) => t.reward === 1).length, k);
      maj += majorityVote(group.slice(0, k).map((t) => t.answer)) === toyProblems[i].answer ? 1 : 0;
    }
    assert.ok(Math.abs(r.metrics[`pass@${k}`] - pass / P) < 1e-12, `pass@${k}`);
    assert.ok(Math.abs(r.metrics[`maj@${k}`] - maj / P) < 1e-12, `maj@${k}`);
  }
  // Solo accuracy: agent 0 says "1" with probability 3/4; 3 of the 5 problems have answer "1".
  const expected0 = (3 * 0.75 + 2 * 0.25) / 5;
  assert.ok(
    Math.abs(r.perAgent[0].soloAccuracy - expected0) < 0.25,
    `agent 0 solo ${r.perAgent[0].soloAccuracy} vs ${expected0}`,
  );
  for (const a of r.perAgent) assert.ok(a.ci_low <= a.soloAccuracy && a.soloAccuracy <= a.ci_high);
});

test("independent: a team sample is the majorityVote over the agents' g-th answers; solo accuracy is the agent's block", async () => {
  const team = [new ScriptedMember(1, 1), new ScriptedMember(2, 1), new ScriptedMember(1, 3)];
  const opts: EvalOptions = { ...baseOpts, protocol: "independent" };
  const r = await evaluateTeam(team, tok, toyFamily, toyProblems, opts);
  checkWellFormed(r, opts.k);
  const n = opts.n;
  const P = toyProblems.length;
  const direct = await rolloutTeam(team, tok, toyProblems, n, opts, toyFamily.verify, new Rng(opts.seed));
  let teamCorrect = 0;
  for (let i = 0; i < P; i++) {
    for (let g = 0; g < n; g++) {
      const votes = team.map((_, a) => direct[a * P * n + i * n + g].answer);
      if (majorityVote(votes) === toyProblems[i].answer) teamCorrect++;
    }
  }
  assert.ok(Math.abs(r.metrics["avg@1"] - teamCorrect / (P * n)) < 1e-12);
  team.forEach((_, a) => {
    const block = direct.slice(a * P * n, (a + 1) * P * n);
    assert.ok(
      Math.abs(r.perAgent[a].soloAccuracy - block.filter((t) => t.reward === 1).length / block.length) <
        1e-12,
      `agent ${a}`,
    );
  });
});

test("prompt batching keeps each agent's answers with their problem", async () => {
  // Deterministic agents: "1", "2", "2" → the vote is "2" on every sample.
  const team = [new ScriptedMember(1, 0), new ScriptedMember(0, 1), new ScriptedMember(0, 1)];
  const opts: EvalOptions = { ...baseOpts, protocol: "independent", n: 2, k: [1, 2] };
  const whole = await evaluateTeam(team, tok, toyFamily, toyProblems, opts);
  const batched = await evaluateTeam(team, tok, toyFamily, toyProblems, { ...opts, promptsPerBatch: 2 });
  assert.deepEqual(batched.metrics, whole.metrics);
  assert.equal(whole.metrics["avg@1"], 2 / 5);
  assert.equal(whole.metrics["maj@2"], 2 / 5);
  assert.deepEqual(
    whole.perAgent.map((a) => a.soloAccuracy),
    [3 / 5, 2 / 5, 2 / 5],
  );
});

test("matched budget: one model with n·A samples; pass@k and maj@k are its pass@(A·k) and maj@(A·k)", async () => {
  const member = new ScriptedMember(1, 1);
  const A = 3;
  const opts: EvalOptions = { ...baseOpts, n: 2, k: [1, 2] };
  const r = await evaluateMatchedBudget(member, tok, toyFamily, toyProblems, opts, A);
  assert.equal(r.n, opts.n * A);
  assert.equal(r.name, "single");
  assert.equal(r.budgetFactor, A);
  const n = opts.n * A;
  const direct = await rolloutTeam([member], tok, toyProblems, n, opts, toyFamily.verify, new Rng(opts.seed));
  assert.equal(direct.length, toyProblems.length * n);
  const P = toyProblems.length;
  for (const k of opts.k) {
    let pass = 0;
    let maj = 0;
    for (let i = 0; i < P; i++) {
      const group = direct.slice(i * n, (i + 1) * n);
      pass += passAtK(n, group.filter((t) => t.reward === 1).length, A * k);
      maj += majorityVote(group.slice(0, A * k).map((t) => t.answer)) === toyProblems[i].answer ? 1 : 0;
    }
    assert.ok(Math.abs(r.metrics[`pass@${k}`] - pass / P) < 1e-12);
    assert.ok(Math.abs(r.metrics[`maj@${k}`] - maj / P) < 1e-12);
  }
  assert.ok(
    Math.abs(r.metrics["avg@1"] - direct.filter((t) => t.reward === 1).length / direct.length) < 1e-12,
  );
  await assert.rejects(
    () => evaluateMatchedBudget(member, tok, toyFamily, toyProblems, opts, 0),
    /teamSize must be an integer ≥ 1/,
  );
});

test("option errors, eval.jsonl rows (NaN → null) and the text table", async () => {
  const team = [new ScriptedMember(1, 1)];
  await assert.rejects(
    () => evaluateTeam(team, tok, toyFamily, toyProblems, { ...baseOpts, k: [8] }),
    /k=8 exceeds n=6 samples per prompt; raise eval.n to 8/,
  );
  await assert.rejects(() => evaluateTeam(team, tok, toyFamily, [], baseOpts), /no problems/);
  const noCi = await evaluateTeam(team, tok, toyFamily, toyProblems, {
    ...baseOpts,
    bootstrap: 0,
    name: "start",
  });
  const single = await evaluateMatchedBudget(
    team[0],
    tok,
    toyFamily,
    toyProblems,
    { ...baseOpts, k: [1] },
    2,
  );
  const rows = evalRows(7, [noCi, single], "toy");
  assert.equal(rows[0].step, 7);
  assert.equal(rows[0].name, "start");
  assert.equal(rows[0].task, "toy");
  assert.equal(rows[0].num_prompts, 5);
  assert.equal(rows[0]["avg@1"], noCi.metrics["avg@1"]);
  assert.equal(rows[0]["avg@1/ci_low"], null);
  assert.equal(rows[1].n, 12);
  assert.equal(rows[1].budget_factor, 2);
  assert.deepEqual(Object.keys((rows[0].per_agent as object[])[0]), ["agent", "avg@1", "ci_low", "ci_high"]);
  const parsed = JSON.parse(JSON.stringify(rows));
  assert.deepEqual(parsed, rows, "rows survive JSON unchanged (no NaN)");
  const table = formatEvalTable([noCi, single]).split("\n");
  assert.match(table[0], /^run\s+protocol\s+n\s+avg@1\s+avg@2\s+avg@4\s+pass@1/);
  assert.ok(table[2].startsWith("start") && table[3].startsWith("single"));
  assert.ok(table[3].includes("±"), "intervals shown as ±");
  assert.ok(!table[2].includes("±"), "no interval without bootstrap");
  assert.ok(table[2].length === table[0].length && table[3].length === table[0].length, "columns aligned");
  assert.match(table[4], /^start solo accuracy: agent 0 /);
});
