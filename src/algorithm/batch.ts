/**
 * A stage batch indexed for the algorithm: validated trajectories, their prior weights (1 when
 * sampled, the exact probability in an enumerated batch), prompt groups, and for every agent the
 * list of its token positions (its "states") with per-trajectory offsets into that list.
 */
import type { StateRef, Trajectory } from "../contracts/policy.js";

export interface AgentStates {
  /** (S_a) the agent's token positions, ordered by trajectory then t. */
  refs: StateRef[];
  /** (S_a) token id chosen at each position. */
  tokens: Int32Array;
  /** (S_a) prior weight of the trajectory each position belongs to. */
  weights: Float64Array;
  /** (N+1) positions of trajectory τ are refs[offsets[τ] .. offsets[τ+1]). */
  offsets: Int32Array;
  /** Trajectories in which the agent chose at least one token. */
  numEpisodes: number;
}

export interface PreparedBatch {
  trajs: Trajectory[];
  /** (N) prior weight p(τ). */
  prior: Float64Array;
  /** Trajectory indices per group, groups in order of first appearance. */
  groups: number[][];
  /** (N) index into groups. */
  groupOf: Int32Array;
  agents: AgentStates[];
}

/** Validates shapes and ids (one clear error naming trajectory and field) and indexes the batch. */
export function prepareBatch(trajs: Trajectory[], nAgents: number, vocabSize: number): PreparedBatch {
  const N = trajs.length;
  if (N === 0) throw new Error("stage batch: collect returned no trajectories");
  const prior = new Float64Array(N);
  const groupIndex = new Map<number, number>();
  const groups: number[][] = [];
  const groupOf = new Int32Array(N);
  const counts = new Int32Array(nAgents);
  for (let i = 0; i < N; i++) {
    const tr = trajs[i];
    const L = tr.tokens.length;
    const where = `stage batch: trajectory ${i} (prompt ${tr.promptId}, group ${tr.groupId})`;
    if (tr.owner.length !== L) throw new Error(`${where}: owner has length ${tr.owner.length}, tokens ${L}`);
    if (tr.behaviourLogp.length !== L)
      throw new Error(`${where}: behaviourLogp has length ${tr.behaviourLogp.length}, tokens ${L}`);
    if (tr.ownerVersion.length !== L)
      throw new Error(`${where}: ownerVersion has length ${tr.ownerVersion.length}, tokens ${L}`);
    if (tr.stepRewards && tr.stepRewards.length !== L)
      throw new Error(`${where}: stepRewards has length ${tr.stepRewards.length}, tokens ${L}`);
    if (tr.states && tr.states.length !== L && tr.states.length !== L + 1)
      throw new Error(`${where}: states has length ${tr.states.length}, expected ${L} or ${L + 1}`);
    if (!Number.isFinite(tr.reward)) throw new Error(`${where}: reward is ${tr.reward}`);
    const w = tr.weight ?? 1;
    if (!(w >= 0) || !Number.isFinite(w))
      throw new Error(`${where}: weight must be finite and ≥ 0, got ${w}`);
    prior[i] = w;
    for (let t = 0; t < L; t++) {
      const o = tr.owner[t];
      if (o < -1 || o >= nAgents) throw new Error(`${where}: owner[${t}] = ${o} outside [-1, ${nAgents})`);
      if (o >= 0) {
        const tok = tr.tokens[t];
        if (tok < 0 || tok >= vocabSize)
          throw new Error(`${where}: tokens[${t}] = ${tok} outside [0, ${vocabSize})`);
        counts[o]++;
      }
    }
    let g = groupIndex.get(tr.groupId);
    if (g === undefined) {
      g = groups.length;
      groupIndex.set(tr.groupId, g);
      groups.push([]);
    }
    groups[g].push(i);
    groupOf[i] = g;
  }
  const agents: AgentStates[] = [];
  for (let a = 0; a < nAgents; a++) {
    const refs: StateRef[] = [];
    const tokens = new Int32Array(counts[a]);
    const weights = new Float64Array(counts[a]);
    const offsets = new Int32Array(N + 1);
    let numEpisodes = 0;
    for (let i = 0; i < N; i++) {
      offsets[i] = refs.length;
      const tr = trajs[i];
      const before = refs.length;
      for (let t = 0; t < tr.tokens.length; t++) {
        if (tr.owner[t] !== a) continue;
        tokens[refs.length] = tr.tokens[t];
        weights[refs.length] = prior[i];
        refs.push({ traj: i, t });
      }
      if (refs.length > before) numEpisodes++;
    }
    offsets[N] = refs.length;
    agents.push({ refs, tokens, weights, offsets, numEpisodes });
  }
  return { trajs, prior, groups, groupOf, agents };
}

/** Log-prob of the chosen token for every row of (S, V) rows. */
export function chosenLogp(rows: ArrayLike<number>, tokens: Int32Array, V: number): Float64Array {
  const out = new Float64Array(tokens.length);
  for (let k = 0; k < tokens.length; k++) out[k] = rows[k * V + tokens[k]];
  return out;
}
