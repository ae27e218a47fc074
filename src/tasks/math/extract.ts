/**
 * Finding the final answer in a math completion, and the reference answer in a dataset field.
 *
 * Markers, by priority (the first kind present wins; within a kind the LAST occurrence wins, so a
 * later agent of a relay can correct an earlier one):
 *   1. `\boxed{…}` or `\fbox{…}` (MATH, DeepSeek/Qwen "put your final answer within \boxed{}"),
 *      braces balanced, escaped `\{ \}` skipped; `\boxed 5` without braces takes one token;
 *   2. `#### …` to the end of its line (GSM8K);
 *   3. `answer is …` / `answer: …` (Minerva's "The final answer is …", DAPO's "Answer: …") to the
 *      end of its sentence.
 * Boxes come first because "the answer is" also occurs in prose ("the answer is in dollars").
 * A completion without any marker has no answer: there is no "last number" fallback, which would
 * reward text that never commits to an answer.
 */

/** Rendered special tokens end an answer: ours (`<eot>`) and chat-template ones (`<|im_end|>`). */
const SPECIAL_TOKEN = /<\|[^|<>\s]*\|>|<(?:pad|bos|eos|eot)>|<\/s>/;

export type AnswerMarker = "boxed" | "####" | "answer is";

export type Extraction = { ok: true; answer: string; marker: AnswerMarker } | { ok: false; reason: string };

/** Index just past the `}` closing the group that opens at `open` (a `{`), or -1 when unclosed. */
function closingBrace(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === "\\") {
      i++; // `\{`, `\}` and `\\` are not group delimiters
      continue;
    }
    if (c === "{") depth++;
    else if (c === "}" && --depth === 0) return i + 1;
  }
  return -1;
}

const BOX = /\\(?:boxed|fbox)(?![A-Za-z])/g;

/**
 * The content of the last `\boxed{…}`: a string, null when there is none, or "unclosed" when the
 * last box never closes (a completion cut off by the length limit).
 */
export function lastBoxed(text: string): string | null | "unclosed" {
  let at = -1;
  let len = 0;
  for (const m of text.matchAll(BOX)) {
    at = m.index;
    len = m[0].length;
  }
  if (at < 0) return null;
  let i = at + len;
  while (text[i] === " ") i++;
  if (text[i] === "{") {
    const end = closingBrace(text, i);
    return end < 0 ? "unclosed" : text.slice(i + 1, end - 1);
  }
  // `\boxed 5`: one token, up to white space or a math delimiter.
  const token = /^[^\s$]+/.exec(text.slice(i));
  return token ? token[0] : "unclosed";
}

function cutAtSpecial(s: string): string {
  const m = SPECIAL_TOKEN.exec(s);
  return m ? s.slice(0, m.index) : s;
}

const ANSWER_PHRASE = /\banswer\s*(?:is(?![\w'])\s*:?|:)/gi;

/** The final answer of a completion (see the file header), untouched apart from trimming. */
export function extractMathAnswer(completion: string): Extraction {
  const boxed = lastBoxed(completion);
  if (boxed === "unclosed")
    return { ok: false, reason: "the last \\boxed{ is never closed (is the completion cut off?)" };
  if (boxed !== null) {
    const answer = boxed.trim();
    return answer === "" ? { ok: false, reason: "empty \\boxed{}" } : { ok: true, answer, marker: "boxed" };
  }
  const hashes = completion.lastIndexOf("####");
  if (hashes >= 0) {
    const answer = cutAtSpecial(completion.slice(hashes + 4).split("\n")[0]).trim();
    return answer === ""
      ? { ok: false, reason: 'empty answer after "####"' }
      : { ok: true, answer, marker: "####" };
  }
  let phrase: RegExpExecArray | null = null;
  for (const m of completion.matchAll(ANSWER_PHRASE)) phrase = m;
  if (phrase) {
    let rest = cutAtSpecial(completion.slice(phrase.index + phrase[0].length).split("\n")[0]);
    // The sentence ends at a period followed by white space or the end ("3.5." → "3.5").
    const stop = /\.(?:\s|$)/.exec(rest);
    if (stop) rest = rest.slice(0, stop.index);
    const answer = rest.trim();
    return answer === ""
      ? { ok: false, reason: `empty answer after "${phrase[0]}"` }
      : { ok: true, answer, marker: "answer is" };
  }
  return { ok: false, reason: 'no final answer: no \\boxed{}, "####" or "answer is"/"answer:"' };
}

/**
 * The reference answer held by a dataset field: the last `\boxed{}` of a worked solution (MATH),
 * else the text after the last `####` (GSM8K), else the whole field, trimmed. Null when a field
 * holding a box or `####` yields nothing, or when what remains spans several lines (a worked
 * solution whose answer is not marked).
 */
export function referenceAnswer(field: string): string | null {
  const boxed = lastBoxed(field);
  let answer: string;
  if (boxed === "unclosed") return null;
  if (boxed !== null) answer = boxed;
  else if (field.includes("####")) answer = field.slice(field.lastIndexOf("####") + 4).split("\n")[0];
  else answer = field;
  answer = answer.trim();
  return answer === "" || answer.includes("\n") ? null : answer;
}
