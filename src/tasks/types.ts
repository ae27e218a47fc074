/**
 * The shapes every task shares: a Problem (prompt, worked solution, answer), a TaskFamily
 * (seeded generator + pure verifier), the final-answer marker and its extraction, and the exact-
 * match verifier used by every built-in family and by users' own problems.
 *
 * Answer format: a worked solution ends with `#<answer>`. The answer is the text after the LAST
 * `#` up to the end of that line (or of the text, or a rendered special token such as `<eot>`),
 * trimmed. The last marker wins so that, in a relay, a later agent can correct an earlier one.
 */
import type { Rng } from "../engine/rng.js";
import { hashString } from "../engine/rng.js";

/** One chat message of a prompt given as a conversation (verl/TRL "conversational" datasets). */
export interface ChatMessage {
  role: string;
  content: string;
}

export interface Problem {
  /** `<family>-<16 hex digits>` from the canonical content, so equal problems share an id. */
  id: string;
  family: string;
  difficulty: number;
  /**
   * The question as text; built-in prompts end with "\n" so `prompt + solution` is a full
   * transcript. For a prompt given as chat messages, their contents joined by a blank line: the text
   * a tokenizer without a chat template encodes, and what splits and ids are computed from.
   */
  prompt: string;
  /**
   * The prompt as chat messages, exactly as the dataset gave them (system and user turns); absent
   * for text prompts. A tokenizer with a chat template renders these, not `prompt`.
   */
  messages?: readonly ChatMessage[];
  /** Worked solution, one intermediate result per line, ending with `#<answer>`. */
  solution: string;
  answer: string;
}

export interface Verdict {
  /** 1 when correct, else 0. */
  reward: number;
  correct: boolean;
  /** The answer found in the completion, null when it has no marker. */
  extracted: string | null;
  reason: string;
}

export interface TaskFamily {
  name: string;
  /** One paragraph, with an example problem and solution. */
  description: string;
  defaultDifficulty: number;
  /** Inclusive range of valid difficulties. */
  difficulties: [number, number];
  generate(rng: Rng, difficulty: number): Problem;
  verify(problem: Problem, completion: string): Verdict;
  /**
   * Set for a fixed list of problems (a dataset): splits are then taken from the list itself rather
   * than by drawing from `generate`, so a split can be used up exactly.
   */
  problems?: readonly Problem[];
}

export const ANSWER_MARKER = "#";

// The tokenizer renders special tokens by these names (src/model/tokenizer.ts SPECIAL_TOKENS); an
// answer stops at one so `#42<eot>` yields "42". Kept here because tasks import nothing but the rng.
const RENDERED_SPECIAL = /<(?:pad|bos|eos|eot)>/;

/** The answer after the last `#` (see file header), or null when the text has no marker. */
export function extractAnswer(text: string): string | null {
  const at = text.lastIndexOf(ANSWER_MARKER);
  if (at < 0) return null;
  let rest = text.slice(at + ANSWER_MARKER.length);
  const nl = rest.indexOf("\n");
  if (nl >= 0) rest = rest.slice(0, nl);
  const special = RENDERED_SPECIAL.exec(rest);
  if (special) rest = rest.slice(0, special.index);
  return rest.trim();
}

/** Exact match of the extracted answer with problem.answer, both trimmed. */
export function verifyExact(problem: Problem, completion: string): Verdict {
  const extracted = extractAnswer(completion);
  const expected = problem.answer.trim();
  if (extracted === null) {
    return { reward: 0, correct: false, extracted, reason: `no final answer: no "${ANSWER_MARKER}" marker` };
  }
  if (extracted === "") {
    return { reward: 0, correct: false, extracted, reason: `empty final answer after "${ANSWER_MARKER}"` };
  }
  if (extracted !== expected) {
    return {
      reward: 0,
      correct: false,
      extracted,
      reason: `wrong answer: expected ${JSON.stringify(expected)}, got ${JSON.stringify(extracted)}`,
    };
  }
  return { reward: 1, correct: true, extracted, reason: "correct" };
}

/** What makes two problems the same problem: the family and the prompt (the answer follows from them). */
export function canonicalKey(family: string, prompt: string): string {
  return `${family}\u0000${prompt}`;
}

/** 64-bit content hash as 16 hex digits (two independent FNV-1a passes, finalised). */
export function contentHash(key: string): string {
  const a = fmix32(hashString(key));
  const b = fmix32(hashString(`\u0001${key}`));
  return a.toString(16).padStart(8, "0") + b.toString(16).padStart(8, "0");
}

/** murmur3's 32-bit finaliser: spreads FNV's weak low bits so `hash % 100` is uniform. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function makeProblem(
  family: string,
  difficulty: number,
  prompt: string,
  solution: string,
  answer: string,
): Problem {
  return {
    id: `${family}-${contentHash(canonicalKey(family, prompt))}`,
    family,
    difficulty,
    prompt,
    solution,
    answer,
  };
}

/** Throws a one-line error when `difficulty` is not an integer in the family's range. */
export function checkDifficulty(family: TaskFamily, difficulty: number): void {
  const [lo, hi] = family.difficulties;
  if (!Number.isInteger(difficulty) || difficulty < lo || difficulty > hi) {
    throw new Error(`task ${family.name}: difficulty ${difficulty} is not an integer in [${lo}, ${hi}]`);
  }
}
