/**
 * Cooperative games for the exact test bed. A game is a finite Markov game with a common reward:
 * at state s the agents active[s] act (in that order; one agent for "masked activation", two for a
 * simultaneous one-shot matrix game), the joint action index is j = Σ_k a_{active[s][k]}·A^k, the
 * team gets reward[s][j] and moves to s' with probability transition[s][j·S + s'] (rows may sum to
 * less than 1: the missing mass ends the episode). J = Σ_s ρ0(s)·V(s) with V = r_π + γ·P_π·V.
 *
 * Matrix games (Claus & Boutilier 1998, "The dynamics of reinforcement learning in cooperative
 * multiagent systems", AAAI): the climbing game and the penalty game; plus a 2×2 anti-coordination
 * game. Rows are agent 0's action, columns agent 1's.
 */
import type { Rng } from "../engine/rng.js";

export interface TabularGame {
  name: string;
  numStates: number;
  numActions: number;
  numAgents: number;
  /** Active agents per state, in acting order. */
  active: number[][];
  /** reward[s] has A^{|active[s]|} entries. */
  reward: Float64Array[];
  /** transition[s] is (A^{|active[s]|}, S), sub-stochastic rows. */
  transition: Float64Array[];
  /** (S) initial distribution. */
  rho0: Float64Array;
  /** Discount γ; sampled episodes continue with probability γ after each step, so E[return] = J. */
  gamma: number;
}

export function numJoint(game: TabularGame, s: number): number {
  return game.numActions ** game.active[s].length;
}

/** A one-state, two-agent game with payoff matrix M[a0][a1]; the episode ends after one step. */
export function matrixGame(name: string, M: number[][]): TabularGame {
  const A = M.length;
  const reward = new Float64Array(A * A);
  for (let a0 = 0; a0 < A; a0++) {
    if (M[a0].length !== A)
      throw new Error(`matrixGame ${name}: row ${a0} has ${M[a0].length} entries, expected ${A}`);
    for (let a1 = 0; a1 < A; a1++) reward[a0 + A * a1] = M[a0][a1];
  }
  return {
    name,
    numStates: 1,
    numActions: A,
    numAgents: 2,
    active: [[0, 1]],
    reward: [reward],
    transition: [new Float64Array(A * A)],
    rho0: Float64Array.of(1),
    gamma: 0.9,
  };
}

/** Climbing game: optimum (0,0) = 11 guarded by −30 miscoordination penalties. */
export const CLIMBING = [
  [11, -30, 0],
  [-30, 7, 6],
  [0, 0, 5],
];

/** Penalty game with penalty k ≤ 0: two optima (0,0) and (2,2) worth 10, miscoordinating them costs k. */
export function penaltyMatrix(k: number): number[][] {
  return [
    [10, 0, k],
    [0, 2, 0],
    [k, 0, 10],
  ];
}

/** Anti-coordination: 1 when the agents pick different actions. */
export const ANTI_COORDINATION = [
  [0, 1],
  [1, 0],
];

export function climbingGame(): TabularGame {
  return matrixGame("climbing", CLIMBING);
}

export function penaltyGame(k = -10): TabularGame {
  return matrixGame(`penalty(k=${k})`, penaltyMatrix(k));
}

export function antiCoordinationGame(): TabularGame {
  return matrixGame("anti-coordination", ANTI_COORDINATION);
}

export interface RandomGameOptions {
  numStates: number;
  numActions: number;
  numAgents: number;
  gamma: number;
}

/**
 * Random multi-step game with masked activation: one owner per state (every agent owns at least
 * one state when numStates ≥ numAgents), rewards U[0, 1), transitions from normalised U³ weights
 * (peaked rows, so policies matter), random ρ0. Episodes never end on their own; γ does.
 */
export function randomGame(rng: Rng, o: RandomGameOptions): TabularGame {
  const { numStates: S, numActions: A, numAgents: n } = o;
  const owners = Array.from({ length: S }, (_, s) => s % n);
  rng.shuffle(owners);
  const reward: Float64Array[] = [];
  const transition: Float64Array[] = [];
  for (let s = 0; s < S; s++) {
    const r = new Float64Array(A);
    const T = new Float64Array(A * S);
    for (let a = 0; a < A; a++) {
      r[a] = rng.uniform();
      let z = 0;
      for (let t = 0; t < S; t++) z += T[a * S + t] = rng.uniform() ** 3 + 1e-3;
      for (let t = 0; t < S; t++) T[a * S + t] /= z;
    }
    reward.push(r);
    transition.push(T);
  }
  const rho0 = new Float64Array(S);
  let z = 0;
  for (let s = 0; s < S; s++) z += rho0[s] = rng.uniform() + 0.1;
  for (let s = 0; s < S; s++) rho0[s] /= z;
  return {
    name: `random(S=${S},A=${A},n=${n})`,
    numStates: S,
    numActions: A,
    numAgents: n,
    active: owners.map((o) => [o]),
    reward,
    transition,
    rho0,
    gamma: o.gamma,
  };
}
