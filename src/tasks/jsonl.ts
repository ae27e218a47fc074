/**
 * Problems as JSON Lines, for users' own datasets and for dumping generated ones. One object per
 * line with at least string fields `prompt` and `answer`; optional `solution` (default: just the
 * final answer, `#<answer>`), `id` (default `<file name>:<line>`), `family` (default "jsonl"),
 * `difficulty` (default 0). Other fields are ignored. Blank lines are skipped. Every error names
 * the file, the line and the field: `data.jsonl:7: missing string field "answer"`.
 *
 * Problems of an unknown family are verified by exact match of the extracted answer
 * (verifyProblem in registry.ts), so a given solution must end with `#<answer>` and agree with it.
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { ANSWER_MARKER, extractAnswer, verifyExact, type Problem, type TaskFamily } from "./types.js";

export const JSONL_FAMILY = "jsonl";

export function problemsToJSONL(problems: readonly Problem[]): string {
  return problems
    .map(
      (p) =>
        JSON.stringify({
          id: p.id,
          family: p.family,
          difficulty: p.difficulty,
          prompt: p.prompt,
          solution: p.solution,
          answer: p.answer,
        }) + "\n",
    )
    .join("");
}

function typeName(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "array" : typeof v;
}

/** Parse JSONL text; `source` names the file in error messages. */
export function parseProblemsJSONL(text: string, source: string): Problem[] {
  const problems: Problem[] = [];
  const firstLineOfId = new Map<string, number>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, "");
    if (line.trim() === "") continue;
    const where = `${source}:${i + 1}`;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (e) {
      throw new Error(`${where}: invalid JSON (${(e as Error).message})`);
    }
    if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
      throw new Error(`${where}: expected a JSON object, got ${typeName(obj)}`);
    }
    const rec = obj as Record<string, unknown>;
    const str = (field: string, required: boolean): string | undefined => {
      const v = rec[field];
      if (v === undefined) {
        if (required) throw new Error(`${where}: missing string field "${field}"`);
        return undefined;
      }
      if (typeof v !== "string")
        throw new Error(`${where}: field "${field}" must be a string, got ${typeName(v)}`);
      return v;
    };
    const prompt = str("prompt", true)!;
    const answer = str("answer", true)!.trim();
    if (answer === "") throw new Error(`${where}: field "answer" is empty`);
    if (answer.includes("\n") || answer.includes(ANSWER_MARKER)) {
      throw new Error(`${where}: field "answer" must be one line without "${ANSWER_MARKER}"`);
    }
    const solution = str("solution", false) ?? `${ANSWER_MARKER}${answer}`;
    const solved = extractAnswer(solution);
    if (solved !== answer) {
      throw new Error(
        solved === null
          ? `${where}: field "solution" has no final answer marker "${ANSWER_MARKER}" (end it with "${ANSWER_MARKER}${answer}")`
          : `${where}: field "solution" ends with answer ${JSON.stringify(solved)} but "answer" is ${JSON.stringify(answer)}`,
      );
    }
    const id = str("id", false) ?? `${basename(source)}:${i + 1}`;
    if (firstLineOfId.has(id))
      throw new Error(
        `${where}: duplicate id ${JSON.stringify(id)} (first on line ${firstLineOfId.get(id)})`,
      );
    firstLineOfId.set(id, i + 1);
    const family = str("family", false) ?? JSONL_FAMILY;
    const difficulty = rec.difficulty ?? 0;
    if (typeof difficulty !== "number" || !Number.isFinite(difficulty)) {
      throw new Error(`${where}: field "difficulty" must be a number, got ${typeName(difficulty)}`);
    }
    problems.push({ id, family, difficulty, prompt, solution, answer });
  }
  if (problems.length === 0) throw new Error(`${source}: empty file, expected one JSON object per line`);
  return problems;
}

export function readProblemsJSONL(path: string): Problem[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parseProblemsJSONL(text, path);
}

/**
 * A task family over a fixed list of problems (a user's dataset): `generate` draws one uniformly,
 * so the hash split, the problem stream and evaluation work as for generated families. The
 * difficulty knob does not apply. Problems are checked by exact match of the final answer.
 */
export function datasetFamily(problems: readonly Problem[], source: string): TaskFamily {
  if (problems.length === 0) throw new Error(`${source}: the dataset has no problems`);
  return {
    name: `dataset:${basename(source)}`,
    description: `${problems.length} problems from ${source}`,
    defaultDifficulty: 0,
    difficulties: [0, 0],
    generate: (rng) => problems[rng.int(problems.length)],
    verify: verifyExact,
  };
}
