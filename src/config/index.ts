/** Public API of the config module: schema, types, loading, rendering. */
export {
  ConfigSchema,
  SECTIONS,
  SECTION_NAMES,
  listKeys,
  parsedDefaults,
  type AlgoConfig,
  type EvalConfig,
  type KeyInfo,
  type ModelSection,
  type OptimConfig,
  type PretrainConfig,
  type ResolvedConfig,
  type RolloutConfig,
  type RunConfig,
  type SectionName,
  type TasksConfig,
  type TeamConfig,
} from "./schema.js";
export {
  agentCheckpointOf,
  crossFieldProblems,
  deriveDefaults,
  klRadiusOf,
  minibatchesPerEpoch,
  type CrossFieldProblem,
} from "./rules.js";
export {
  ConfigError,
  defaultConfig,
  loadConfig,
  parseSetToken,
  parseValue,
  readConfigFile,
  validateConfig,
  type FlagOverride,
  type LoadOptions,
} from "./load.js";
export { configToYaml, defaultsYaml } from "./render.js";
export { UPSTREAM_NAMES, closest, editDistance, unknownKeyHint } from "./names.js";
export { RESUME_FREE_KEYS, configDifferences, formatDifference, type ConfigDifference } from "./diff.js";
