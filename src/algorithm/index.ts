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
} from "./config.js";
export { runStage, type StageInput, type StageRecord, type AgentStageRecord, type Collect } from "./stage.js";
export { stageMetrics } from "./metrics.js";
export { scoreAgent, updateAgent, predictGain, type AgentRef, type UpdateOutcome } from "./update.js";
export {
  certificate,
  certificateAMax,
  empiricalImprovement,
  exactImprovement,
  type Certificate,
  type CertificateAgentTerms,
  type EmpiricalImprovement,
} from "./certificate.js";
export { klRow, klRows, tvRow, entropyRow, weightedQuantile, dkwSlack } from "./kl.js";
export { prepareBatch, type PreparedBatch, type AgentStates } from "./batch.js";
export { normaliseAdvantages, gaeScores } from "./advantages.js";
export { surrogate, type SurrogateData, type SurrogateValue } from "./surrogate.js";
