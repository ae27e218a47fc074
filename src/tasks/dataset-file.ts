/**
 * A user's dataset file (JSON Lines or Parquet) read under a layout into problems, and the checks
 * every row passes before a run starts: fields present and well-typed (layout.ts), unique ids, and
 * a prompt that tokenizes within the length limit (checkPrompts). Each failure names the file and
 * the line (or Parquet row); all bad rows are counted in the one message.
 */
import { basename } from "node:path";
import { verifyMath } from "./math/verify.js";
import {
  FieldError,
  recordToProblem,
  topLevelColumn,
  fieldAt,
  type DatasetLayout,
  type VerifierName,
} from "./layout.js";
import { DatasetError, RowErrors, readRecordFile, type DatasetFormat, type RecordFile } from "./records.js";
import { verifyExact, type Problem, type TaskFamily, type Verdict } from "./types.js";

export interface Dataset {
  source: string;
  format: DatasetFormat;
  layout: DatasetLayout;
  problems: Problem[];
  /** Where each problem came from ("data.jsonl:7"), parallel to `problems`. */
  where: string[];
}

export const VERIFY: Record<VerifierName, (problem: Problem, completion: string) => Verdict> = {
  exact: verifyExact,
  math: verifyMath,
};

/** When no record has a mapped field, one line about the mapping beats one per row. */
function checkFieldsExist(file: RecordFile, layout: DatasetLayout): void {
  if (file.records.length === 0) return;
  const required = [
    ["prompt", layout.promptField],
    ["answer", layout.answerField],
  ];
  for (const [what, path] of required) {
    if (file.records.some((r) => fieldAt(r.fields, path) !== undefined)) continue;
    const have = file.columns.length > 0 ? file.columns.join(", ") : "none";
    throw new DatasetError(
      `${file.source}: no row has the ${what} field "${path}" (${file.format === "parquet" ? "columns" : "fields"}: ${have}); ` +
        `set tasks.${what}_field or a tasks.preset (gsm8k, math, verl) that matches the file`,
    );
  }
}

export function problemsFromRecords(file: RecordFile, layout: DatasetLayout, errors: RowErrors): Dataset {
  checkFieldsExist(file, layout);
  const problems: Problem[] = [];
  const where: string[] = [];
  const firstOfId = new Map<string, number>();
  const unit = file.format === "parquet" ? "row" : "line";
  for (const record of file.records) {
    let p: Problem;
    try {
      p = recordToProblem(record, layout, file.source);
    } catch (e) {
      if (!(e instanceof FieldError)) throw e;
      errors.add(record.where, e.message);
      continue;
    }
    const first = firstOfId.get(p.id);
    if (first !== undefined) {
      errors.add(record.where, `duplicate id ${JSON.stringify(p.id)} (first on ${unit} ${first})`);
      continue;
    }
    firstOfId.set(p.id, record.index);
    problems.push(p);
    where.push(record.where);
  }
  errors.throwIfAny();
  if (problems.length === 0) {
    throw new DatasetError(
      file.format === "parquet"
        ? `${file.source}: the file has no rows`
        : `${file.source}: empty file, expected one JSON object per line`,
    );
  }
  return { source: file.source, format: file.format, layout, problems, where };
}

/** Reads and maps a dataset file; throws DatasetError naming the first bad row and counting the rest. */
export async function loadDataset(path: string, layout: DatasetLayout): Promise<Dataset> {
  const errors = new RowErrors();
  // Parquet: read only the columns the layout uses (other columns may be large).
  const paths = [layout.promptField, layout.answerField, layout.solutionField, "id", "family", "difficulty"];
  const columns = (names: readonly string[]) =>
    paths.filter((p): p is string => p !== null).map((p) => topLevelColumn(p, names));
  const file = await readRecordFile(path, errors, columns);
  return problemsFromRecords(file, layout, errors);
}

export interface PromptCheck {
  /** Token ids of a problem's prompt exactly as the rollout builds them. */
  encode(problem: Problem): readonly number[];
  maxPromptLength: number;
  /** How the limit is named in messages, e.g. "rollout.max_prompt_length". */
  limitName: string;
}

/** Every prompt tokenizes and fits the limit; else one line naming the first bad row. */
export function checkPrompts(data: Dataset, check: PromptCheck): void {
  const errors = new RowErrors();
  let longest = 0;
  data.problems.forEach((p, i) => {
    let n: number;
    try {
      n = check.encode(p).length;
    } catch (e) {
      errors.add(data.where[i], `the prompt does not tokenize (${(e as Error).message})`);
      return;
    }
    longest = Math.max(longest, n);
    if (n > check.maxPromptLength) {
      errors.add(
        data.where[i],
        `the prompt has ${n} tokens, more than ${check.limitName} (${check.maxPromptLength})`,
      );
    }
  });
  try {
    errors.throwIfAny();
  } catch (e) {
    const hint =
      longest > check.maxPromptLength
        ? `; to keep the long prompts raise ${check.limitName} to ${longest}`
        : "";
    throw new DatasetError((e as Error).message + hint);
  }
}

/**
 * A task family over a fixed list of problems (a dataset): `generate` draws one uniformly, so the
 * problem stream works as for generated families, and `problems` lets splits use the list exactly.
 * The difficulty knob does not apply.
 */
export function datasetFamily(
  problems: readonly Problem[],
  source: string,
  verify: TaskFamily["verify"] = verifyExact,
): TaskFamily {
  if (problems.length === 0) throw new Error(`${source}: the dataset has no problems`);
  return {
    name: `dataset:${basename(source)}`,
    description: `${problems.length} problems from ${source}`,
    defaultDifficulty: 0,
    difficulties: [0, 0],
    generate: (rng) => problems[rng.int(problems.length)],
    verify,
    problems,
  };
}
