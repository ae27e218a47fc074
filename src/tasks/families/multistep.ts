/**
 * `multistep`: a chain of + − × on one-digit operands, evaluated in the order written (the prompt
 * is parenthesised to say so). The worked solution writes one operation and its result per line,
 * so each agent of a relay can take over from the last intermediate result:
 *
 *   ((3+4)*2)-5    prompt
 *   3+4=7
 *   7*2=14
 *   14-5=9
 *   #9
 *
 * Difficulty = number of operations. Operands are 1..9 and every intermediate result stays in
 * 0..99 (an operation that would leave that range is not drawn), so numbers stay short.
 * Difficulty 3 is at most 38 characters of prompt + solution.
 */
import type { Rng } from "../../engine/rng.js";
import { checkDifficulty, makeProblem, verifyExact, type Problem, type TaskFamily } from "../types.js";

const MAX_VALUE = 99;
type Op = "+" | "-" | "*";
const OPS: Op[] = ["+", "-", "*"];

function apply(op: Op, x: number, y: number): number {
  return op === "+" ? x + y : op === "-" ? x - y : x * y;
}

/** Parenthesised prompt and worked solution for start `op[0] operands[0] op[1] ...` left to right. */
export function solveChain(
  start: number,
  ops: Op[],
  operands: number[],
): { prompt: string; solution: string; answer: string } {
  let expr = String(start);
  let value = start;
  const lines: string[] = [];
  for (let i = 0; i < ops.length; i++) {
    const next = apply(ops[i], value, operands[i]);
    lines.push(`${value}${ops[i]}${operands[i]}=${next}`);
    expr = `${i === 0 ? expr : `(${expr})`}${ops[i]}${operands[i]}`;
    value = next;
  }
  const answer = String(value);
  lines.push(`#${answer}`);
  return { prompt: `${expr}\n`, solution: lines.join("\n"), answer };
}

export const multistep: TaskFamily = {
  name: "multistep",
  description:
    "Evaluate a chain of + - * on one-digit numbers from left to right (parenthesised), one " +
    "intermediate result per line; values stay in 0..99. Example: prompt '(3+4)*2\\n', solution " +
    "'3+4=7\\n7*2=14\\n#14'.",
  defaultDifficulty: 3,
  difficulties: [1, 8],
  generate(rng: Rng, difficulty: number): Problem {
    checkDifficulty(multistep, difficulty);
    const start = 1 + rng.int(9);
    const ops: Op[] = [];
    const operands: number[] = [];
    let value = start;
    while (ops.length < difficulty) {
      const op = OPS[rng.int(OPS.length)];
      // Operands 1..9 that keep the result in range; × 1 always qualifies, so some op always does.
      const valid: number[] = [];
      for (let y = 1; y <= 9; y++) {
        const r = apply(op, value, y);
        if (r >= 0 && r <= MAX_VALUE) valid.push(y);
      }
      if (valid.length === 0) continue;
      const y = valid[rng.int(valid.length)];
      ops.push(op);
      operands.push(y);
      value = apply(op, value, y);
    }
    const { prompt, solution, answer } = solveChain(start, ops, operands);
    return makeProblem("multistep", difficulty, prompt, solution, answer);
  },
  verify: verifyExact,
};
