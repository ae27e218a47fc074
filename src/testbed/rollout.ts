/**
 * Trajectories of a tabular game in the algorithm's format, so SAT runs on the test bed through the
 * same runStage as language-model teams.
 *
 * - sampleTrajectories: P groups of G episodes, one start state s0 ~ ρ0 per group. At state s the
 *   active agents act in order (one token each, state id recorded); the step reward sits on the last
 *   token of the step; the episode continues with probability γ (then s' ~ P(·|s, j), leftover mass
 *   ends it), so the undiscounted return is an unbiased estimate of J. Episodes longer than
 *   maxSteps are truncated and record the next state as states[L] (GAE bootstrap).
 * - enumerateOneShot (exact mode): for one-shot games, every joint action at every start state with
 *   its exact probability as `weight`, one group per start state. Through runStage every mean is then
 *   an exact expectation (group mean = exact value, population std = exact std). Multi-step games
 *   have no finite enumeration; their exact quantities come from exact.ts directly.
 * - ExactValue: the exact value of the live team at every token position, for the `gae` estimator
 *   (use algo.gamma = 1 with sampled episodes: the discount is already in the continuation coin).
 */
import type { Rng } from "../engine/rng.js";
import type { Collect } from "../algorithm/stage.js";
import type { StateRef, Trajectory, ValuePolicy } from "../contracts/policy.js";
import { evaluate, jointProbs, type Tables } from "./exact.js";
import { numJoint, type TabularGame } from "./games.js";
import type { TabularPolicy } from "./tabular-policy.js";

export function tablesOf(team: readonly TabularPolicy[]): Tables {
  return team.map((p) => p.probTable());
}

export interface SampleOptions {
  groupSize: number;
  /** Cap on steps per episode (default 200); longer episodes are truncated. */
  maxSteps?: number;
  /** ownerVersion recorded per agent (default 0). */
  versions?: number[];
}

export function sampleTrajectories(
  game: TabularGame,
  team: readonly TabularPolicy[],
  nPrompts: number,
  rng: Rng,
  opts: SampleOptions,
): Trajectory[] {
  const S = game.numStates;
  const A = game.numActions;
  const maxSteps = opts.maxSteps ?? 200;
  const rows = team.map((p) => Array.from({ length: S }, (_, s) => p.logProbRow(s)));
  const out: Trajectory[] = [];
  for (let prompt = 0; prompt < nPrompts; prompt++) {
    const s0 = rng.categorical(game.rho0);
    for (let g = 0; g < opts.groupSize; g++) {
      const tokens: number[] = [];
      const owner: number[] = [];
      const logp: number[] = [];
      const states: number[] = [];
      const stepRewards: number[] = [];
      let s = s0;
      let ret = 0;
      let steps = 0;
      let truncated = false;
      for (;;) {
        let j = 0;
        let mult = 1;
        for (const i of game.active[s]) {
          const lp = rows[i][s];
          const a = rng.categorical(Float64Array.from(lp, Math.exp));
          tokens.push(a);
          owner.push(i);
          logp.push(lp[a]);
          states.push(s);
          stepRewards.push(0);
          j += a * mult;
          mult *= A;
        }
        const r = game.reward[s][j];
        stepRewards[stepRewards.length - 1] = r;
        ret += r;
        steps++;
        if (rng.uniform() >= game.gamma) break;
        const row = game.transition[s].subarray(j * S, (j + 1) * S);
        let u = rng.uniform();
        let next = S;
        for (let t = 0; t < S; t++) {
          u -= row[t];
          if (u < 0) {
            next = t;
            break;
          }
        }
        if (next === S) break; // the transition row's missing mass: the episode ends
        s = next;
        if (steps >= maxSteps) {
          truncated = true;
          states.push(s);
          break;
        }
      }
      const L = tokens.length;
      out.push({
        promptId: prompt,
        groupId: prompt,
        tokens: Int32Array.from(tokens),
        owner: Int8Array.from(owner),
        behaviourLogp: Float64Array.from(logp),
        ownerVersion: Int32Array.from(owner, (i) => opts.versions?.[i] ?? 0),
        states: Int32Array.from(states),
        reward: ret,
        stepRewards: Float64Array.from(stepRewards.slice(0, L)),
        answer: null,
        truncated,
      });
    }
  }
  return out;
}

/** Exact mode for one-shot games (see the file header). */
export function enumerateOneShot(game: TabularGame, team: readonly TabularPolicy[]): Trajectory[] {
  const A = game.numActions;
  const tables = tablesOf(team);
  const out: Trajectory[] = [];
  for (let s = 0; s < game.numStates; s++) {
    if (!(game.rho0[s] > 0)) continue;
    for (let j = 0; j < game.transition[s].length; j++)
      if (game.transition[s][j] !== 0)
        throw new Error(`enumerateOneShot: game ${game.name} is not one-shot (state ${s} has transitions)`);
    const p = jointProbs(game, tables, s);
    const act = game.active[s];
    for (let j = 0; j < numJoint(game, s); j++) {
      const tokens = new Int32Array(act.length);
      const logp = new Float64Array(act.length);
      let rest = j;
      act.forEach((i, k) => {
        tokens[k] = rest % A;
        rest = Math.floor(rest / A);
        logp[k] = Math.log(tables[i][s * A + tokens[k]]);
      });
      const stepRewards = new Float64Array(act.length);
      stepRewards[act.length - 1] = game.reward[s][j];
      out.push({
        promptId: s,
        groupId: s,
        tokens,
        owner: Int8Array.from(act),
        behaviourLogp: logp,
        ownerVersion: new Int32Array(act.length),
        states: new Int32Array(act.length).fill(s),
        reward: game.reward[s][j],
        stepRewards,
        answer: null,
        truncated: false,
        weight: game.rho0[s] * p[j],
      });
    }
  }
  return out;
}

/** A Collect callback over the live team: sampled episodes, or the exact enumeration of a one-shot game. */
export function makeCollect(
  game: TabularGame,
  mode: { kind: "sample"; rng: Rng; groupSize: number; maxSteps?: number } | { kind: "exact" },
): Collect {
  return (team, nPrompts) => {
    const tab = team as unknown as TabularPolicy[];
    return mode.kind === "exact"
      ? enumerateOneShot(game, tab)
      : sampleTrajectories(game, tab, nPrompts, mode.rng, {
          groupSize: mode.groupSize,
          maxSteps: mode.maxSteps,
        });
  };
}

/**
 * Exact value at every token position under the live team: before the first token of a step it is
 * V(s); after some active agents of the step have chosen, it is the expectation of Q(s, j) over the
 * remaining agents' actions. t = L (truncated episodes) gives V(states[L]).
 */
export class ExactValue implements ValuePolicy {
  constructor(
    readonly game: TabularGame,
    readonly team: readonly TabularPolicy[],
  ) {}

  values(trajs: readonly Trajectory[], states: readonly StateRef[]): Float64Array {
    const game = this.game;
    const A = game.numActions;
    const tables = tablesOf(this.team);
    const ev = evaluate(game, tables);
    const out = new Float64Array(states.length);
    // Step boundaries: walk each trajectory once, each step has |active[s]| tokens.
    const posCache = new Map<number, Int32Array>();
    const posInStep = (i: number): Int32Array => {
      let p = posCache.get(i);
      if (p) return p;
      const tr = trajs[i];
      p = new Int32Array(tr.tokens.length);
      for (let t = 0; t < tr.tokens.length;) {
        const k = game.active[tr.states![t]].length;
        for (let m = 0; m < k; m++) p[t + m] = m;
        t += k;
      }
      posCache.set(i, p);
      return p;
    };
    states.forEach((r, k) => {
      const tr = trajs[r.traj];
      const st = tr.states;
      if (!st) throw new Error(`ExactValue: trajectory ${r.traj} has no states`);
      const s = st[r.t];
      if (r.t === tr.tokens.length) {
        out[k] = ev.V[s];
        return;
      }
      const m = posInStep(r.traj)[r.t];
      if (m === 0) {
        out[k] = ev.V[s];
        return;
      }
      // Fix the first m actions of the step, average Q over the rest.
      const p = jointProbs(game, tables, s);
      let num = 0;
      let den = 0;
      for (let j = 0; j < p.length; j++) {
        let ok = true;
        let rest = j;
        for (let q = 0; q < m; q++) {
          if (rest % A !== tr.tokens[r.t - m + q]) ok = false;
          rest = Math.floor(rest / A);
        }
        if (!ok) continue;
        num += p[j] * ev.Q[s][j];
        den += p[j];
      }
      out[k] = den > 0 ? num / den : 0;
    });
    return out;
  }
}
