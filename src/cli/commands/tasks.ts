/** `sat tasks list` and `sat tasks export <name>`: the built-in task families and their splits. */
import { writeFileAtomic } from "../../io/atomic.js";
import {
  DEFAULT_TEST_PERCENT,
  getTask,
  makeProblems,
  problemsToJSONL,
  TASKS,
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

export const tasks: CommandSpec = {
  name: "tasks",
  summary: "list task families or export a split as JSONL",
  flags: "none",
  subcommands: [list, exportTask],
};
