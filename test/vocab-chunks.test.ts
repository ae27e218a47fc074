/**
 * Bounded memory with large vocabularies: the LM head runs only on the scored states, a chunk of
 * rows at a time, and the algorithm scores an agent's states a few trajectories at a time. Chunking
 * is a memory choice only: rows, gradients, stage records and parameters must not depend on it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/engine/rng.js";
import { float64Engine, type Engine } from "../src/engine/engine.js";
import { logSoftmaxForward } from "../src/engine/ops/softmax.js";
import { expectAllClose } from "../src/engine/check.js";
import { Transformer } from "../src/model/transformer.js";
import { validateModelConfig, type ModelConfig } from "../src/model/config.js";
import { LmPolicy } from "../src/team/lm-policy.js";
import { defaultStageConfig, prepareBatch, runStage, type Trajectory } from "../src/algorithm/index.js";
import { clipTerm, klPenalty, statesOf } from "../src/algorithm/surrogate.js";
import { RowLearner } from "../src/algorithm/row-learner.js";
import type { StateRef } from "../src/contracts/policy.js";

const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 };

function config(V: number): ModelConfig {
  return validateModelConfig({
    arch: "qwen3",
    vocabSize: V,
    dModel: 16,
    nLayers: 1,
    nHeads: 2,
    nKvHeads: 1,
    headDim: 8,
    dFF: 24,
    maxSeqLen: 32,
    normEps: 1e-6,
    ropeTheta: 10000,
    tiedEmbeddings: true,
    valueHead: false,
  });
}

/** Episodes of `len` random tokens after a 3-token prompt, turns of 4 tokens alternating between agents. */
function relay(
  rng: Rng,
  V: number,
  groups: number,
  perGroup: number,
  len: number,
  agents: number,
): Trajectory[] {
  const out: Trajectory[] = [];
  for (let g = 0; g < groups; g++)
    for (let e = 0; e < perGroup; e++) {
      const L = 3 + len;
      out.push({
        promptId: g,
        groupId: g,
        tokens: Int32Array.from({ length: L }, () => rng.int(V)),
        owner: Int8Array.from({ length: L }, (_, t) => (t < 3 ? -1 : Math.floor((t - 3) / 4) % agents)),
        behaviourLogp: new Float64Array(L),
        ownerVersion: new Int32Array(L),
        reward: rng.int(2),
        answer: null,
        truncated: false,
      });
    }
  return out;
}

test("vocab chunks: LmPolicy rows and gradients with a 5-row LM-head chunk equal one chunk and the full logits; no (B·T, V) buffer", () => {
  const V = 50;
  let largest = 0;
  const base = float64Engine();
  const engine: Engine = { ...base, alloc: (n) => ((largest = Math.max(largest, n)), base.alloc(n)) };
  const rng = new Rng(7);
  const m = new Transformer(config(V), engine, rng);
  for (let i = 0; i < m.params.length; i++) m.params[i] += 0.2 * rng.normal();
  const trajs = relay(rng, V, 1, 3, 12, 1);
  const states: StateRef[] = [];
  trajs.forEach((t, i) => t.owner.forEach((o, k) => o === 0 && states.push({ traj: i, t: k })));
  const S = states.length;
  const w = Float64Array.from({ length: S * V }, () => rng.normal());
  const run = (chunk: number) => {
    const pol = new LmPolicy(m, 0.7, optim);
    pol.headChunk = chunk;
    largest = 0; // from here on only scoring buffers (activations, head chunks) are allocated
    const rows = Float64Array.from(pol.logProbs(trajs, states));
    pol.zeroGrad();
    pol.backward(w);
    return { rows, grads: Float64Array.from(m.grads), largest };
  };
  const one = run(1000);
  const five = run(5);
  assert.ok(S > 10 && S % 5 !== 0, `${S} states`);
  // Scoring allocated activations and (chunk, V) head buffers, never (B·T, V) logits.
  assert.ok(five.largest < trajs.length * 15 * V, `largest buffer ${five.largest} floats`);
  expectAllClose(five.rows, one.rows, 0, 1e-13, "rows");
  expectAllClose(five.grads, one.grads, 1e-12, 1e-13, "gradients");
  // The same rows as the full forward's logits, row by row.
  const B = trajs.length;
  const T = 15;
  const ids = new Int32Array(B * T);
  trajs.forEach((t, b) => ids.set(t.tokens.subarray(0, T), b * T));
  const logits = m.forward(ids, B, T);
  const ref = new Float64Array(V);
  states.forEach((s, k) => {
    logSoftmaxForward(
      ref,
      logits.subarray((s.traj * T + s.t - 1) * V, (s.traj * T + s.t) * V),
      1,
      V,
      1 / 0.7,
    );
    expectAllClose(one.rows.subarray(k * V, (k + 1) * V), ref, 0, 1e-13, `row ${k}`);
  });
});

test("vocab chunks: clip term and KL penalty over pieces, normalised by the whole, add up to the whole", () => {
  const rng = new Rng(3);
  const V = 6;
  const trajs = relay(rng, V, 2, 3, 8, 2);
  const batch = prepareBatch(trajs, 2, V);
  const agent = batch.agents[1];
  const S = agent.refs.length;
  const logRows = (n: number) => {
    const x = Float64Array.from({ length: n * V }, () => rng.normal());
    for (let k = 0; k < n; k++)
      logSoftmaxForward(x.subarray(k * V, (k + 1) * V), x.slice(k * V, (k + 1) * V), 1, V, 1);
    return x;
  };
  const cur = logRows(S);
  const rows = logRows(S);
  const N = trajs.length;
  const d = {
    offsets: agent.offsets,
    adv: Float64Array.from({ length: N }, () => rng.normal()),
    w: Float64Array.from({ length: N }, () => 0.5 + rng.uniform()),
    prior: new Float64Array(N).fill(1),
    clipLow: 0.2,
    clipHigh: 0.3,
  };
  const chosenOf = (r: Float64Array) => Float64Array.from(agent.tokens, (tok, k) => r[k * V + tok]);
  const chosen = chosenOf(rows);
  const curChosen = chosenOf(cur);
  const all = Array.from({ length: N }, (_, i) => i);
  for (const ratio of ["sequence", "token"] as const) {
    const dc = { ...d, ratio };
    const dWhole = new Float64Array(S);
    const whole = clipTerm(dc, all, chosen, curChosen, dWhole);
    const klWhole = new Float64Array(S * V);
    const klMean = klPenalty(agent.offsets, d.prior, all, rows, cur, V, 0.7, klWhole);
    const dSum = new Float64Array(S);
    const klSum = new Float64Array(S * V);
    let objective = 0;
    let kl = 0;
    const pieces = [[0], [1, 2], [3], [4, 5]];
    for (const piece of pieces) {
      const ks = statesOf(agent.offsets, piece);
      const sub = (x: Float64Array, w: number) => {
        const out = new Float64Array(ks.length * w);
        ks.forEach((k, r) => out.set(x.subarray(k * w, (k + 1) * w), r * w));
        return out;
      };
      const dPiece = new Float64Array(ks.length);
      objective += clipTerm(dc, piece, sub(chosen, 1), curChosen, dPiece, all).objective;
      const klPiece = new Float64Array(ks.length * V);
      kl += klPenalty(agent.offsets, d.prior, piece, sub(rows, V), cur, V, 0.7, klPiece, all);
      ks.forEach((k, r) => {
        dSum[k] = dPiece[r];
        klSum.set(klPiece.subarray(r * V, (r + 1) * V), k * V);
      });
    }
    assert.ok(Math.abs(objective - whole.objective) < 1e-12, `${ratio}: ${objective} vs ${whole.objective}`);
    assert.ok(Math.abs(kl - klMean) < 1e-12, `${ratio}: KL ${kl} vs ${klMean}`);
    expectAllClose(dSum, dWhole, 1e-14, 1e-12, `${ratio} dChosen`);
    expectAllClose(klSum, klWhole, 1e-14, 1e-12, `${ratio} dKL`);
  }
});

test("vocab chunks: a SAT stage whose learners score a trajectory at a time gives the record and weights of one piece", async () => {
  const V = 40;
  const run = async (rowChunkEntries: number | undefined) => {
    const policies = [0, 1].map(
      (a) => new LmPolicy(new Transformer(config(V), float64Engine(), new Rng(10 + a)), 1, optim),
    );
    const team = policies.map((p) => new RowLearner(p, rowChunkEntries));
    const trajs = relay(new Rng(5), V, 2, 3, 12, 2);
    const { algo: _a, ...stage } = defaultStageConfig(2, {
      promptsPerStage: 2,
      epochs: 2,
      miniBatchGroups: 1,
      order: "static",
      klRadius: [1e-3, 1e-3],
    });
    const rec = await runStage({
      team,
      collect: () => trajs,
      config: { algo: "sat", ...stage },
      klCoef: [0.5, 0.5],
      rng: new Rng(9),
      step: 0,
    });
    return { rec, params: policies.map((p) => Float64Array.from(p.getParams())) };
  };
  const whole = await run(undefined);
  const pieces = await run(V); // one state's rows per piece: every trajectory is its own piece
  assert.ok(
    whole.rec.agents.some((a) => a.backtracks > 0),
    "the check backtracked",
  );
  for (let a = 0; a < 2; a++) {
    const x = whole.rec.agents[a];
    const y = pieces.rec.agents[a];
    assert.equal(y.accepted, x.accepted);
    assert.equal(y.candidatesTried, x.candidatesTried);
    for (const key of ["klQuantile", "klMax", "surrogateGain", "entropy", "ppoKl"] as const)
      assert.ok(
        Math.abs(y[key] - x[key]) <= 1e-10 * (1 + Math.abs(x[key])),
        `agent ${a} ${key}: ${y[key]} vs ${x[key]}`,
      );
    expectAllClose(pieces.params[a], whole.params[a], 1e-10, 1e-10, `agent ${a} parameters`);
  }
});
