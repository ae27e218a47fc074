/**
 * The guarantees of sat-method §4 checked with exact quantities on random tabular games (3 agents,
 * one owner per state, γ = 0.9): Lemma 4.3, the single-step bound (Thm 4.2), the stage bound
 * (Thm 4.4), the CPO bound, monotone J under exact trust-region maximisation, every order σ, the
 * one-shot identity "J change = surrogate", simultaneous vs sequential updates, and Stage-0 swaps.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/engine/rng.js";
import { defaultStageConfig, klRow, runStage } from "../src/algorithm/index.js";
import { projectToTrustRegion } from "../src/swap/projection.js";
import {
  antiCoordinationGame,
  matrixGame,
  blockStep,
  evaluate,
  randomGame,
  tiltToRadius,
  trustRegionStep,
  agentAdvantage,
  analyseStage,
  makeCollect,
  tablesOf,
  TabularPolicy,
  type Tables,
  type TabularGame,
} from "../src/testbed/index.js";

const TOL = 1e-10;

function randomTables(rng: Rng, game: TabularGame, scale = 1): Tables {
  const A = game.numActions;
  return Array.from({ length: game.numAgents }, () => {
    const t = new Float64Array(game.numStates * A);
    for (let s = 0; s < game.numStates; s++) {
      let z = 0;
      for (let a = 0; a < A; a++) z += t[s * A + a] = Math.exp(scale * rng.normal());
      for (let a = 0; a < A; a++) t[s * A + a] /= z;
    }
    return t;
  });
}

function randomDist(rng: Rng, V: number, scale = 1.5): Float64Array {
  const p = Float64Array.from({ length: V }, () => Math.exp(scale * rng.normal()));
  const z = p.reduce((x, y) => x + y, 0);
  return p.map((x) => x / z);
}

const logOf = (p: Float64Array) => Float64Array.from(p, Math.log);

test("Lemma 4.3: KL of a product policy equals the sum of the factors' KLs", () => {
  const rng = new Rng(11);
  let worst = 0;
  for (let inst = 0; inst < 300; inst++) {
    const n = 2 + rng.int(3);
    const sizes = Array.from({ length: n }, () => 2 + rng.int(4));
    const P = sizes.map((V) => randomDist(rng, V));
    const Q = sizes.map((V) => randomDist(rng, V));
    // Explicit joint distributions over the product space.
    let jp = Float64Array.of(1);
    let jq = Float64Array.of(1);
    for (let i = 0; i < n; i++) {
      const np = new Float64Array(jp.length * sizes[i]);
      const nq = new Float64Array(jq.length * sizes[i]);
      for (let x = 0; x < jp.length; x++)
        for (let a = 0; a < sizes[i]; a++) {
          np[x * sizes[i] + a] = jp[x] * P[i][a];
          nq[x * sizes[i] + a] = jq[x] * Q[i][a];
        }
      jp = np;
      jq = nq;
    }
    const joint = klRow(logOf(jp), 0, logOf(jq), 0, jp.length);
    const sum = P.reduce((s, p, i) => s + klRow(logOf(p), 0, logOf(Q[i]), 0, sizes[i]), 0);
    worst = Math.max(worst, Math.abs(joint - sum) / Math.max(1, sum));
    // The intermediate-policy step changes one factor only: the team KL is that factor's KL.
    const k = rng.int(n);
    const mixed = Q.map((q, i) => (i === k ? P[i] : q));
    let jm = Float64Array.of(1);
    for (let i = 0; i < n; i++) {
      const nm = new Float64Array(jm.length * sizes[i]);
      for (let x = 0; x < jm.length; x++)
        for (let a = 0; a < sizes[i]; a++) nm[x * sizes[i] + a] = jm[x] * mixed[i][a];
      jm = nm;
    }
    const one = klRow(logOf(jm), 0, logOf(jq), 0, jm.length);
    assert.ok(Math.abs(one - klRow(logOf(P[k]), 0, logOf(Q[k]), 0, sizes[k])) < 1e-12);
  }
  assert.ok(worst < 1e-12, `relative error ${worst}`);
});

interface BoundStats {
  steps: number;
  paperVacuous: number;
  cpoPositive: number;
  jDecreases: number;
  worstPaperSlack: number;
  worstCpoSlack: number;
  worstStageSlack: number;
}

/**
 * One stage in order σ; `update` produces agent i's new table from the intermediate team. Checks
 * both single-step bounds at every step and the stage bound, with radius δ (every state's KL ≤ δ).
 */
function stageChecked(
  game: TabularGame,
  tables: Tables,
  sigma: number[],
  delta: number,
  stats: BoundStats,
  update: (t: Tables, a: number) => Float64Array,
): Tables {
  let cur = tables.slice();
  const j0 = evaluate(game, cur).J;
  let boundSum = 0;
  for (const a of sigma) {
    const next = update(cur, a);
    const st = blockStep(game, cur, a, next, delta);
    assert.ok(st.klMax <= delta * (1 + 1e-9), `step KL ${st.klMax} exceeds δ ${delta}`);
    const gain = st.jAfter - st.jBefore;
    stats.steps++;
    stats.worstPaperSlack = Math.min(stats.worstPaperSlack, gain - st.paperBound);
    stats.worstCpoSlack = Math.min(stats.worstCpoSlack, gain - st.cpoBound);
    assert.ok(gain >= st.paperBound - TOL, `Thm 4.2 violated: ΔJ ${gain} < bound ${st.paperBound}`);
    assert.ok(gain >= st.cpoBound - TOL, `CPO bound violated: ΔJ ${gain} < bound ${st.cpoBound}`);
    if (st.paperBound <= 0) stats.paperVacuous++;
    if (st.cpoBound > 0) stats.cpoPositive++;
    if (gain < -TOL) stats.jDecreases++;
    boundSum += st.paperBound;
    cur = cur.slice();
    cur[a] = next;
  }
  const stageGain = evaluate(game, cur).J - j0;
  stats.worstStageSlack = Math.min(stats.worstStageSlack, stageGain - boundSum);
  assert.ok(stageGain >= boundSum - TOL, `Thm 4.4 violated: ΔJ ${stageGain} < Σ bounds ${boundSum}`);
  return cur;
}

const newStats = (): BoundStats => ({
  steps: 0,
  paperVacuous: 0,
  cpoPositive: 0,
  jDecreases: 0,
  worstPaperSlack: Infinity,
  worstCpoSlack: Infinity,
  worstStageSlack: Infinity,
});

const GAME = { numStates: 6, numActions: 3, numAgents: 3, gamma: 0.9 };

test("Thm 4.2 / 4.4 and CPO bounds hold at every step of exact trust-region stages on 200 random games; J never decreases", (t) => {
  const rng = new Rng(2026);
  const stats = newStats();
  for (let g = 0; g < 200; g++) {
    const game = randomGame(rng, GAME);
    let tables = randomTables(rng, game);
    const delta = [0.01, 0.003, 0.001][g % 3];
    for (let stage = 0; stage < 3; stage++) {
      const jBefore = evaluate(game, tables).J;
      const sigma = rng.shuffle([0, 1, 2]);
      tables = stageChecked(game, tables, sigma, delta, stats, (cur, a) =>
        trustRegionStep(game, cur, a, delta),
      );
      assert.ok(evaluate(game, tables).J >= jBefore - TOL);
    }
  }
  assert.equal(stats.jDecreases, 0);
  t.diagnostic(
    `steps=${stats.steps} paper-bound vacuous=${(stats.paperVacuous / stats.steps).toFixed(3)} ` +
      `CPO-bound positive=${(stats.cpoPositive / stats.steps).toFixed(3)} J decreases=${stats.jDecreases} ` +
      `min slack paper=${stats.worstPaperSlack.toExponential(2)} cpo=${stats.worstCpoSlack.toExponential(2)} stage=${stats.worstStageSlack.toExponential(2)}`,
  );
});

test("the stage bound holds for every order σ", (t) => {
  const rng = new Rng(77);
  const orders = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0],
  ];
  const stats = newStats();
  let spread = 0;
  for (let g = 0; g < 40; g++) {
    const game = randomGame(rng, GAME);
    const tables = randomTables(rng, game);
    const finals = orders.map(
      (sigma) =>
        evaluate(
          game,
          stageChecked(game, tables, sigma, 0.01, stats, (cur, a) => trustRegionStep(game, cur, a, 0.01)),
        ).J,
    );
    spread = Math.max(spread, Math.max(...finals) - Math.min(...finals));
  }
  assert.equal(stats.steps, 40 * 6 * 3);
  // Orders reach different policies (the bound is order-free, the outcome is not).
  assert.ok(spread > 0);
  t.diagnostic(
    `orders=6 games=40 steps=${stats.steps} max J spread across orders=${spread.toExponential(2)} min stage slack=${stats.worstStageSlack.toExponential(2)}`,
  );
});

test("noisy (misestimated) trust-region steps: J can drop, the bounds still hold at every step", (t) => {
  const rng = new Rng(5);
  const stats = newStats();
  const delta = 0.01;
  for (let g = 0; g < 100; g++) {
    const game = randomGame(rng, GAME);
    let tables = randomTables(rng, game);
    for (let stage = 0; stage < 2; stage++) {
      const sigma = rng.shuffle([0, 1, 2]);
      tables = stageChecked(game, tables, sigma, delta, stats, (cur, a) => {
        // Tilt toward a noisy advantage estimate: the step stays inside the ball but can point downhill.
        const A = game.numActions;
        const adv = agentAdvantage(game, cur, a, evaluate(game, cur));
        const next = Float64Array.from(cur[a]);
        for (let s = 0; s < game.numStates; s++) {
          if (!game.active[s].includes(a)) continue;
          const noisy = Float64Array.from({ length: A }, (_, x) => adv[s * A + x] + 0.3 * rng.normal());
          next.set(tiltToRadius(cur[a].subarray(s * A, (s + 1) * A), noisy, delta), s * A);
        }
        return next;
      });
    }
  }
  assert.ok(stats.jDecreases > 0, "noise this large should produce some decreasing steps");
  t.diagnostic(
    `steps=${stats.steps} J-decrease rate=${(stats.jDecreases / stats.steps).toFixed(3)} paper vacuous=${(stats.paperVacuous / stats.steps).toFixed(3)} ` +
      `CPO positive=${(stats.cpoPositive / stats.steps).toFixed(3)}`,
  );
});

test("tiltToRadius lands on the KL radius and raises the expected advantage", () => {
  const rng = new Rng(3);
  for (let i = 0; i < 200; i++) {
    const V = 2 + rng.int(5);
    const pi = randomDist(rng, V);
    const adv = Float64Array.from({ length: V }, () => rng.normal());
    const delta = 0.001 + 0.02 * rng.uniform();
    const next = tiltToRadius(pi, adv, delta);
    const kl = klRow(logOf(next), 0, logOf(pi), 0, V);
    let top = 0;
    for (let a = 0; a < V; a++) if (adv[a] === Math.max(...adv)) top += pi[a];
    if (-Math.log(top) > delta) assert.ok(kl <= delta && delta - kl < 1e-9, `kl ${kl} vs δ ${delta}`);
    else assert.ok(kl <= delta);
    const e = (p: Float64Array) => p.reduce((s, x, a) => s + x * adv[a], 0);
    assert.ok(e(next) >= e(pi) - 1e-15);
  }
});

test("one-shot games: the J change of a block step equals its surrogate exactly; simultaneous steps can lower J", () => {
  const game = antiCoordinationGame();
  const p = 0.55;
  const tables: Tables = [Float64Array.of(p, 1 - p), Float64Array.of(p, 1 - p)];
  const next0 = trustRegionStep(game, tables, 0, 0.05);
  const st = blockStep(game, tables, 0, next0, 0.05);
  assert.ok(
    Math.abs(st.jAfter - st.jBefore - st.surrogate) < 1e-14,
    `ΔJ ${st.jAfter - st.jBefore} vs L ${st.surrogate}`,
  );
  assert.ok(st.surrogate > 0);
  // Both agents switch at once (each a best response to the *old* partner): J drops.
  const next1 = trustRegionStep(game, tables, 1, 0.05);
  const jSim = evaluate(game, [next0, next1]).J;
  assert.ok(jSim < st.jBefore, `simultaneous ${jSim} should be below ${st.jBefore}`);
  // Sequentially, agent 1 responds to agent 0's new policy: J rises at both steps.
  const after0: Tables = [next0, tables[1]];
  const seq1 = trustRegionStep(game, after0, 1, 0.05);
  const jSeq = evaluate(game, [next0, seq1]).J;
  assert.ok(jSeq > st.jAfter && st.jAfter > st.jBefore, `sequential ${st.jBefore} → ${st.jAfter} → ${jSeq}`);
});

test("Stage 0: a projected swap keeps the single-step and stage bounds", (t) => {
  const rng = new Rng(99);
  const stats = newStats();
  const delta0 = 0.01;
  let projectedStates = 0;
  for (let g = 0; g < 60; g++) {
    const game = randomGame(rng, GAME);
    const tables = randomTables(rng, game);
    const swapped = rng.int(3);
    const pre = randomTables(rng, game, 2)[swapped];
    const A = game.numActions;
    // Stage with the swap as the first block step, then exact trust-region steps for the others.
    const sigma = [swapped, ...rng.shuffle([0, 1, 2].filter((a) => a !== swapped))];
    stageChecked(game, tables, sigma, delta0, stats, (cur, a) => {
      if (a !== swapped) return trustRegionStep(game, cur, a, delta0);
      const out = Float64Array.from(cur[a]);
      for (let s = 0; s < game.numStates; s++) {
        if (!game.active[s].includes(a)) continue;
        const pr = projectToTrustRegion(
          logOf(pre.subarray(s * A, (s + 1) * A)),
          logOf(cur[a].subarray(s * A, (s + 1) * A)),
          delta0,
        );
        if (pr.projected) projectedStates++;
        out.set(Float64Array.from(pr.logp, Math.exp), s * A);
      }
      return out;
    });
  }
  assert.ok(projectedStates > 0);
  t.diagnostic(
    `swaps=60 projected states=${projectedStates} steps=${stats.steps} min step slack=${stats.worstPaperSlack.toExponential(2)} min stage slack=${stats.worstStageSlack.toExponential(2)}`,
  );
});

test("runStage on sampled rollouts (gradient steps): the exact bounds hold at every block step; J decreases are counted", async (t) => {
  const rng = new Rng(31);
  let steps = 0;
  let decreases = 0;
  let stageDecreases = 0;
  let vacuous = 0;
  let cpoPositive = 0;
  let stages = 0;
  for (let g = 0; g < 12; g++) {
    const game = randomGame(rng, GAME);
    const team = [0, 1, 2].map(
      () =>
        new TabularPolicy(
          6,
          3,
          { kind: "adam", lr: 0.05 },
          Float64Array.from({ length: 18 }, () => rng.normal()),
        ),
    );
    const collect = makeCollect(game, { kind: "sample", rng: rng.fork(`rollout/${g}`), groupSize: 4 });
    const cfg = defaultStageConfig(3, { promptsPerStage: 16, miniBatchGroups: 4, order: "random" });
    let beta = [0.05, 0.05, 0.05];
    for (let step = 0; step < 4; step++) {
      const before = tablesOf(team);
      const rec = await runStage({
        team,
        collect,
        config: cfg,
        klCoef: beta,
        rng: rng.fork(`stage/${g}/${step}`),
        step,
      });
      beta = rec.agents.map((a) => a.klCoefNext);
      const an = analyseStage(game, before, tablesOf(team), rec.sigma, cfg.klRadius);
      for (const s of an.steps) {
        steps++;
        const gain = s.jAfter - s.jBefore;
        assert.ok(
          gain >= s.paperBound - TOL && gain >= s.cpoBound - TOL,
          `bound violated: ΔJ ${gain}, paper ${s.paperBound}, cpo ${s.cpoBound}`,
        );
        if (gain < -TOL) decreases++;
        if (s.paperBound <= 0) vacuous++;
        if (s.cpoBound > 0) cpoPositive++;
      }
      assert.ok(an.jAfter - an.jBefore >= an.paperBound - TOL);
      stages++;
      if (an.jAfter < an.jBefore - TOL) stageDecreases++;
    }
  }
  t.diagnostic(
    `stages=${stages} block steps=${steps} J-decrease rate per step=${(decreases / steps).toFixed(3)} per stage=${(stageDecreases / stages).toFixed(3)} ` +
      `paper vacuous=${(vacuous / steps).toFixed(3)} CPO positive=${(cpoPositive / steps).toFixed(3)}`,
  );
});

test("testbed: agentAdvantage is Q(s, a) − V(s) also for actions of probability 0 (deterministic rows)", () => {
  const M = [
    [3, 1],
    [5, -2],
  ];
  const game = matrixGame("det", M);
  // Agent 0 always plays action 0; agent 1 mixes 0.25 / 0.75.
  const tables: Tables = [Float64Array.of(1, 0), Float64Array.of(0.25, 0.75)];
  const ev = evaluate(game, tables);
  const adv = agentAdvantage(game, tables, 0, ev);
  // One-shot game (no transitions): Q(a0) = E_{a1}[M[a0][a1]], V = Q(0) since agent 0 plays 0.
  const q0 = 0.25 * 3 + 0.75 * 1;
  const q1 = 0.25 * 5 + 0.75 * -2;
  assert.ok(Math.abs(adv[0] - 0) < TOL, `A(0) = ${adv[0]}`);
  assert.ok(Math.abs(adv[1] - (q1 - q0)) < TOL, `A(1) = ${adv[1]}, expected ${q1 - q0}`);
  const adv1 = agentAdvantage(game, tables, 1, ev);
  assert.ok(Math.abs(adv1[0] - (3 - q0)) < TOL && Math.abs(adv1[1] - (1 - q0)) < TOL);
});
