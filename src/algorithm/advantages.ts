/**
 * Advantages for one agent update (sat-method §3b). `group`: per prompt group, the weighted mean
 * and population std of the trajectory scores (returns, or aggregated GAE values) under the
 * weights ω(τ) = p(τ)·w(τ), Ã = clip((R − μ)/(s + 1e-6), ±A_clip). `gae`: Â_t = δ_t +
 * γλ·c_{t+1}·Â_{t+1} (the truncated-trace form of Σ_l (γλ)^l Π c δ), averaged over the agent's
 * tokens, then normalised per group as above.
 */
import type { ScaleRewards } from "./config.js";
import type { PreparedBatch } from "./batch.js";
import type { StateRef, ValuePolicy } from "../contracts/policy.js";

export interface AdvantageResult {
  /** (N) clipped, normalised advantage per trajectory (0 where `include` is 0). */
  adv: Float64Array;
  /** Share of included trajectories whose advantage hit ±A_clip. */
  clipFrac: number;
  /** The weights ω were equal within every group: then |z| ≤ sqrt(G−1) under group scaling. */
  uniformWeights: boolean;
}

/**
 * Normalise per-trajectory scores into advantages. include[τ] = 0 drops τ from the statistics (GAE
 * scores of trajectories where the agent never acted). Groups with zero total weight get Ã = 0.
 */
export function normaliseAdvantages(
  scores: Float64Array,
  include: Uint8Array,
  omega: Float64Array,
  groups: number[][],
  scale: ScaleRewards,
  advClip: number,
): AdvantageResult {
  const N = scores.length;
  const adv = new Float64Array(N);
  const mean = new Float64Array(groups.length);
  const std = new Float64Array(groups.length);
  let batchW = 0;
  let batchVar = 0;
  for (let g = 0; g < groups.length; g++) {
    let sw = 0;
    let sx = 0;
    for (const i of groups[g]) {
      if (!include[i]) continue;
      sw += omega[i];
      sx += omega[i] * scores[i];
    }
    const mu = sw > 0 ? sx / sw : 0;
    let sv = 0;
    for (const i of groups[g]) if (include[i]) sv += omega[i] * (scores[i] - mu) ** 2;
    mean[g] = mu;
    std[g] = sw > 0 ? Math.sqrt(sv / sw) : 0;
    batchW += sw;
    batchVar += sv;
  }
  // TRL's "batch" scaling: group means, one std over the whole batch (around the group means).
  const batchStd = batchW > 0 ? Math.sqrt(batchVar / batchW) : 0;
  let clipped = 0;
  let counted = 0;
  for (let g = 0; g < groups.length; g++) {
    const denom = scale === "group" ? std[g] + 1e-6 : scale === "batch" ? batchStd + 1e-6 : 1;
    for (const i of groups[g]) {
      if (!include[i] || !(omega[i] > 0)) continue;
      const z = (scores[i] - mean[g]) / denom;
      const c = Math.max(-advClip, Math.min(advClip, z));
      if (c !== z) clipped++;
      counted++;
      adv[i] = c;
    }
  }
  let uniformWeights = true;
  for (const g of groups) {
    const ws = g.filter((i) => include[i]).map((i) => omega[i]);
    if (ws.some((w) => w !== ws[0])) uniformWeights = false;
  }
  return { adv, clipFrac: counted > 0 ? clipped / counted : 0, uniformWeights };
}

/**
 * Per-trajectory GAE score of agent `agent`: mean of Â_t over its tokens (NaN if it has none).
 * logTrace[τ][t] = log c_t (0 for tokens of agents not yet updated). Rewards: stepRewards, else
 * the whole return on the last token. V after the last token is 0 unless the episode was truncated,
 * then it is bootstrapped from value.values at t = L.
 */
export function gaeScores(
  batch: PreparedBatch,
  agent: number,
  value: ValuePolicy,
  logTrace: Float64Array[],
  gamma: number,
  lam: number,
): Float64Array {
  const { trajs } = batch;
  const refs: StateRef[] = [];
  const start = new Int32Array(trajs.length + 1);
  for (let i = 0; i < trajs.length; i++) {
    start[i] = refs.length;
    const L = trajs[i].tokens.length;
    for (let t = 0; t < L; t++) refs.push({ traj: i, t });
    if (trajs[i].truncated) refs.push({ traj: i, t: L });
  }
  start[trajs.length] = refs.length;
  const V = value.values(trajs, refs);
  if (V.length !== refs.length)
    throw new Error(`gae: value.values returned ${V.length} values for ${refs.length} states`);
  const out = new Float64Array(trajs.length);
  for (let i = 0; i < trajs.length; i++) {
    const tr = trajs[i];
    const L = tr.tokens.length;
    const o = start[i];
    const vEnd = tr.truncated ? V[o + L] : 0;
    let next = 0; // Â_{t+1}
    let sum = 0;
    let cnt = 0;
    for (let t = L - 1; t >= 0; t--) {
      const r = tr.stepRewards ? tr.stepRewards[t] : t === L - 1 ? tr.reward : 0;
      const vNext = t === L - 1 ? vEnd : V[o + t + 1];
      const delta = r + gamma * vNext - V[o + t];
      const cNext = t === L - 1 ? 0 : Math.exp(logTrace[i][t + 1]);
      const a = delta + gamma * lam * cNext * next;
      next = a;
      if (tr.owner[t] === agent) {
        sum += a;
        cnt++;
      }
    }
    out[i] = cnt > 0 ? sum / cnt : NaN;
  }
  return out;
}
