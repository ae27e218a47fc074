/**
 * Problems as JSON Lines in this project's own layout, for users' datasets and for dumping
 * generated ones: one object per line with `prompt` (text or chat messages) and `answer`; optional
 * `solution` (default: just the final answer, `#<answer>`), `id` (default `<file name>:<line>`),
 * `family` (default "jsonl"), `difficulty` (default 0). Other fields are ignored. Blank lines and a
 * byte-order mark are skipped. Every error names the file, the line and the field:
 * `data.jsonl:7: missing field "answer"`. Other layouts and Parquet: dataset-file.ts.
 */
import { readFileSync } from "node:fs";
import { problemsFromRecords } from "./dataset-file.js";
import { resolveLayout } from "./layout.js";
import { DatasetError, RowErrors, parseJsonlRecords } from "./records.js";
import type { Problem } from "./types.js";

export function problemsToJSONL(problems: readonly Problem[]): string {
  return problems
    .map(
      (p) =>
        JSON.stringify({
          id: p.id,
          family: p.family,
          difficulty: p.difficulty,
          prompt: p.messages ?? p.prompt,
          solution: p.solution,
          answer: p.answer,
        }) + "\n",
    )
    .join("");
}

/** Parse JSONL text in the default layout; `source` names the file in error messages. */
export function parseProblemsJSONL(text: string, source: string): Problem[] {
  const errors = new RowErrors();
  const file = parseJsonlRecords(text, source, errors);
  return problemsFromRecords(file, resolveLayout(), errors).problems;
}

export function readProblemsJSONL(path: string): Problem[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new DatasetError(
      `${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
  return parseProblemsJSONL(text, path);
}
