/**
 * Dataset layouts: which field of a record holds the prompt, the answer and a worked solution, and
 * which verifier checks completions. Presets for the common layouts:
 *
 *   (none)  {prompt, answer, solution?, id?, family?, difficulty?}, exact match of the text after
 *           the last "#" (this project's own JSONL, `sat tasks export`)
 *   gsm8k   {question, answer}: `answer` is a worked solution ending "#### 72"; math verifier
 *   math    {problem, solution}: the answer is the solution's last \boxed{}; math verifier
 *           (MATH-500-style files with an `answer` column: set tasks.answer_field=answer)
 *   verl    {prompt: [{role, content}, …], reward_model: {ground_truth}}: verl's preprocessed
 *           sets and DAPO-Math; math verifier
 *
 * A field name may be a dotted path into nested objects ("reward_model.ground_truth"); a key that
 * contains the dots itself is found first. A prompt field holds text or chat messages (a list of
 * {role, content}); messages are kept as they are for the chat template (Problem.messages).
 * With the math verifier the reference answer is taken from the answer field by referenceAnswer
 * (last \boxed{}, else after "####", else the whole field), so a worked solution serves as well.
 */
import { basename } from "node:path";
import { referenceAnswer } from "./math/extract.js";
import { typeName, type DatasetRecord } from "./records.js";
import { ANSWER_MARKER, extractAnswer, type ChatMessage, type Problem } from "./types.js";

export const DATASET_PRESETS = ["gsm8k", "math", "verl"] as const;
export type DatasetPreset = (typeof DATASET_PRESETS)[number];
export const VERIFIERS = ["exact", "math"] as const;
export type VerifierName = (typeof VERIFIERS)[number];

/**
 * The family of every dataset problem. Problems are split by a hash of family + prompt, so this
 * value is what keeps a file's train/test split stable; it is "jsonl" for the files of earlier
 * versions, which read JSONL only.
 */
export const DATASET_FAMILY = "jsonl";

export interface DatasetLayout {
  preset: DatasetPreset | null;
  promptField: string;
  answerField: string;
  /** Worked solutions for supervised pretraining; null = none (the answer alone is the target). */
  solutionField: string | null;
  verifier: VerifierName;
}

const LAYOUTS: Record<DatasetPreset | "none", Omit<DatasetLayout, "preset">> = {
  none: { promptField: "prompt", answerField: "answer", solutionField: "solution", verifier: "exact" },
  gsm8k: { promptField: "question", answerField: "answer", solutionField: "answer", verifier: "math" },
  math: { promptField: "problem", answerField: "solution", solutionField: "solution", verifier: "math" },
  verl: {
    promptField: "prompt",
    answerField: "reward_model.ground_truth",
    solutionField: null,
    verifier: "math",
  },
};

export interface LayoutOptions {
  preset?: DatasetPreset | null;
  promptField?: string | null;
  answerField?: string | null;
  solutionField?: string | null;
  verifier?: VerifierName | null;
}

/** A preset's layout with the given fields replaced (null/undefined = the preset's). */
export function resolveLayout(o: LayoutOptions = {}): DatasetLayout {
  const preset = o.preset ?? null;
  const base = LAYOUTS[preset ?? "none"];
  return {
    preset,
    promptField: o.promptField ?? base.promptField,
    answerField: o.answerField ?? base.answerField,
    solutionField: o.solutionField ?? base.solutionField,
    verifier: o.verifier ?? base.verifier,
  };
}

/** One line describing the layout, for previews and logs. */
export function describeLayout(l: DatasetLayout): string {
  const solution = l.solutionField ? `, solution "${l.solutionField}"` : "";
  return `${l.preset ?? "default"} layout: prompt "${l.promptField}", answer "${l.answerField}"${solution}, verifier ${l.verifier}`;
}

/** The top-level column a field path starts with (what a Parquet reader must read). */
export function topLevelColumn(path: string, columns: readonly string[]): string {
  return columns.includes(path) ? path : path.split(".")[0];
}

/** The value at a field path: the key itself first, then the dotted path into nested objects. */
export function fieldAt(fields: Record<string, unknown>, path: string): unknown {
  if (Object.hasOwn(fields, path)) return fields[path];
  let v: unknown = fields;
  for (const key of path.split(".")) {
    if (typeof v !== "object" || v === null || Array.isArray(v) || !Object.hasOwn(v, key)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

/** A bad field in a record: the message is what follows "<file>:<line>: ". */
export class FieldError extends Error {}

function text(fields: Record<string, unknown>, path: string, required: true): string;
function text(fields: Record<string, unknown>, path: string, required: false): string | undefined;
function text(fields: Record<string, unknown>, path: string, required: boolean): string | undefined {
  const v = fieldAt(fields, path);
  if (v === undefined || v === null) {
    if (required) throw new FieldError(`missing field "${path}"`);
    return undefined;
  }
  // Parquet integer columns arrive as number or bigint; an answer of 72 is the text "72".
  if (typeof v === "number" || typeof v === "bigint") return String(v);
  if (typeof v !== "string") throw new FieldError(`field "${path}" must be text, got ${typeName(v)}`);
  return v;
}

function messagesOf(v: unknown[], path: string): ChatMessage[] {
  if (v.length === 0) throw new FieldError(`field "${path}" is an empty list of messages`);
  return v.map((m, i) => {
    const ok =
      typeof m === "object" &&
      m !== null &&
      typeof (m as ChatMessage).role === "string" &&
      typeof (m as ChatMessage).content === "string";
    if (!ok)
      throw new FieldError(`field "${path}", message ${i + 1}: expected {"role": text, "content": text}`);
    return { role: (m as ChatMessage).role, content: (m as ChatMessage).content };
  });
}

/** The text a tokenizer without a chat template sees for a conversation: contents, blank-line separated. */
export function messagesText(messages: readonly ChatMessage[]): string {
  return messages.map((m) => m.content).join("\n\n");
}

/** One record as a Problem under `layout`; throws FieldError with what is wrong. */
export function recordToProblem(record: DatasetRecord, layout: DatasetLayout, source: string): Problem {
  const f = record.fields;
  const raw = fieldAt(f, layout.promptField);
  let prompt: string;
  let messages: ChatMessage[] | undefined;
  if (Array.isArray(raw)) {
    messages = messagesOf(raw, layout.promptField);
    prompt = messagesText(messages);
  } else {
    if (raw !== undefined && raw !== null && typeof raw !== "string") {
      throw new FieldError(
        `field "${layout.promptField}" must be text or a list of chat messages, got ${typeName(raw)}`,
      );
    }
    prompt = text(f, layout.promptField, true);
  }
  if (prompt.trim() === "") throw new FieldError(`field "${layout.promptField}" is empty`);
  const answerText = text(f, layout.answerField, true);
  const solutionText = layout.solutionField ? text(f, layout.solutionField, false) : undefined;
  let answer: string;
  let solution: string;
  if (layout.verifier === "math") {
    const ref = referenceAnswer(answerText);
    if (ref === null) {
      throw new FieldError(
        answerText.trim() === ""
          ? `field "${layout.answerField}" is empty`
          : `field "${layout.answerField}" has no final answer (a \\boxed{}, "#### " or a one-line answer)`,
      );
    }
    answer = ref;
    solution = solutionText ?? `#### ${answer}`;
  } else {
    answer = answerText.trim();
    if (answer === "") throw new FieldError(`field "${layout.answerField}" is empty`);
    if (answer.includes("\n") || answer.includes(ANSWER_MARKER)) {
      throw new FieldError(`field "${layout.answerField}" must be one line without "${ANSWER_MARKER}"`);
    }
    solution = solutionText ?? `${ANSWER_MARKER}${answer}`;
    const solved = extractAnswer(solution);
    if (solved !== answer) {
      throw new FieldError(
        solved === null
          ? `field "${layout.solutionField}" has no final answer marker "${ANSWER_MARKER}" (end it with "${ANSWER_MARKER}${answer}")`
          : `field "${layout.solutionField}" ends with answer ${JSON.stringify(solved)} but "${layout.answerField}" is ${JSON.stringify(answer)}`,
      );
    }
  }
  // The default layout is this project's own format, which also names ids, families and difficulties.
  const own = layout.preset === null;
  const id = (own ? text(f, "id", false) : undefined) ?? `${basename(source)}:${record.index}`;
  const family = (own ? text(f, "family", false) : undefined) ?? DATASET_FAMILY;
  const difficulty = own ? (f.difficulty ?? 0) : 0;
  if (typeof difficulty !== "number" || !Number.isFinite(difficulty)) {
    throw new FieldError(`field "difficulty" must be a number, got ${typeName(difficulty)}`);
  }
  return { id, family, difficulty, prompt, ...(messages ? { messages } : {}), solution, answer };
}
