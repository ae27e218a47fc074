/** Public API of the SAT algorithm core. */
export type {
  Trajectory,
  StateRef,
  ScoringPolicy,
  TrainablePolicy,
  ValuePolicy,
  MetricRecord,
  MetricsSink,
} from "../contracts/policy.js";
export {
  defaultStageConfig,
  validateStageConfig,
  type StageConfig,
  type AlgoName,
  type AdvEstimator,
  type ScaleRewards,
  type Intermediate,
  type OrderMode,
  type KlCoefRule,
  type TrustRegion,
  STAGE_KEYS,
  stageConfigFrom,
  defaultTrustRegion,
} from "./config.js";
export type { AgentLearner, UpdateSpec, Measurement, RatioLevel } from "../contracts/learner.js";
export { RowLearner, isLearner } from "./row-learner.js";
export {
  runStage,
  ALGORITHMS,
  type AlgorithmSpec,
  type StageInput,
  type StagePolicy,
  type StageRecord,
  type AgentStageRecord,
  type Collect,
} from "./stage.js";
export { nextKlCoef } from "./record.js";
export { stageMetrics } from "./metrics.js";
export { updateAgent, predictGain, type AgentUpdate, type UpdateOutcome } from "./update.js";
export {
  certificate,
  certificateAMax,
  expectedTvBound,
  pairedImprovement,
  empiricalImprovement,
  exactImprovement,
  type Certificate,
  type CertificateAgentTerms,
  type EmpiricalImprovement,
} from "./certificate.js";
export { klRow, klRows, tvRow, entropyRow, weightedQuantile, dkwSlack } from "./kl.js";
export { prepareBatch, type PreparedBatch, type AgentStates } from "./batch.js";
export { normaliseAdvantages, gaeScores } from "./advantages.js";
export {
  surrogate,
  clipTerm,
  klPenalty,
  statesOf,
  type SurrogateData,
  type SurrogateValue,
  type ClipData,
  type ClipValue,
} from "./surrogate.js";
