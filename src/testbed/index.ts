/** Public API of the exact tabular test bed. */
export { TabularPolicy, type TabularOptimizerConfig } from "./tabular-policy.js";
export {
  matrixGame,
  climbingGame,
  penaltyGame,
  antiCoordinationGame,
  randomGame,
  numJoint,
  CLIMBING,
  ANTI_COORDINATION,
  penaltyMatrix,
  type TabularGame,
  type RandomGameOptions,
} from "./games.js";
export {
  evaluate,
  agentAdvantage,
  jointProbs,
  tiltToRadius,
  trustRegionStep,
  blockStep,
  analyseStage,
  solveLinear,
  type Tables,
  type Evaluation,
  type BlockStep,
  type StageAnalysis,
} from "./exact.js";
export {
  sampleTrajectories,
  enumerateOneShot,
  makeCollect,
  ExactValue,
  tablesOf,
  type SampleOptions,
} from "./rollout.js";
