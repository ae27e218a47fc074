/** Public API of the tasks module: problem types, built-in families, splits, datasets, the math verifier. */
export {
  ANSWER_MARKER,
  canonicalKey,
  contentHash,
  extractAnswer,
  makeProblem,
  verifyExact,
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
  type MakeProblemsOptions,
  type ProblemStreamOptions,
  type ProblemStreamState,
  type Split,
} from "./dataset.js";
export {
  JSONL_FAMILY,
  datasetFamily,
  parseProblemsJSONL,
  problemsToJSONL,
  readProblemsJSONL,
} from "./jsonl.js";
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
