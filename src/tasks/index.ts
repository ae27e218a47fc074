/** Public API of the tasks module: problem types, built-in families, splits, datasets, the math verifier. */
export {
  ANSWER_MARKER,
  canonicalKey,
  contentHash,
  extractAnswer,
  makeProblem,
  verifyExact,
  type ChatMessage,
  type Problem,
  type TaskFamily,
  type Verdict,
} from "./types.js";
export { TASKS, DEFAULT_TASK, getTask, verifyProblem } from "./registry.js";
export { add, solveAdd } from "./families/add.js";
export { multistep, solveChain } from "./families/multistep.js";
export { sort, solveSort } from "./families/sort.js";
export {
  DEFAULT_TEST_PERCENT,
  ProblemStream,
  makeProblems,
  splitBucket,
  splitOf,
  splitProblems,
  type MakeProblemsOptions,
  type ProblemStreamOptions,
  type ProblemStreamState,
  type Split,
} from "./dataset.js";
export { parseProblemsJSONL, problemsToJSONL, readProblemsJSONL } from "./jsonl.js";
export {
  DATASET_FAMILY,
  DATASET_PRESETS,
  VERIFIERS,
  describeLayout,
  fieldAt,
  messagesText,
  recordToProblem,
  resolveLayout,
  type DatasetLayout,
  type DatasetPreset,
  type LayoutOptions,
  type VerifierName,
} from "./layout.js";
export {
  DatasetError,
  RowErrors,
  isParquet,
  parseJsonlRecords,
  parseParquetRecords,
  readRecordFile,
  type DatasetFormat,
  type DatasetRecord,
  type RecordFile,
} from "./records.js";
export {
  VERIFY,
  checkPrompts,
  datasetFamily,
  loadDataset,
  problemsFromRecords,
  type Dataset,
  type PromptCheck,
} from "./dataset-file.js";
export {
  extractMathAnswer,
  lastBoxed,
  mathEquivalent,
  normalizeAnswer,
  parseRational,
  referenceAnswer,
  splitTopLevel,
  verifyMath,
  type AnswerMarker,
  type Equivalence,
  type EquivalenceResult,
  type Extraction,
} from "./math/index.js";
