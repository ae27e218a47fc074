/**
 * `sort`: sort d digits ascending (d = difficulty) by selection. Each line holds the sorted prefix
 * so far, a space, and the digits still to place (the smallest one removed each step), so a relay
 * agent can continue from any line:
 *
 *   sort 3912      prompt
 *   1 392
 *   12 39
 *   123 9
 *   #1239
 *
 * Digits repeat freely. Difficulty 4 is 33 characters of prompt + solution.
 */
import type { Rng } from "../../engine/rng.js";
import { checkDifficulty, makeProblem, verifyExact, type Problem, type TaskFamily } from "../types.js";

export function solveSort(digits: string): { solution: string; answer: string } {
  let rest = digits;
  let done = "";
  const lines: string[] = [];
  while (rest.length > 1) {
    let min = rest[0];
    for (const ch of rest) if (ch < min) min = ch;
    const at = rest.indexOf(min);
    rest = rest.slice(0, at) + rest.slice(at + 1);
    done += min;
    lines.push(`${done} ${rest}`);
  }
  const answer = done + rest;
  lines.push(`#${answer}`);
  return { solution: lines.join("\n"), answer };
}

export const sort: TaskFamily = {
  name: "sort",
  description:
    "Sort d digits ascending by selection: each line is 'sorted-prefix rest' with the smallest " +
    "remaining digit moved over. Example: prompt 'sort 312\\n', solution '1 32\\n12 3\\n#123'.",
  defaultDifficulty: 4,
  difficulties: [2, 8],
  generate(rng: Rng, difficulty: number): Problem {
    checkDifficulty(sort, difficulty);
    let digits = "";
    for (let i = 0; i < difficulty; i++) digits += String(rng.int(10));
    const { solution, answer } = solveSort(digits);
    return makeProblem("sort", difficulty, `sort ${digits}\n`, solution, answer);
  },
  verify: verifyExact,
};
