/**
 * sat-llm's library API: the engine and model, tasks, team protocols, the SAT algorithm and its
 * test bed, evaluation, and the application entry points the CLI uses. Everything here is usable
 * without the CLI; nothing here reads argv or prints.
 */
export { Rng, hashString, type RngState } from "./engine/rng.js";
export {
  createEngine,
  referenceEngine,
  float64Engine,
  describeKernels,
  type Engine,
  type FastEngine,
  type KernelImpl,
  type KernelsDescription,
} from "./engine/engine.js";
export type { Buf, Kernels } from "./engine/kernels/types.js";
export { AdamW, type AdamWOptions, type AdamWState } from "./engine/adamw.js";

export { Transformer } from "./model/transformer.js";
export {
  presetConfig,
  validateModelConfig,
  PRESET_NAMES,
  type ModelConfig,
  type PresetName,
  type Style,
  type Arch,
} from "./model/config.js";
export { buildLayout, countParams, type Layout, type TensorSpec } from "./model/layout.js";
export {
  Decoder,
  generate,
  sampleToken,
  samplingDistribution,
  type GenerateOptions,
} from "./model/generate.js";
export {
  CharTokenizer,
  HfTokenizer,
  readTokenizer,
  saveTokenizer,
  type ChatMessage,
  type DecodeOptions,
  type Prompt,
  type Tokenizer,
  type TokenizerOptions,
} from "./model/tokenizer.js";
export { saveModel, loadModel, saveOptimizer, loadOptimizer, CheckpointError } from "./model/checkpoint.js";
export {
  readSafetensors,
  writeSafetensors,
  parseSafetensors,
  SafetensorsError,
} from "./model/safetensors.js";

export * from "./tasks/index.js";

export {
  rolloutTeam,
  majorityVote,
  type TeamMember,
  type TurnSession,
  type TurnRequest,
  type TurnOutput,
  type RolloutOptions,
  type Protocol,
} from "./team/rollout.js";
export { ModelMember } from "./team/member.js";
export { DecoderSession, type StepDecoder } from "./team/decoder-session.js";
export { LmPolicy, type LmOptimOptions } from "./team/lm-policy.js";
export { LmCritic } from "./team/critic.js";
export { ProjectedMember, distillProjection } from "./swap/projected-member.js";
export {
  projectToTrustRegion,
  projectRows,
  ProjectedPolicy,
  type Projection,
  type ProjectionStats,
} from "./swap/projection.js";
export type { TeamTrajectory } from "./team/trajectory.js";

export * from "./algorithm/index.js";
export * as testbed from "./testbed/index.js";

export {
  evaluateTeam,
  evaluateMatchedBudget,
  evalRows,
  formatEvalTable,
  type EvalOptions,
  type EvalResult,
} from "./eval/evaluate.js";
export { passAtK, bootstrapCI } from "./eval/metrics.js";

export { sftTrain, soloAccuracy, DEFAULT_SFT, type SftOptions } from "./train/sft.js";
export {
  TeamTrainer,
  type TeamAgent,
  type SamplingMember,
  type TeamTrainOptions,
  type TeamTrainState,
} from "./train/team.js";
export {
  TorchTeam,
  type TorchAgentSource,
  type TorchBackendOptions,
  type LoadedAgent,
} from "./backend/torch/team.js";
export { BackendError, PROTOCOL_VERSION } from "./backend/torch/client.js";

export { loadConfig, validateConfig, defaultConfig, listKeys, ConfigError } from "./config/index.js";
export type { ResolvedConfig } from "./config/schema.js";
export { runPretrain } from "./app/pretrain.js";
export { runTrain } from "./app/train.js";
export { runEval } from "./app/evaluate.js";
export { runSwap } from "./app/swap.js";
export { runDemo } from "./app/demo.js";
export { writeReport, renderReport } from "./report/html.js";
