/**
 * `sat tasks list`, `sat tasks export <name>`: the built-in task families and their splits;
 * `sat tasks preview`: tasks.dataset as a run reads it (field mapping applied, split of each
 * problem).
 */
import { writeFileAtomic } from "../../io/atomic.js";
import { datasetLayoutOf } from "../../app/setup.js";
import {
  DEFAULT_TEST_PERCENT,
  describeLayout,
  getTask,
  loadDataset,
  makeProblems,
  problemsToJSONL,
  splitOf,
  TASKS,
  type Problem,
  type Split,
} from "../../tasks/index.js";
import type { CommandSpec } from "../command.js";
import { UsageError } from "../errors.js";

function intOption(name: string, value: unknown, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`${name} ${String(value)}: expected an integer ≥ ${min}`);
  return n;
}

/** Task-module errors are about the arguments given, so they are usage errors. */
function asUsage<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

const list: CommandSpec = {
  name: "list",
  summary: "list the built-in task families",
  flags: "none",
  run(ctx) {
    const rows = Object.values(TASKS).map((t) => ({
      name: t.name,
      difficulties: t.difficulties,
      default_difficulty: t.defaultDifficulty,
      description: t.description,
    }));
    if (ctx.flags.json) {
      ctx.out(JSON.stringify(rows, null, 2));
      return;
    }
    const width = Math.max(...rows.map((r) => r.name.length));
    for (const r of rows) {
      const first = r.description.split(/(?<=\.)\s/)[0];
      ctx.out(
        `${r.name.padEnd(width)}  difficulty ${r.difficulties[0]}-${r.difficulties[1]} (default ${r.default_difficulty})  ${first}`,
      );
    }
  },
};

const exportTask: CommandSpec = {
  name: "export",
  summary: "write n problems of one split of a task family as JSONL",
  args: [{ syntax: "<name>", description: "task family (see `sat tasks list`)" }],
  flags: "none",
  options: [
    { flags: "--split <split>", description: "train or test", default: "train" },
    { flags: "--n <count>", description: "number of distinct problems", default: "100" },
    { flags: "--out <file>", description: "output file (default: stdout)" },
    { flags: "--seed <n>", description: "seed of the generator", default: "42" },
    { flags: "--difficulty <d>", description: "difficulty (default: the family's)" },
    {
      flags: "--test-percent <p>",
      description: "percent of problems held out as the test split",
      default: String(DEFAULT_TEST_PERCENT),
    },
  ],
  run(ctx) {
    const [name] = ctx.args;
    const split = ctx.options.split as string;
    if (split !== "train" && split !== "test")
      throw new UsageError(`--split ${split}: expected train or test`);
    const n = intOption("--n", ctx.options.n, 1)!;
    const seed = intOption("--seed", ctx.options.seed, 0)!;
    const difficulty = intOption("--difficulty", ctx.options.difficulty, 0);
    const testPercent = Number(ctx.options.testPercent);
    if (!(testPercent >= 0 && testPercent <= 100))
      throw new UsageError(
        `--test-percent ${String(ctx.options.testPercent)}: expected a number in [0, 100]`,
      );
    const family = asUsage(() => getTask(name));
    const problems = asUsage(() =>
      makeProblems(family, { split: split as Split, n, seed, difficulty, testPercent }),
    );
    const text = problemsToJSONL(problems);
    const out = ctx.options.out as string | undefined;
    if (out) {
      writeFileAtomic(out, text);
      if (!ctx.flags.quiet)
        ctx.progress.log(`wrote ${problems.length} ${family.name} problems (${split}) to ${out}`);
    } else {
      ctx.out(text.trimEnd());
    }
  },
};

const PREVIEW_CHARS = 300;

/** A field for the terminal: one line (newlines shown as ⏎), cut at PREVIEW_CHARS. */
function oneLineText(text: string): string {
  const flat = text.replace(/\r?\n/g, " ⏎ ");
  return flat.length > PREVIEW_CHARS ? `${flat.slice(0, PREVIEW_CHARS)}…` : flat;
}

const preview: CommandSpec = {
  name: "preview",
  summary: "show a dataset file's problems as a run reads them (field mapping applied)",
  description:
    "Reads tasks.dataset (a .jsonl or .parquet file) with the field mapping of tasks.preset, " +
    "tasks.prompt_field, tasks.answer_field, tasks.solution_field and tasks.verifier, from the same " +
    "config and overrides a run takes (e.g. `sat tasks preview tasks.dataset=train.parquet " +
    "tasks.preset=gsm8k`, or `--config my.yaml`), checks every row's fields, and prints the first " +
    "problems with the split each falls in. `sat train` also checks that every prompt tokenizes " +
    "within rollout.max_prompt_length.",
  flags: "config",
  options: [
    { flags: "--n <count>", description: "problems to show", default: "5" },
    { flags: "--split <split>", description: "show only train or test problems" },
  ],
  async run(ctx) {
    const cfg = ctx.config!;
    const file = cfg.tasks.dataset;
    if (file === null)
      throw new UsageError(
        "set the file to preview: sat tasks preview tasks.dataset=<file.jsonl|file.parquet>",
      );
    const n = intOption("--n", ctx.options.n, 0)!;
    const only = ctx.options.split as string | undefined;
    if (only !== undefined && only !== "train" && only !== "test")
      throw new UsageError(`--split ${only}: expected train or test`);
    const layout = datasetLayoutOf(cfg);
    const data = await loadDataset(file, layout);
    const pct = cfg.tasks.test_percent;
    const rows = data.problems.map((p, i) => ({ where: data.where[i], split: splitOf(p, pct), problem: p }));
    const shown = rows.filter((r) => only === undefined || r.split === only).slice(0, n);
    if (ctx.flags.json) {
      const out = shown.map(({ where, split, problem: p }) => ({ where, split, ...problemFields(p) }));
      ctx.out(JSON.stringify(out, null, 2));
      return;
    }
    const test = rows.filter((r) => r.split === "test").length;
    ctx.out(`${file}: ${rows.length} problems (${data.format}; ${describeLayout(layout)})`);
    ctx.out(
      `split by content hash at tasks.test_percent = ${pct}: ${rows.length - test} train, ${test} test`,
    );
    for (const { where, split, problem: p } of shown) {
      ctx.out("");
      ctx.out(`${where} · ${split} · id ${p.id}`);
      if (p.messages) for (const m of p.messages) ctx.out(`  ${m.role}: ${oneLineText(m.content)}`);
      else ctx.out(`  prompt: ${oneLineText(p.prompt)}`);
      ctx.out(`  answer: ${p.answer}`);
      ctx.out(`  solution: ${oneLineText(p.solution)}`);
    }
  },
};

function problemFields(p: Problem): Record<string, unknown> {
  return {
    id: p.id,
    prompt: p.prompt,
    ...(p.messages ? { messages: p.messages } : {}),
    answer: p.answer,
    solution: p.solution,
  };
}

export const tasks: CommandSpec = {
  name: "tasks",
  summary: "list task families, export a split as JSONL, or preview a dataset file",
  flags: "none",
  subcommands: [list, exportTask, preview],
};
