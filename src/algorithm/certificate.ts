/**
 * The per-stage certificate of sat-method §4 (Thm 4.4 + 4.9 of the paper, discounted form) and the
 * empirical check users actually need: the improvement J(π̄) − J(π_cur) on held-out rollouts with a
 * 95% interval.
 *
 *   bound = Σ_i L̂_i − (2γ/(1−γ)²)·A_max·Σ_i sqrt(δ_i/2) − (1/(1−γ))·Σ_i ζ_i
 *           − Σ_i (A_max/(1−γ))·sqrt(log(2n/δ_conf)/(2N_i))
 *
 * With outcome rewards on undiscounted episodes the bound is usually vacuous; it is reported with
 * every term and γ anyway, and `vacuous` says so.
 *
 * Beside it, the CPO-style bound (Achiam et al. 2017, Cor. 1) uses the expected total variation
 * under the stage's state distribution instead of the worst case: with the checked trust region,
 * w.p. 1 − η at most α + s of the state mass (α = 1 − quantile level, s the DKW slack over the
 * agent's N_i independent trajectories) has KL > δ_i, so E_s[TV_i] ≤ (1 − α − s)·sqrt(δ_i/2) + α + s:
 *
 *   cpo = Σ_i L̂_i − (2γ/(1−γ)²)·A_max·Σ_i TV̄_i − (1/(1−γ))·Σ_i ζ_i − (sample term as above)
 *
 * Gains are in the advantages' units: z-scores unless rewards are not scaled (scale_rewards=none).
 */

export interface CertificateAgentTerms {
  /** L̂_i per episode of the stage batch (trajectories where the agent did not act count as 0). */
  surrogateGain: number;
  /** Radius the step actually satisfies: 0 for a null update (the policy did not change). */
  klRadius: number;
  /** ζ_i, truncation-bias estimate mean_τ |W(τ) − w(τ)|·|Ã(τ)|. */
  truncBias: number;
  /** N_i: episodes the agent's update used. An agent with N_i = 0 made no update and adds no sample term. */
  numEpisodes: number;
  /** TV̄_i, an upper bound on the expected TV of the step (0 for a null update); see the file header. */
  tvBound: number;
}

export interface Certificate {
  gamma: number;
  aMax: number;
  confidence: number;
  surrogateSum: number;
  occupancyPenalty: number;
  biasPenalty: number;
  samplePenalty: number;
  lowerBound: number;
  /** 1 when the lower bound is ≤ 0 (it certifies nothing). */
  vacuous: 0 | 1;
  /** The CPO-style bound and its occupancy term (expected TV). */
  cpoOccupancyPenalty: number;
  cpoBound: number;
  cpoVacuous: 0 | 1;
  /** "z" when gains are in z-score units, "reward" when advantages are unscaled rewards. */
  gainUnits: "z" | "reward";
}

export function certificate(
  agents: readonly CertificateAgentTerms[],
  opts: { gamma: number; aMax: number; confidence: number; gainUnits?: "z" | "reward" },
): Certificate {
  const { gamma, aMax, confidence } = opts;
  if (!(gamma > 0 && gamma < 1)) throw new Error(`certificate: gamma must be in (0, 1), got ${gamma}`);
  const n = agents.length;
  let surrogateSum = 0;
  let sqrtDelta = 0;
  let zeta = 0;
  let samplePenalty = 0;
  let tv = 0;
  for (const a of agents) {
    tv += a.tvBound;
    surrogateSum += a.surrogateGain;
    sqrtDelta += Math.sqrt(Math.max(0, a.klRadius) / 2);
    zeta += a.truncBias;
    if (a.numEpisodes > 0)
      samplePenalty += (aMax / (1 - gamma)) * Math.sqrt(Math.log((2 * n) / confidence) / (2 * a.numEpisodes));
  }
  const occupancyPenalty = ((2 * gamma) / (1 - gamma) ** 2) * aMax * sqrtDelta;
  const biasPenalty = zeta / (1 - gamma);
  const lowerBound = surrogateSum - occupancyPenalty - biasPenalty - samplePenalty;
  const cpoOccupancyPenalty = ((2 * gamma) / (1 - gamma) ** 2) * aMax * tv;
  const cpoBound = surrogateSum - cpoOccupancyPenalty - biasPenalty - samplePenalty;
  return {
    gamma,
    aMax,
    confidence,
    surrogateSum,
    occupancyPenalty,
    biasPenalty,
    samplePenalty,
    lowerBound,
    vacuous: lowerBound > 0 ? 0 : 1,
    cpoOccupancyPenalty,
    cpoBound,
    cpoVacuous: cpoBound > 0 ? 0 : 1,
    gainUnits: opts.gainUnits ?? "z",
  };
}

/** TV̄ of a checked step: (1 − α − s)·sqrt(δ/2) + α + s, capped at 1 (see the file header). */
export function expectedTvBound(radius: number, quantileLevel: number, slack: number): number {
  const out = Math.min(1, 1 - quantileLevel + slack);
  return Math.min(1, (1 - out) * Math.sqrt(radius / 2) + out);
}

/**
 * A_max for the certificate: with group-normalised advantages and equal weights within each group,
 * |z| ≤ sqrt(G−1) (population std), so A_max = min(A_clip, sqrt(G−1)) with G the largest group.
 * Weighted z-scores (reweighted intermediate policies, exact enumerations) are not bounded that way
 * (they reach 5 for G = 4): then, as for any other scaling, A_max = A_clip.
 */
export function certificateAMax(
  advClip: number,
  groupNormalised: boolean,
  maxGroupSize: number,
  uniformWeights = true,
): number {
  return groupNormalised && uniformWeights
    ? Math.min(advClip, Math.sqrt(Math.max(0, maxGroupSize - 1)))
    : advClip;
}

export interface EmpiricalImprovement {
  improvement: number;
  ciLow: number;
  ciHigh: number;
  /** 1 when the whole interval lies below 0: a significant decrease. */
  monotonicityViolation: 0 | 1;
  nBefore: number;
  nAfter: number;
}

/**
 * Difference of mean held-out rewards, after − before, with a normal interval on the Welch
 * standard error sqrt(s_a²/n_a + s_b²/n_b) (two independent samples). z = 1.96 gives 95%.
 */
export function empiricalImprovement(
  before: ArrayLike<number>,
  after: ArrayLike<number>,
  z = 1.959963984540054,
): EmpiricalImprovement {
  if (before.length < 2 || after.length < 2)
    throw new Error(
      `empiricalImprovement: need ≥ 2 rewards per sample, got ${before.length} and ${after.length}`,
    );
  const stats = (x: ArrayLike<number>): [number, number] => {
    let m = 0;
    for (let i = 0; i < x.length; i++) m += x[i];
    m /= x.length;
    let v = 0;
    for (let i = 0; i < x.length; i++) v += (x[i] - m) ** 2;
    return [m, v / (x.length - 1)];
  };
  const [mb, vb] = stats(before);
  const [ma, va] = stats(after);
  const d = ma - mb;
  const se = Math.sqrt(va / after.length + vb / before.length);
  const ciLow = d - z * se;
  const ciHigh = d + z * se;
  return {
    improvement: d,
    ciLow,
    ciHigh,
    monotonicityViolation: ciHigh < 0 ? 1 : 0,
    nBefore: before.length,
    nAfter: after.length,
  };
}

/**
 * Paired improvement on the same held-out prompts before and after a stage: per prompt the mean
 * reward of its samples, then the mean of the per-prompt differences with a normal interval on its
 * standard error (prompts are the independent units; samples of one prompt are not).
 */
export function pairedImprovement(
  before: ReadonlyArray<{ promptId: number; reward: number }>,
  after: ReadonlyArray<{ promptId: number; reward: number }>,
  z = 1.959963984540054,
): EmpiricalImprovement {
  const byPrompt = (xs: typeof before) => {
    const m = new Map<number, [number, number]>();
    for (const x of xs) {
      const e = m.get(x.promptId) ?? [0, 0];
      e[0] += x.reward;
      e[1]++;
      m.set(x.promptId, e);
    }
    return m;
  };
  const b = byPrompt(before);
  const a = byPrompt(after);
  const diffs: number[] = [];
  for (const [p, [sb, nb]] of b) {
    const e = a.get(p);
    if (e) diffs.push(e[0] / e[1] - sb / nb);
  }
  if (diffs.length < 2)
    throw new Error(`pairedImprovement: need ≥ 2 prompts held out before and after, got ${diffs.length}`);
  const d = diffs.reduce((s, x) => s + x, 0) / diffs.length;
  const v = diffs.reduce((s, x) => s + (x - d) ** 2, 0) / (diffs.length - 1);
  const se = Math.sqrt(v / diffs.length);
  return {
    improvement: d,
    ciLow: d - z * se,
    ciHigh: d + z * se,
    monotonicityViolation: d + z * se < 0 ? 1 : 0,
    nBefore: before.length,
    nAfter: after.length,
  };
}

/** Exact counterpart for enumerated batches (weights = probabilities): the interval has zero width. */
export function exactImprovement(jBefore: number, jAfter: number): EmpiricalImprovement {
  const d = jAfter - jBefore;
  return { improvement: d, ciLow: d, ciHigh: d, monotonicityViolation: d < 0 ? 1 : 0, nBefore: 0, nAfter: 0 };
}
