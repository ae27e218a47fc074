/**
 * Closed-form quantities of a tabular game under a team of tabular policies (probability tables,
 * one (S, A) table per agent): V, joint Q, per-agent advantages, J, the discounted visitation
 * D(s) = Σ_t γ^t Pr(s_t = s) (unnormalised; d = (1−γ)·D is the occupancy), exact per-state KL and TV,
 * the exact trust-region maximiser π_new ∝ π_cur·exp(A/η), and the analysis of one block step:
 * its exact improvement, surrogate, the paper's bound (Thm 4.2) and the CPO bound (Achiam et al.
 * 2017, Cor. 1).
 *
 * Block-step bounds (only agent i changes, so the team KL/TV at s equal agent i's, Lemma 4.3):
 *   J' − J = Σ_s D'(s)·Ā(s),  L = Σ_s D(s)·Ā(s),  Ā(s) = E_{a~π'_i}[A_i(s, a)]
 *   |J' − J − L| ≤ ε·‖D' − D‖₁ ≤ ε·(2γ/(1−γ))·Σ_s D(s)·TV(s)        (CPO, ε = max_s |Ā(s)|)
 *                ≤ (2γ/(1−γ)²)·A_max·sqrt(δ/2)                       (paper: ΣD ≤ 1/(1−γ), Pinsker)
 */
import { klRow, tvRow } from "../algorithm/kl.js";
import { numJoint, type TabularGame } from "./games.js";

/** Per agent, (S, A) probabilities. */
export type Tables = Float64Array[];

/** Probability of every joint action at s (length A^{|active|}). */
export function jointProbs(game: TabularGame, tables: Tables, s: number): Float64Array {
  const A = game.numActions;
  const act = game.active[s];
  const J = numJoint(game, s);
  const out = new Float64Array(J);
  for (let j = 0; j < J; j++) {
    let p = 1;
    let rest = j;
    for (const i of act) {
      p *= tables[i][s * A + (rest % A)];
      rest = Math.floor(rest / A);
    }
    out[j] = p;
  }
  return out;
}

/** Solves M·x = b in place copies (Gaussian elimination with partial pivoting). */
export function solveLinear(M: Float64Array, b: Float64Array, n: number): Float64Array {
  const a = Float64Array.from(M);
  const x = Float64Array.from(b);
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r * n + c]) > Math.abs(a[piv * n + c])) piv = r;
    if (a[piv * n + c] === 0) throw new Error("solveLinear: singular matrix");
    if (piv !== c) {
      for (let k = 0; k < n; k++) [a[c * n + k], a[piv * n + k]] = [a[piv * n + k], a[c * n + k]];
      [x[c], x[piv]] = [x[piv], x[c]];
    }
    for (let r = c + 1; r < n; r++) {
      const f = a[r * n + c] / a[c * n + c];
      if (f === 0) continue;
      for (let k = c; k < n; k++) a[r * n + k] -= f * a[c * n + k];
      x[r] -= f * x[c];
    }
  }
  for (let r = n - 1; r >= 0; r--) {
    let s = x[r];
    for (let k = r + 1; k < n; k++) s -= a[r * n + k] * x[k];
    x[r] = s / a[r * n + r];
  }
  return x;
}

export interface Evaluation {
  /** (S) state values. */
  V: Float64Array;
  /** Per state, joint-action values Q(s, j) = r + γ·Σ P·V. */
  Q: Float64Array[];
  /** (S) discounted visitation D. */
  D: Float64Array;
  J: number;
}

/** Exact policy evaluation of the team. */
export function evaluate(game: TabularGame, tables: Tables): Evaluation {
  const S = game.numStates;
  const g = game.gamma;
  const M = new Float64Array(S * S); // I − γ·P_π
  const r = new Float64Array(S);
  const probs: Float64Array[] = [];
  for (let s = 0; s < S; s++) {
    M[s * S + s] += 1;
    const p = jointProbs(game, tables, s);
    probs.push(p);
    for (let j = 0; j < p.length; j++) {
      r[s] += p[j] * game.reward[s][j];
      for (let t = 0; t < S; t++) M[s * S + t] -= g * p[j] * game.transition[s][j * S + t];
    }
  }
  const V = solveLinear(M, r, S);
  const Mt = new Float64Array(S * S);
  for (let s = 0; s < S; s++) for (let t = 0; t < S; t++) Mt[t * S + s] = M[s * S + t];
  const D = solveLinear(Mt, game.rho0, S);
  const Q = probs.map((p, s) => {
    const q = new Float64Array(p.length);
    for (let j = 0; j < p.length; j++) {
      let ev = 0;
      for (let t = 0; t < S; t++) ev += game.transition[s][j * S + t] * V[t];
      q[j] = game.reward[s][j] + g * ev;
    }
    return q;
  });
  let J = 0;
  for (let s = 0; s < S; s++) J += game.rho0[s] * V[s];
  return { V, Q, D, J };
}

/** (S, A) advantage A_i(s, a) = E_{a_−i}[Q(s, (a, a_−i))] − V(s); rows of states where i is inactive are 0. */
export function agentAdvantage(
  game: TabularGame,
  tables: Tables,
  agent: number,
  ev: Evaluation,
): Float64Array {
  const A = game.numActions;
  const out = new Float64Array(game.numStates * A);
  for (let s = 0; s < game.numStates; s++) {
    const k = game.active[s].indexOf(agent);
    if (k < 0) continue;
    const act = game.active[s];
    const q = new Float64Array(A);
    for (let j = 0; j < numJoint(game, s); j++) {
      // Probability of the others' part of j, computed directly so that Q(s, a) − V(s) is also
      // right for actions the agent never takes (π_i(a|s) = 0).
      let others = 1;
      let rest = j;
      for (let m = 0; m < act.length; m++, rest = Math.floor(rest / A))
        if (m !== k) others *= tables[act[m]][s * A + (rest % A)];
      q[Math.floor(j / A ** k) % A] += others * ev.Q[s][j];
    }
    for (let a = 0; a < A; a++) out[s * A + a] = q[a] - ev.V[s];
  }
  return out;
}

/**
 * Exact trust-region maximiser on one state: π_η ∝ π·exp(A/η), KL(π_η ‖ π) decreasing in η, with η
 * found by bisection on log η so that KL = δ (feasible side kept: KL ≤ δ). If even the greedy limit
 * (π restricted to argmax A) is within δ it is returned; constant A returns π.
 */
export function tiltToRadius(pi: Float64Array, adv: Float64Array, delta: number): Float64Array {
  const A = pi.length;
  let amax = -Infinity;
  let amin = Infinity;
  for (let a = 0; a < A; a++) {
    if (pi[a] <= 0) continue;
    amax = Math.max(amax, adv[a]);
    amin = Math.min(amin, adv[a]);
  }
  const span = amax - amin;
  if (!(span > 1e-14)) return Float64Array.from(pi);
  const lpi = Float64Array.from(pi, Math.log);
  const tilt = (eta: number) => {
    const l = new Float64Array(A);
    let m = -Infinity;
    for (let a = 0; a < A; a++) {
      l[a] = pi[a] > 0 ? lpi[a] + (adv[a] - amax) / eta : -Infinity;
      m = Math.max(m, l[a]);
    }
    let z = 0;
    for (let a = 0; a < A; a++) z += Math.exp(l[a] - m);
    for (let a = 0; a < A; a++) l[a] -= m + Math.log(z);
    return l;
  };
  let massTop = 0;
  for (let a = 0; a < A; a++) if (pi[a] > 0 && adv[a] === amax) massTop += pi[a];
  if (-Math.log(massTop) <= delta) {
    const out = new Float64Array(A);
    for (let a = 0; a < A; a++) if (pi[a] > 0 && adv[a] === amax) out[a] = pi[a] / massTop;
    return out;
  }
  let lo = Math.log(span) - 40; // KL > δ
  let hi = Math.log(span) + 40; // KL < δ
  let best = tilt(Math.exp(hi));
  for (let it = 0; it < 200; it++) {
    const mid = 0.5 * (lo + hi);
    const l = tilt(Math.exp(mid));
    const kl = klRow(l, 0, lpi, 0, A);
    if (kl <= delta) {
      hi = mid;
      best = l;
      if (delta - kl < 1e-13) break;
    } else lo = mid;
  }
  return Float64Array.from(best, Math.exp);
}

export interface BlockStep {
  jBefore: number;
  jAfter: number;
  /** Exact surrogate L = Σ_s D(s)·E_{π'}[A(s,·)]. */
  surrogate: number;
  /** max_s KL(π' ‖ π)(s) and max TV over the agent's states. */
  klMax: number;
  tvMax: number;
  /** ε = max_s |E_{π'}[A(s,·)]|; A_max = max over the agent's states and actions of |A|. */
  epsilon: number;
  aMax: number;
  /** Paper bound L − (2γ/(1−γ)²)·A_max·sqrt(δ/2) with the given radius δ (valid when klMax ≤ δ). */
  paperBound: number;
  /** CPO bound L − (2γ·ε/(1−γ))·Σ_s D(s)·TV(s). */
  cpoBound: number;
  /** Occupancy-shift penalty of the paper bound. */
  paperPenalty: number;
}

/** Exact analysis of replacing agent i's table by `next` while the other agents stay fixed. */
export function blockStep(
  game: TabularGame,
  tables: Tables,
  agent: number,
  next: Float64Array,
  delta: number,
): BlockStep {
  const A = game.numActions;
  const g = game.gamma;
  const ev = evaluate(game, tables);
  const adv = agentAdvantage(game, tables, agent, ev);
  const after = tables.slice();
  after[agent] = next;
  const jAfter = evaluate(game, after).J;
  const cur = tables[agent];
  let L = 0;
  let eps = 0;
  let aMax = 0;
  let klMax = 0;
  let tvMax = 0;
  let dtv = 0;
  const lcur = new Float64Array(A);
  const lnext = new Float64Array(A);
  for (let s = 0; s < game.numStates; s++) {
    if (!game.active[s].includes(agent)) continue;
    let abar = 0;
    for (let a = 0; a < A; a++) {
      abar += next[s * A + a] * adv[s * A + a];
      aMax = Math.max(aMax, Math.abs(adv[s * A + a]));
      lcur[a] = Math.log(cur[s * A + a]);
      lnext[a] = Math.log(next[s * A + a]);
    }
    L += ev.D[s] * abar;
    eps = Math.max(eps, Math.abs(abar));
    const tv = tvRow(lnext, 0, lcur, 0, A);
    klMax = Math.max(klMax, klRow(lnext, 0, lcur, 0, A));
    tvMax = Math.max(tvMax, tv);
    dtv += ev.D[s] * tv;
  }
  const paperPenalty = ((2 * g) / (1 - g) ** 2) * aMax * Math.sqrt(delta / 2);
  return {
    jBefore: ev.J,
    jAfter,
    surrogate: L,
    klMax,
    tvMax,
    epsilon: eps,
    aMax,
    paperBound: L - paperPenalty,
    cpoBound: L - ((2 * g * eps) / (1 - g)) * dtv,
    paperPenalty,
  };
}

/** Exact trust-region maximisation of agent i under the team `tables`: every state of i tilted to radius δ. */
export function trustRegionStep(
  game: TabularGame,
  tables: Tables,
  agent: number,
  delta: number,
): Float64Array {
  const A = game.numActions;
  const ev = evaluate(game, tables);
  const adv = agentAdvantage(game, tables, agent, ev);
  const next = Float64Array.from(tables[agent]);
  for (let s = 0; s < game.numStates; s++) {
    if (!game.active[s].includes(agent)) continue;
    next.set(
      tiltToRadius(tables[agent].subarray(s * A, (s + 1) * A), adv.subarray(s * A, (s + 1) * A), delta),
      s * A,
    );
  }
  return next;
}

export interface StageAnalysis {
  jBefore: number;
  jAfter: number;
  /** Per block step in order σ (agent σ[i] moves from its `before` table to its `after` table). */
  steps: BlockStep[];
  /** Σ of the paper's single-step bounds (Thm 4.4) and of the CPO bounds. */
  paperBound: number;
  cpoBound: number;
}

/**
 * Exact certificate of a finished stage (e.g. one run by runStage on sampled data): replays the
 * block steps in order σ from the tables before the stage to the tables after it. Each step's paper
 * bound uses radius max(δ_i, the step's exact max KL), so it is valid even where the sampled check
 * let some state exceed δ_i.
 */
export function analyseStage(
  game: TabularGame,
  before: Tables,
  after: Tables,
  sigma: readonly number[],
  deltas: readonly number[],
): StageAnalysis {
  let cur = before.slice();
  const steps: BlockStep[] = [];
  for (const a of sigma) {
    const probe = blockStep(game, cur, a, after[a], deltas[a]);
    steps.push(probe.klMax > deltas[a] ? blockStep(game, cur, a, after[a], probe.klMax) : probe);
    cur = cur.slice();
    cur[a] = after[a];
  }
  return {
    jBefore: evaluate(game, before).J,
    jAfter: evaluate(game, cur).J,
    steps,
    paperBound: steps.reduce((s, x) => s + x.paperBound, 0),
    cpoBound: steps.reduce((s, x) => s + x.cpoBound, 0),
  };
}
