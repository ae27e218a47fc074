/**
 * The exact test bed itself (games, closed forms, sampler, enumeration, exact values, tabular
 * policy) and the coordination games where sequential SAT and simultaneous `joint` differ.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/engine/rng.js";
import { defaultStageConfig, runStage, type StageConfig } from "../src/algorithm/index.js";
import {
  CLIMBING,
  ExactValue,
  TabularPolicy,
  antiCoordinationGame,
  climbingGame,
  enumerateOneShot,
  evaluate,
  makeCollect,
  penaltyGame,
  randomGame,
  sampleTrajectories,
  tablesOf,
  type TabularGame,
} from "../src/testbed/index.js";

const oneHot = (A: number, a: number) => Float64Array.from({ length: A }, (_, x) => (x === a ? 1 : 0));

test("matrix games: agent 0 picks the row, agent 1 the column (pure-strategy J = payoff entry)", () => {
  for (const [game, M] of [
    [climbingGame(), CLIMBING],
    [
      penaltyGame(-7),
      [
        [10, 0, -7],
        [0, 2, 0],
        [-7, 0, 10],
      ],
    ],
  ] as [TabularGame, number[][]][])
    for (let a0 = 0; a0 < 3; a0++)
      for (let a1 = 0; a1 < 3; a1++)
        assert.equal(evaluate(game, [oneHot(3, a0), oneHot(3, a1)]).J, M[a0][a1]);
});

test("closed forms of a random multi-step game: Bellman equation, visitation mass, Monte Carlo returns", () => {
  const rng = new Rng(21);
  const game = randomGame(rng, { numStates: 5, numActions: 3, numAgents: 3, gamma: 0.9 });
  const team = [0, 1, 2].map(
    () =>
      new TabularPolicy(
        5,
        3,
        { kind: "sgd", lr: 0 },
        Float64Array.from({ length: 15 }, () => rng.normal()),
      ),
  );
  const tables = tablesOf(team);
  const ev = evaluate(game, tables);
  for (let s = 0; s < 5; s++) {
    const i = game.active[s][0];
    let v = 0;
    for (let a = 0; a < 3; a++) {
      let next = 0;
      for (let t = 0; t < 5; t++) next += game.transition[s][a * 5 + t] * ev.V[t];
      v += tables[i][s * 3 + a] * (game.reward[s][a] + 0.9 * next);
    }
    assert.ok(Math.abs(v - ev.V[s]) < 1e-12);
  }
  assert.ok(Math.abs(ev.D.reduce((x, y) => x + y, 0) - 1 / (1 - 0.9)) < 1e-10);
  const trajs = sampleTrajectories(game, team, 4000, rng, { groupSize: 5 });
  const R = trajs.map((t) => t.reward);
  const mean = R.reduce((x, y) => x + y, 0) / R.length;
  const sd = Math.sqrt(R.reduce((x, y) => x + (y - mean) ** 2, 0) / (R.length - 1));
  assert.ok(Math.abs(mean - ev.J) < 4 * (sd / Math.sqrt(R.length)), `MC ${mean} vs exact ${ev.J}`);
  for (const tr of trajs.slice(0, 200)) {
    // Behaviour log-probs are the policy's, and step rewards add up to the return.
    tr.tokens.forEach((a, t) =>
      assert.equal(tr.behaviourLogp[t], team[tr.owner[t]].logProbRow(tr.states![t])[a]),
    );
    assert.ok(Math.abs(Array.from(tr.stepRewards!).reduce((x, y) => x + y, 0) - tr.reward) < 1e-12);
  }
});

test("exact enumeration of one-shot games: probabilities sum to 1 and the weighted return is J; exact values per token", () => {
  const game = climbingGame();
  const rng = new Rng(4);
  const team = [0, 1].map(
    () =>
      new TabularPolicy(
        1,
        3,
        { kind: "sgd", lr: 0 },
        Float64Array.from({ length: 3 }, () => rng.normal()),
      ),
  );
  const trajs = enumerateOneShot(game, team);
  assert.equal(trajs.length, 9);
  const total = trajs.reduce((s, t) => s + t.weight!, 0);
  assert.ok(Math.abs(total - 1) < 1e-15);
  const J = trajs.reduce((s, t) => s + t.weight! * t.reward, 0);
  assert.ok(Math.abs(J - evaluate(game, tablesOf(team)).J) < 1e-12);
  const value = new ExactValue(game, team);
  const v = value.values(
    trajs,
    trajs.flatMap((_, traj) => [
      { traj, t: 0 },
      { traj, t: 1 },
    ]),
  );
  const p1 = team[1].probTable();
  trajs.forEach((tr, i) => {
    assert.ok(Math.abs(v[2 * i] - J) < 1e-12);
    // After agent 0 chose row a0, the value is E_{a1}[M[a0][a1]].
    const a0 = tr.tokens[0];
    const expected = [0, 1, 2].reduce((s, a1) => s + p1[a1] * CLIMBING[a0][a1], 0);
    assert.ok(Math.abs(v[2 * i + 1] - expected) < 1e-12);
  });
  assert.throws(
    () => enumerateOneShot(randomGame(rng, { numStates: 3, numActions: 2, numAgents: 2, gamma: 0.9 }), team),
    /not one-shot/,
  );
});

test("tabular policy: snapshot/restore is bit-exact for parameters and Adam state; misuse fails loudly", () => {
  const rng = new Rng(6);
  const game = randomGame(rng, { numStates: 4, numActions: 3, numAgents: 1, gamma: 0.9 });
  const p = new TabularPolicy(4, 3, { kind: "adam", lr: 0.1, weightDecay: 0.01 });
  assert.throws(() => p.backward(new Float64Array(3)), /backward called before logProbs/);
  const trajs = sampleTrajectories(game, [p], 3, rng, { groupSize: 2 });
  const refs = trajs.flatMap((tr, traj) => Array.from(tr.tokens, (_, t) => ({ traj, t })));
  const step = () => {
    const rows = p.logProbs(trajs, refs);
    p.zeroGrad();
    p.backward(Float64Array.from(rows, () => rng.normal()));
    p.optimizerStep();
  };
  step();
  const snap = p.snapshot();
  const before = { logits: Float64Array.from(p.logits), opt: p.optimizerState() };
  step();
  step();
  assert.notDeepEqual(p.optimizerState(), before.opt);
  p.restore(snap);
  assert.deepEqual(p.logits, before.logits);
  assert.deepEqual(p.optimizerState(), before.opt);
  // Continuing from the restored state reproduces the same trajectory of parameters.
  const rng2 = new Rng(99);
  const again = () => {
    const rows = p.logProbs(trajs, refs);
    p.zeroGrad();
    p.backward(Float64Array.from(rows, () => rng2.normal()));
    p.optimizerStep();
  };
  again();
  const first = Float64Array.from(p.logits);
  p.restore(snap);
  rng2.setState(new Rng(99).getState());
  again();
  assert.deepEqual(p.logits, first);
});

/** Runs `stages` exact stages of `algo` on a one-shot game; returns J after each stage (J[0] = start). */
async function exactRun(
  game: TabularGame,
  algo: StageConfig["algo"],
  init: number[][],
  lr: number,
  stages: number,
): Promise<number[]> {
  const A = game.numActions;
  const team = init.map((l) => new TabularPolicy(1, A, { kind: "adam", lr }, l));
  const cfg = defaultStageConfig(2, {
    algo,
    order: "static",
    promptsPerStage: 1,
    miniBatchGroups: 1,
    epochs: 4,
    scaleRewards: "none",
    advClip: 100,
  });
  const collect = makeCollect(game, { kind: "exact" });
  let beta = [0.1, 0.1];
  const J = [evaluate(game, tablesOf(team)).J];
  for (let step = 0; step < stages; step++) {
    const rec = await runStage({ team, collect, config: cfg, klCoef: beta, rng: new Rng(step), step });
    beta = rec.agents.map((a) => a.klCoefNext);
    J.push(evaluate(game, tablesOf(team)).J);
  }
  return J;
}

const minDiff = (J: number[]) => Math.min(...J.slice(1).map((v, i) => v - J[i]));

test("climbing game: joint settles on a miscoordinated point, sat climbs monotonically to the optimum (11)", async (t) => {
  const init = [
    [0.5, 0, 0],
    [0.5, 0, 0],
  ];
  const joint = await exactRun(climbingGame(), "joint", init, 0.1, 40);
  const sat = await exactRun(climbingGame(), "sat", init, 0.1, 40);
  t.diagnostic(
    `start J=${joint[0].toFixed(3)} joint after 40 stages=${joint[40].toFixed(3)} sat=${sat[40].toFixed(3)} sat min stage ΔJ=${minDiff(sat).toExponential(2)}`,
  );
  assert.ok(joint[40] < 6, `joint reached ${joint[40]}`);
  assert.ok(sat[40] > 10.5, `sat reached ${sat[40]}`);
  assert.ok(minDiff(sat) > 0, "sat decreased J at some stage");
});

test("anti-coordination game: joint lowers J at some stage, sat improves at every stage", async (t) => {
  const init = [
    [0.08, 0],
    [0.08, 0],
  ];
  const joint = await exactRun(antiCoordinationGame(), "joint", init, 0.1, 6);
  const sat = await exactRun(antiCoordinationGame(), "sat", init, 0.1, 6);
  t.diagnostic(
    `joint J: ${joint.map((x) => x.toFixed(4)).join(" ")} | sat J: ${sat.map((x) => x.toFixed(4)).join(" ")}`,
  );
  assert.ok(minDiff(joint) < -1e-3, "joint should decrease J at some stage");
  assert.ok(minDiff(sat) > 0);
  assert.ok(sat[6] > joint[6] + 0.1);
});
