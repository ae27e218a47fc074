/**
 * Users' dataset files: layouts and field mapping, the checks every row passes before a run starts
 * (each failure one line naming the file and line), exact hash-disjoint splits, and the CLI refusing
 * a bad dataset before any run directory exists.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CharTokenizer } from "../src/model/tokenizer.js";
import { runCli } from "../src/cli/program.js";
import { validateConfig } from "../src/config/index.js";
import { taskOf } from "../src/app/setup.js";
import {
  DATASET_FAMILY,
  DatasetError,
  checkPrompts,
  datasetFamily,
  loadDataset,
  makeProblems,
  recordToProblem,
  resolveLayout,
  splitOf,
  splitProblems,
  verifyMath,
  type Problem,
} from "../src/tasks/index.js";

const dir = mkdtempSync(join(tmpdir(), "sat-dataset-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const GSM8K = new URL("../../test/fixtures/gsm8k-mini.parquet", import.meta.url).pathname;

function write(name: string, text: string | Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const jsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join("\n") + "\n";
const sums = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ prompt: `${i}+${i}=\n`, answer: String(2 * i) }));

test("dataset: presets name their fields; explicit fields and verifier override them", () => {
  assert.deepEqual(resolveLayout(), {
    preset: null,
    promptField: "prompt",
    answerField: "answer",
    solutionField: "solution",
    verifier: "exact",
  });
  assert.deepEqual(resolveLayout({ preset: "gsm8k" }), {
    preset: "gsm8k",
    promptField: "question",
    answerField: "answer",
    solutionField: "answer",
    verifier: "math",
  });
  assert.deepEqual(resolveLayout({ preset: "math", answerField: "answer" }), {
    preset: "math",
    promptField: "problem",
    answerField: "answer",
    solutionField: "solution",
    verifier: "math",
  });
  assert.deepEqual(resolveLayout({ preset: "verl", verifier: "exact" }), {
    preset: "verl",
    promptField: "prompt",
    answerField: "reward_model.ground_truth",
    solutionField: null,
    verifier: "exact",
  });
});

test("dataset: records to problems: dotted paths, numbers as answers, chat messages, MATH solutions", () => {
  const rec = (fields: Record<string, unknown>, index = 3) => ({ where: `d.jsonl:${index}`, index, fields });
  const math = resolveLayout({ preset: "math" });
  const p = recordToProblem(
    rec({ problem: "Half of 1?", solution: "It is $\\boxed{\\frac{1}{2}}$.", id: "ignored" }),
    math,
    "/x/d.jsonl",
  );
  assert.deepEqual(p, {
    id: "d.jsonl:3",
    family: DATASET_FAMILY,
    difficulty: 0,
    prompt: "Half of 1?",
    solution: "It is $\\boxed{\\frac{1}{2}}$.",
    answer: "\\frac{1}{2}",
  });
  assert.equal(verifyMath(p, "so 0.5. The answer is 0.5").correct, true);
  const verl = resolveLayout({ preset: "verl" });
  const q = recordToProblem(
    rec({ prompt: [{ role: "user", content: "2+2?", extra: 1 }], reward_model: { ground_truth: 4n } }),
    verl,
    "d.jsonl",
  );
  assert.deepEqual(q.messages, [{ role: "user", content: "2+2?" }]);
  assert.equal(q.answer, "4");
  assert.equal(q.solution, "#### 4");
  // A key containing dots is found before the nested path.
  const dotted = resolveLayout({ promptField: "q", answerField: "a.b" });
  assert.equal(recordToProblem(rec({ q: "x", "a.b": "1", a: { b: "2" } }), dotted, "d").answer, "1");
  const bad: [Record<string, unknown>, string][] = [
    [{ prompt: [], reward_model: { ground_truth: "1" } }, 'field "prompt" is an empty list of messages'],
    [
      { prompt: [{ role: "user" }], reward_model: { ground_truth: "1" } },
      'field "prompt", message 1: expected {"role": text, "content": text}',
    ],
    [
      { prompt: { role: "user" }, reward_model: { ground_truth: "1" } },
      'field "prompt" must be text or a list of chat messages, got object',
    ],
    [{ prompt: "p", reward_model: "1" }, 'missing field "reward_model.ground_truth"'],
    [
      { prompt: "p", reward_model: { ground_truth: true } },
      'field "reward_model.ground_truth" must be text, got boolean',
    ],
    [{ prompt: " ", reward_model: { ground_truth: "1" } }, 'field "prompt" is empty'],
    [
      { prompt: "p", reward_model: { ground_truth: "step one\nstep two" } },
      'field "reward_model.ground_truth" has no final answer (a \\boxed{}, "#### " or a one-line answer)',
    ],
  ];
  for (const [fields, message] of bad)
    assert.throws(() => recordToProblem(rec(fields), verl, "d"), { message });
});

test("dataset: a UTF-8 byte-order mark and CRLF line ends are accepted; invalid UTF-8 names its line", async () => {
  const text = jsonl(sums(3)).replace(/\n/g, "\r\n");
  const bom = write("bom.jsonl", Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]));
  const data = await loadDataset(bom, resolveLayout());
  assert.deepEqual(
    data.problems.map((p) => [p.prompt, p.answer]),
    [
      ["0+0=\n", "0"],
      ["1+1=\n", "2"],
      ["2+2=\n", "4"],
    ],
  );
  const latin1 = write(
    "latin1.jsonl",
    Buffer.concat([
      Buffer.from(jsonl(sums(2))),
      Buffer.from('{"prompt": "caf\xe9", "answer": "1"}\n', "latin1"),
    ]),
  );
  await assert.rejects(loadDataset(latin1, resolveLayout()), {
    message: `${latin1}:3: not valid UTF-8 text; save the file as UTF-8`,
  });
});

test("dataset: every bad row is found in one pass: the first named with its line, the others counted", async () => {
  const rows = [
    ...sums(2),
    { prompt: "p" },
    { prompt: "p", answer: "1", solution: "#2" },
    ...sums(1),
    { answer: "3" },
    { prompt: "q", answer: "" },
    { prompt: "r", answer: "1", difficulty: "hard" },
  ];
  const path = write("bad.jsonl", jsonl(rows).replace('{"prompt":"0+0', 'not json\n{"prompt":"0+0'));
  await assert.rejects(loadDataset(path, resolveLayout()), {
    name: "DatasetError",
    message:
      `${path}:1: invalid JSON (Unexpected token 'o', "not json" is not valid JSON) ` +
      `(and 5 more bad rows: ${path}:4, ${path}:5, ${path}:7, …)`,
  });
  await assert.rejects(loadDataset(write("empty.jsonl", "\n\n"), resolveLayout()), {
    message: `${join(dir, "empty.jsonl")}: empty file, expected one JSON object per line`,
  });
  await assert.rejects(loadDataset(join(dir, "nope.jsonl"), resolveLayout()), {
    message: `${join(dir, "nope.jsonl")}: cannot read (ENOENT)`,
  });
});

test("dataset: prompts that do not tokenize or exceed rollout.max_prompt_length name file and line", async () => {
  const path = write(
    "prompts.jsonl",
    jsonl([
      ...sums(3),
      { prompt: "What is 2+2?", answer: "4" },
      { prompt: "1".repeat(40), answer: "1" },
      { prompt: "2".repeat(50), answer: "2" },
    ]),
  );
  const data = await loadDataset(path, resolveLayout());
  const tok = new CharTokenizer();
  const check = (maxPromptLength: number) =>
    checkPrompts(data, {
      encode: (p: Problem) => [tok.bos, ...tok.encode(p.prompt)],
      maxPromptLength,
      limitName: "rollout.max_prompt_length",
    });
  assert.throws(() => check(32), {
    name: "DatasetError",
    message:
      `${path}:4: the prompt does not tokenize (tokenizer: character "W" (U+0057) at position 0 is not in the vocabulary) ` +
      `(and 2 more bad rows: ${path}:5, ${path}:6); to keep the long prompts raise rollout.max_prompt_length to 51`,
  });
  const tokenizable = { ...data, problems: data.problems.slice(4), where: data.where.slice(4) };
  assert.throws(
    () =>
      checkPrompts(tokenizable, { encode: (p) => tok.encode(p.prompt), maxPromptLength: 45, limitName: "L" }),
    {
      message: `${path}:6: the prompt has 50 tokens, more than L (45); to keep the long prompts raise L to 50`,
    },
  );
  checkPrompts(tokenizable, { encode: (p) => tok.encode(p.prompt), maxPromptLength: 50, limitName: "L" });
});

test("dataset: splits are hash-disjoint, exact and deterministic from the seed", async () => {
  const data = await loadDataset(GSM8K, resolveLayout({ preset: "gsm8k" }));
  const family = datasetFamily(data.problems, data.source, verifyMath);
  assert.equal(family.verify, verifyMath);
  const pct = 20;
  const test = splitProblems(data.problems, "test", pct);
  const train = splitProblems(data.problems, "train", pct);
  assert.equal(test.length + train.length, data.problems.length);
  for (const p of test) assert.equal(splitOf(p, pct), "test");
  // The whole test split can be drawn (no rejection sampling), in a seeded order.
  const a = makeProblems(family, { split: "test", n: test.length, seed: 1, testPercent: pct });
  const b = makeProblems(family, { split: "test", n: test.length, seed: 1, testPercent: pct });
  const c = makeProblems(family, { split: "test", n: test.length, seed: 2, testPercent: pct });
  assert.deepEqual(a, b);
  assert.notDeepEqual(
    a.map((p) => p.id),
    c.map((p) => p.id),
  );
  assert.deepEqual(new Set(a.map((p) => p.id)), new Set(test.map((p) => p.id)));
  const trainIds = new Set(
    makeProblems(family, { split: "train", n: train.length, seed: 3, testPercent: pct }).map((p) => p.id),
  );
  for (const p of a) assert.equal(trainIds.has(p.id), false, "a test problem is never a training one");
  assert.throws(
    () => makeProblems(family, { split: "test", n: test.length + 1, seed: 1, testPercent: pct }),
    {
      message: `task dataset:gsm8k-mini.parquet: split "test" has ${test.length} distinct problems (20% of 60 held out for test by content hash), asked for ${test.length + 1}`,
    },
  );
  // The training stream never draws a test problem.
  const testIds = new Set(test.map((p) => p.id));
  const { ProblemStream } = await import("../src/tasks/index.js");
  const stream = new ProblemStream(family, { seed: 4, testPercent: pct });
  for (const p of stream.take(300)) assert.equal(testIds.has(p.id), false);
});

test("dataset: taskOf checks splits against eval.n_prompts and the per-stage held-out batch", async () => {
  const path = write("d30.jsonl", jsonl(sums(30)));
  const cfg = (over: object) => validateConfig(over);
  const tok = new CharTokenizer();
  const test = splitProblems((await loadDataset(path, resolveLayout())).problems, "test", 10).length;
  assert.ok(test > 0 && test < 8, `${test} test problems`);
  await assert.rejects(taskOf(cfg({ tasks: { dataset: path } }), tok), {
    name: "DatasetError",
    message: `${path}: the test split holds ${test} of 30 distinct problems (tasks.test_percent = 10, by content hash), fewer than eval.n_prompts = 200; set eval.n_prompts to at most ${test} or raise tasks.test_percent`,
  });
  await assert.rejects(taskOf(cfg({ tasks: { dataset: path }, eval: { n_prompts: test } }), tok), {
    message: `${path}: the test split holds ${test} of 30 distinct problems (tasks.test_percent = 10, by content hash), fewer than rollout.prompts_per_step = 8 (each stage's held-out batch); set rollout.prompts_per_step to at most ${test} or raise tasks.test_percent`,
  });
  const task = await taskOf(cfg({ tasks: { dataset: path, test_percent: 50 }, eval: { n_prompts: 8 } }), tok);
  assert.equal(task.problems!.length, 30);
  assert.equal(task.verify(task.problems![0], "#0").correct, true, "exact verifier by default");
  const math = await taskOf(
    cfg({ tasks: { dataset: path, test_percent: 50, verifier: "math" }, eval: { n_prompts: 8 } }),
    tok,
  );
  assert.equal(math.verify(math.problems![1], "so \\boxed{2.0}").correct, true, "tasks.verifier = math");
  await assert.rejects(taskOf(cfg({ tasks: { dataset: path, test_percent: 99 } }), tok), DatasetError);
});

async function sat(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const sink = (append: (s: string) => void) =>
    ({
      write: (s: string | Uint8Array) => (append(String(s)), true),
      isTTY: false,
    }) as unknown as NodeJS.WritableStream;
  const code = await runCli(argv, {
    io: {
      stdout: sink((s) => (stdout += s)),
      stderr: sink((s) => (stderr += s)),
      now: () => new Date(2026, 0, 2),
    },
  });
  return { code, stdout, stderr };
}

test("dataset: sat train and sat pretrain refuse a bad dataset before the run directory exists", async () => {
  const d30 = write("cli30.jsonl", jsonl(sums(30)));
  const long = write("long.jsonl", jsonl([...sums(40), { prompt: "9".repeat(40), answer: "9" }]));
  const cases: [string[], RegExp][] = [
    [
      ["train", "tasks.dataset=" + d30],
      /fewer than eval\.n_prompts = 200; set eval\.n_prompts to at most \d+/,
    ],
    [["pretrain", "tasks.dataset=" + d30], /fewer than eval\.n_prompts = 200/],
    [
      [
        "train",
        "tasks.dataset=" + long,
        "eval.n_prompts=1",
        "rollout.prompts_per_step=1",
        "algo.ppo_mini_batch_size=1",
      ],
      /long\.jsonl:41: the prompt has 41 tokens, more than rollout\.max_prompt_length \(32\)/,
    ],
    [["train", "tasks.preset=gsm8k"], /tasks\.preset applies to a dataset file only/],
    [
      ["train", "tasks.dataset=" + d30, "tasks.difficulty=2"],
      /tasks\.difficulty applies to the built-in task families only/,
    ],
  ];
  for (const [i, [argv, line]] of cases.entries()) {
    const out = join(dir, `run-${i}`);
    const r = await sat([...argv, "--output-dir", out]);
    assert.equal(r.code, 2, `${argv.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, line);
    assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
    assert.equal(existsSync(out), false, `${argv.join(" ")} created ${out}`);
  }
});

test("dataset: sat tasks preview shows problems with the mapping and split applied", async () => {
  const r = await sat([
    "tasks",
    "preview",
    `tasks.dataset=${GSM8K}`,
    "tasks.preset=gsm8k",
    "--n",
    "2",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout) as { where: string; split: string; prompt: string; answer: string }[];
  const data = await loadDataset(GSM8K, resolveLayout({ preset: "gsm8k" }));
  assert.deepEqual(
    rows.map((x) => [x.where, x.split, x.prompt, x.answer]),
    data.problems.slice(0, 2).map((p, i) => [data.where[i], splitOf(p, 10), p.prompt, p.answer]),
  );
  const text = await sat([
    "tasks",
    "preview",
    `tasks.dataset=${GSM8K}`,
    "tasks.preset=gsm8k",
    "--n",
    "1",
    "--split",
    "test",
  ]);
  assert.equal(text.code, 0, text.stderr);
  const test = splitProblems(data.problems, "test", 10);
  assert.match(
    text.stdout,
    new RegExp(
      `60 problems \\(parquet; gsm8k layout: prompt "question", answer "answer", solution "answer", verifier math\\)`,
    ),
  );
  assert.match(text.stdout, new RegExp(`: ${60 - test.length} train, ${test.length} test\\n`));
  assert.ok(text.stdout.includes(`  answer: ${test[0].answer}\n`), text.stdout);
  const none = await sat(["tasks", "preview"]);
  assert.equal(none.code, 2);
  assert.equal(
    none.stderr,
    "sat: set the file to preview: sat tasks preview tasks.dataset=<file.jsonl|file.parquet>\n",
  );
});
