/**
 * `add`: addition of two d-digit numbers (d = difficulty), worked column by column from the least
 * significant digit. Each line adds one column with its carry-in and writes a two-digit sum, whose
 * first digit is the carry-out, so the next agent of a relay can pick up at any line:
 *
 *   347+185        prompt
 *   7+5+0=12       ones:     7 + 5 + carry 0 = 12 → digit 2, carry 1
 *   4+8+1=13       tens:     4 + 8 + carry 1 = 13 → digit 3, carry 1
 *   3+1+1=05       hundreds: 3 + 1 + carry 1 = 05 → digit 5, carry 0
 *   #532           the digits bottom-up, led by the last carry when it is 1
 *
 * Both operands have exactly d digits (no leading zero unless d = 1), so every problem of a
 * difficulty has the same layout, which is what lets a small model learn it quickly. Difficulty 3
 * is 40 characters of prompt + solution.
 */
import type { Rng } from "../../engine/rng.js";
import { checkDifficulty, makeProblem, verifyExact, type Problem, type TaskFamily } from "../types.js";

function randomDigits(rng: Rng, d: number): string {
  let s = d === 1 ? String(rng.int(10)) : String(1 + rng.int(9));
  while (s.length < d) s += String(rng.int(10));
  return s;
}

/** The worked solution and answer for a + b given as digit strings of equal length. */
export function solveAdd(a: string, b: string): { solution: string; answer: string } {
  const lines: string[] = [];
  let carry = 0;
  let digits = "";
  for (let i = a.length - 1; i >= 0; i--) {
    const x = a.charCodeAt(i) - 48;
    const y = b.charCodeAt(i) - 48;
    const sum = x + y + carry;
    lines.push(`${x}+${y}+${carry}=${String(sum).padStart(2, "0")}`);
    digits = String(sum % 10) + digits;
    carry = sum >= 10 ? 1 : 0;
  }
  const answer = carry ? `1${digits}` : digits.replace(/^0+(?=\d)/, "");
  lines.push(`#${answer}`);
  return { solution: lines.join("\n"), answer };
}

export const add: TaskFamily = {
  name: "add",
  description:
    "Add two numbers of d digits (d = difficulty), one column per line from the ones up, each line " +
    "'digit+digit+carry=two-digit sum'. Example: prompt '47+85\\n', solution '7+5+0=12\\n4+8+1=13\\n#132'.",
  defaultDifficulty: 3,
  difficulties: [1, 8],
  generate(rng: Rng, difficulty: number): Problem {
    checkDifficulty(add, difficulty);
    const a = randomDigits(rng, difficulty);
    const b = randomDigits(rng, difficulty);
    const { solution, answer } = solveAdd(a, b);
    return makeProblem("add", difficulty, `${a}+${b}\n`, solution, answer);
  },
  verify: verifyExact,
};
