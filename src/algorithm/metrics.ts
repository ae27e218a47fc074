/**
 * Stage record → metric records with the names of conventions.md §2 (team rows agent = null).
 * Non-finite numbers become null (JSON has no NaN/Inf).
 */
import type { MetricRecord } from "../contracts/policy.js";
import type { StageRecord } from "./record.js";

const finite = (x: number): number | null => (Number.isFinite(x) ? x : null);

export function stageMetrics(r: StageRecord): MetricRecord[] {
  const out: MetricRecord[] = [];
  const team = (key: string, value: number | number[] | null) =>
    out.push({ step: r.step, agent: null, key, value });
  team("order/sigma", r.sigma);
  team("reward/mean", finite(r.rewardMean));
  team("reward/std", finite(r.rewardStd));
  team("reward/min", finite(r.rewardMin));
  team("reward/max", finite(r.rewardMax));
  team("reward/frac_zero_std", r.fracZeroStd);
  const c = r.certificate;
  team("cert/surrogate_sum", finite(c.surrogateSum));
  team("cert/occupancy_penalty", finite(c.occupancyPenalty));
  team("cert/bias_penalty", finite(c.biasPenalty));
  team("cert/sample_penalty", finite(c.samplePenalty));
  team("cert/lower_bound", finite(c.lowerBound));
  team("cert/vacuous", c.vacuous);
  team("cert/gamma", c.gamma);
  team("cert/a_max", c.aMax);
  team("cert/cpo_occupancy_penalty", finite(c.cpoOccupancyPenalty));
  team("cert/cpo_bound", finite(c.cpoBound));
  team("cert/cpo_vacuous", c.cpoVacuous);
  team("cert/gain_in_z_units", c.gainUnits === "z" ? 1 : 0);
  team("rollout/generated_tokens", r.generatedTokens);
  for (const [key, value] of Object.entries(r.timing)) team(key, finite(value));
  if (r.critic) {
    team("critic/vf_loss_before", finite(r.critic.lossBefore));
    team("critic/vf_loss", finite(r.critic.lossAfter));
  }
  if (r.improvement) {
    team("cert/improvement", finite(r.improvement.improvement));
    team("cert/improvement_ci_low", finite(r.improvement.ciLow));
    team("cert/improvement_ci_high", finite(r.improvement.ciHigh));
    team("cert/monotonicity_violation", r.improvement.monotonicityViolation);
  }
  for (const a of r.agents) {
    const put = (key: string, value: number | null) =>
      out.push({ step: r.step, agent: a.agent, key, value: value === null ? null : finite(value) });
    put("order/position", a.position);
    put("actor/kl_coef", a.klCoef);
    put("trust_region/kl_coef_next", a.klCoefNext);
    put("trust_region/kl_quantile", a.klQuantile);
    put("trust_region/kl_quantile_full", a.klQuantileFull);
    put("trust_region/tv_mean", a.tvMean);
    put("trust_region/kl_max", a.klMax);
    put("trust_region/kl_mean", a.klMean);
    put("trust_region/kl_radius", a.klRadius);
    put("trust_region/num_states", a.numStates);
    put("trust_region/dkw_slack", a.dkwSlack);
    put("trust_region/violation", a.violation);
    put("trust_region/violation_rate", a.violationRate);
    put("trust_region/backtracks", a.backtracks);
    put("trust_region/step_scale", a.stepScale);
    put("trust_region/accepted", a.accepted);
    put("surrogate/gain", a.surrogateGain);
    put("surrogate/gain_predicted", a.gainPredicted);
    put("is/weight/mean", a.isWeightMean);
    put("is/weight/min", a.isWeightMin);
    put("is/ess", a.isEss);
    put("is/trunc_bias", a.truncBias);
    put("sampling/logp_diff/mean", a.logpDiffMean);
    put("sampling/logp_diff/max", a.logpDiffMax);
    put("advantages/mean", a.advMean);
    put("advantages/min", a.advMin);
    put("advantages/max", a.advMax);
    put("advantages/clip_frac", a.advClipFrac);
    put("actor/pg_loss", a.pgLoss);
    put("actor/pg_clipfrac", a.pgClipFrac);
    put("actor/ppo_kl", a.ppoKl);
    put("actor/entropy", a.entropy);
    put("episodes/num", a.numEpisodes);
    put("advantages/uniform_weights", a.uniformWeights);
    for (const [key, value] of Object.entries(a.timing)) put(key, value);
  }
  return out;
}
