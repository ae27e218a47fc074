/**
 * The math answer verifier: a pure function (problem, completion) → verdict, like the built-in
 * families' verifiers. The completion's final answer is found by extract.ts (last \boxed{}, else
 * `####`, else "answer is"/"answer:"), both it and problem.answer are normalised (normalize.ts), and
 * the two are compared by equivalence.ts. Reward 1 when equivalent, else 0.
 *
 *   verifyMath({ ...problem, answer: "\\frac{1}{2}" }, "… so the answer is $\\boxed{0.5}$.")
 *   → { reward: 1, correct: true, extracted: "0.5", reason: "correct (equal numbers)" }
 */
import type { Problem, Verdict } from "../types.js";
import { mathEquivalent } from "./equivalence.js";
import { extractMathAnswer } from "./extract.js";
import { normalizeAnswer } from "./normalize.js";

export function verifyMath(problem: Problem, completion: string): Verdict {
  const found = extractMathAnswer(completion);
  if (!found.ok) return { reward: 0, correct: false, extracted: null, reason: found.reason };
  const extracted = found.answer;
  const got = normalizeAnswer(extracted);
  if (got === "") return { reward: 0, correct: false, extracted, reason: "empty final answer" };
  const result = mathEquivalent(got, normalizeAnswer(problem.answer));
  if (result.equal) return { reward: 1, correct: true, extracted, reason: `correct (${result.how})` };
  const wrong = `wrong answer: expected ${JSON.stringify(problem.answer)}, got ${JSON.stringify(extracted)}`;
  return { reward: 0, correct: false, extracted, reason: result.why ? `${wrong}; ${result.why}` : wrong };
}
