/** The math answer verifier and its parts: extraction, normalisation, equivalence. */
export { verifyMath } from "./verify.js";
export {
  extractMathAnswer,
  lastBoxed,
  referenceAnswer,
  type AnswerMarker,
  type Extraction,
} from "./extract.js";
export { normalizeAnswer, parseRational, splitTopLevel } from "./normalize.js";
export { mathEquivalent, type Equivalence, type EquivalenceResult } from "./equivalence.js";
